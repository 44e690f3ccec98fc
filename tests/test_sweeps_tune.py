"""The Optuna + ASHA tuner end to end on tiny MUTAG settings: study persisted and resumed, best parameters
in MLflow and in a YAML file that ``sweeps/full.py --defense-params`` accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = [
    "--dataset",
    "MUTAG",
    "--max-epochs",
    "2",
    "--grace",
    "1",
    "--concurrency",
    "2",
    "--num-cpus",
    "2",
    "--set",
    "train.epochs=3",
    "--set",
    "model.hidden=16",
    "--set",
    "defense.params.recovery_explainer=random",
    "--set",
    "defense.params.restarts=1",
    "--set",
    "defense.params.teacher_epochs=2",
    "--set",
    "defense.params.require_detection=false",  # a 3-epoch model has no backdoor to find: still unlearn
]


@pytest.mark.slow
def test_tuner_persists_resumes_and_feeds_the_sweep(mirror: Path, tmp_path: Path) -> None:
    import mlflow
    import optuna

    from gnnsec.defenses import DEFENSES

    if "gcleaner" not in DEFENSES:
        pytest.skip("gcleaner is not registered")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(GNNSEC_DATA_MIRROR=str(mirror), GNNSEC_CACHE_DIR=str(tmp_path / "cache"))
    run_dir = tmp_path / "runs"
    out = run_dir / "tuned" / "best.yaml"  # --out must stay inside the run folder
    cmd = [sys.executable, str(ROOT / "sweeps" / "tune_gcleaner.py"), "--run-dir", str(run_dir)]
    cmd += ["--cache-dir", str(tmp_path / "art"), "--study", "t", "--out", str(out), *TINY]
    for trials in (2, 1):  # a second session continues the same Optuna study
        proc = subprocess.run(
            [*cmd, "--trials", str(trials)], env=env, capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    study = optuna.load_study(study_name="t", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert len(study.trials) == 3 and study.best_trial is not None
    best = yaml.safe_load(out.read_text())
    assert set(best) == {"gcleaner"}
    assert set(best["gcleaner"]) == {
        "lam",
        "n",
        "threshold",
        "class_weight",
        "recovery_lr",
        "lr",
        "recovery_epochs",
        "unlearn_epochs",
    }
    assert best["gcleaner"] == study.best_trial.params

    mlflow.set_tracking_uri(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["gnnsec/tune-t"])
    trials = runs[runs["tags.gnnsec.kind"].isna()] if "tags.gnnsec.kind" in runs else runs
    assert len(trials) == 3 and set(trials["status"]) == {"FINISHED"}
    assert trials["params.tuned.lam"].notna().all()  # the sampled values are params of each run
    client = mlflow.MlflowClient()
    curve = client.get_metric_history(trials["run_id"].iloc[0], "objective")
    assert len(curve) >= 2  # per-epoch objective (what ASHA decides on), then the final value
    assert all(-1.0 <= m.value <= 1.0 for m in curve)  # val_acc - val_flip
    best_runs = runs[runs.get("tags.gnnsec.kind") == "best"]
    assert len(best_runs) == 2 and best_runs["metrics.best_objective"].notna().all()

    from sweeps.driver import build_parser, make_plan

    plan = make_plan(
        build_parser().parse_args(
            ["--preset", "smoke", "--only", "holding_rate", "--defense-params", str(out)]
        )
    )
    assert plan.trials
    for t in plan.trials:
        params = t.config["defense"]["params"]
        assert all(params[k] == v for k, v in best["gcleaner"].items())
