"""Sweeps of the GCleaner study: grids as data (grids.py), the Ray Tune driver (driver.py), the Optuna
tuner (tune_gcleaner.py). Run ``python sweeps/full.py --help``."""
