"""Sweep platform: grid expansion (no Ray), dry-run output, and end-to-end sweeps on embedded Ray.

The end-to-end tests run ``sweeps/full.py`` in a subprocess (its own embedded Ray, a tmp SQLite MLflow
store, a shared tmp artifact cache) on tiny MUTAG trials: the smoke preset; a trial that raises, is
retried and ends FAILED while the others finish; a sweep interrupted half-way and resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnsec.defenses import DEFENSES  # noqa: E402
from gnnsec.errors import ConfigError  # noqa: E402
from sweeps import grids  # noqa: E402
from sweeps.driver import build_parser, make_plan  # noqa: E402
from sweeps.spec import Preset, SubSweep, build_config, expand, schedule  # noqa: E402

FULL = ROOT / "sweeps" / "full.py"


# ---- grid expansion ------------------------------------------------------------------------------------
BASE = {"data.dataset": "MUTAG", "attack.name": "sub_ba", "defense.name": "finetune", "train.epochs": 2}


def test_expansion_counts_drops_unregistered_and_sets_seeds(caplog: pytest.LogCaptureFixture) -> None:
    subs = {
        "grid": SubSweep(
            "grid",
            "test",
            axes={"attack.name": ("sub_ba", "no_such_attack"), "attack.injection_ratio": (0.05, 0.1, 0.2)},
            factor="attack.injection_ratio",
            methods={"attack.name": "attack", "defense.name": "defense"},
        ),
        "cases": SubSweep(
            "cases",
            "test",
            axes={},
            cases=({"defense.params.epochs": 1}, {"defense.params.epochs": 2, "defense.params.lr": 0.1}),
        ),
        "missing": SubSweep(
            "missing", "test", axes={}, fixed={"defense.name": "nope"}, methods={"defense.name": "defense"}
        ),
        "badparam": SubSweep("badparam", "test", axes={"defense.params.no_such_param": (1, 2)}),
    }
    with caplog.at_level("INFO", logger="sweeps"):
        plan = expand(subs, BASE, Preset("t", "", seeds=(0, 7)))
    assert plan.counts() == {"grid": 3 * 2, "cases": 2 * 2, "missing": 0, "badparam": 0}
    assert plan.declared["grid"] == 2 * 3 * 2
    assert plan.dropped["grid"] == {"attack.name": ["no_such_attack"]}
    assert "not registered" in plan.skipped["missing"]
    assert "no_such_param" in plan.skipped["badparam"]
    skip_lines = [r for r in caplog.records if "missing" in r.getMessage() and "skipped" in r.getMessage()]
    assert len(skip_lines) == 1  # one clear line per skipped sub-sweep
    seeded = [t for t in plan.trials if t.values["seed"] == 7]
    for t in seeded:  # `seed` is one repetition: every seed of the trial
        c = t.config
        assert (
            c["train"]["seed"] == c["data"]["split_seed"] == c["attack"]["seed"] == c["defense"]["seed"] == 7
        )
    assert sorted({t.config["attack"]["injection_ratio"] for t in plan.trials if t.subsweep == "grid"}) == [
        0.05,
        0.1,
        0.2,
    ]
    assert len({t.name for t in plan.trials}) == len(plan.trials)


def test_paper_grid_is_the_declared_study() -> None:
    plan = make_plan(build_parser().parse_args(["--preset", "paper"]))
    d = plan.declared
    assert d["main"] == 4 * 4 * len(grids.DEFENSES_T3) * 5
    assert d["injection_ratio"] == 5 * 4 * len(grids.DEFENSES_T3) * 5
    assert d["trigger_size"] == 6 * 4 * len(grids.DEFENSES_T3) * 5
    assert d["recovered_nodes"] == 7 * 5
    assert d["loss_components"] == 4 * 5
    assert d["backbone"] == 4 * 4 * 4 * 5
    assert d["unlearning"] == 5 * 2 * 4 * 5
    assert set(plan.order) == set(grids.SUBSWEEPS)
    for name, n in plan.counts().items():
        assert n <= d[name]
        assert (n == 0) == (name in plan.skipped)


def test_presets_axes_precedence_and_defense_params_file(tmp_path: Path) -> None:
    quick = make_plan(build_parser().parse_args(["--preset", "quick", "--only", "main"]))
    assert {t.config["data"]["dataset"] for t in quick.trials} <= {"AIDS", "Fingerprint"}
    assert {t.config["train"]["seed"] for t in quick.trials} == {0}
    smoke = make_plan(build_parser().parse_args(["--preset", "smoke"]))
    assert {t.config["data"]["dataset"] for t in smoke.trials} == {"MUTAG"}
    assert all(t.config["train"]["epochs"] == 3 for t in smoke.trials)
    # --defense-params: applied to its defense, but an axis of the sub-sweep still wins
    f = tmp_path / "best.yaml"
    f.write_text("finetune:\n  epochs: 9\n  lr: 0.005\noverrides:\n  train.lr: 0.02\n")
    args = ["--preset", "smoke", "--only", "injection_ratio", "--defense-params", str(f), "--seeds", "3"]
    plan = make_plan(build_parser().parse_args(args))
    assert plan.trials and all(
        t.config["defense"]["params"] == {"epochs": 9, "lr": 0.005} for t in plan.trials
    )
    assert all(t.config["train"]["lr"] == 0.02 and t.config["train"]["seed"] == 3 for t in plan.trials)
    subs = {"s": SubSweep("s", "t", axes={"defense.params.epochs": (1, 4)})}
    plan = expand(subs, BASE, Preset("p", ""), defense_params={"finetune": {"epochs": 9, "lr": 0.5}})
    assert sorted(t.config["defense"]["params"]["epochs"] for t in plan.trials) == [1, 4]
    assert {t.config["defense"]["params"]["lr"] for t in plan.trials} == {0.5}
    # --datasets replaces datasets; node-level sub-sweeps are skipped for graph datasets
    plan = make_plan(build_parser().parse_args(["--preset", "paper", "--datasets", "MUTAG", "--seeds", "0"]))
    assert {t.config["data"]["dataset"] for t in plan.trials} == {"MUTAG"}
    assert "unlearning" in plan.skipped


# ---- sweeps never shrink silently (issue 9.2) --------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--preset", "smoke", "--datasets", "MUTAG", "AIDZ"], "--datasets", "AIDZ"),
        (["--preset", "smoke", "--only", "mian"], "--only", "mian"),
        (["--preset", "smoke", "--set", "attack.name=gtaa"], "attack.name", "gtaa"),
        (["--preset", "smoke", "--set", "train.weight_decay=heavy"], "train.weight_decay", "heavy"),
        (["--preset", "smoke", "--set", "defense.params.epochs=-1"], "epochs", "-1"),
    ],
)
def test_unknown_names_and_bad_overrides_fail_before_ray(argv, field: str, value: str, capsys) -> None:
    from sweeps.driver import main

    with pytest.raises(ConfigError) as err:
        make_plan(build_parser().parse_args(argv))
    assert field in str(err.value) and value in str(err.value)
    assert main([*argv, "--dry-run"]) == 2  # the driver exits with the named error, nothing runs
    assert field in capsys.readouterr().err


def test_unknown_preset_dataset_fails_with_choices() -> None:
    with pytest.raises(ConfigError, match="AIDS") as err:
        expand({"s": SubSweep("s", "t", axes={})}, BASE, Preset("p", "", datasets=("MUTAG", "Mutagg")))
    assert "Mutagg" in str(err.value)


def test_shrinking_subsweeps_are_warnings_in_plan_and_summary(caplog: pytest.LogCaptureFixture) -> None:
    subs = {
        "grid": SubSweep(
            "grid", "t", axes={"attack.name": ("sub_ba", "future_attack")}, methods={"attack.name": "attack"}
        ),
        "later": SubSweep(
            "later", "t", axes={}, fixed={"unlearning.name": "idea"}, methods={"unlearning.name": "unlearner"}
        ),
    }
    with caplog.at_level("INFO", logger="sweeps"):
        plan = expand(subs, BASE, Preset("p", ""))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("future_attack" in m for m in warned) and any("later" in m for m in warned)
    lines = plan.shrinkage()
    assert any(line.startswith("grid: without") and "future_attack" in line for line in lines)
    assert any(line.startswith("later: skipped") for line in lines)


def test_name_that_would_escape_the_run_folder_is_rejected(capsys) -> None:
    from sweeps.driver import main

    for bad in ("../evil", "a/b", "/tmp/x", ".hidden", ""):
        assert main(["--preset", "smoke", "--name", bad, "--dry-run"]) == 2, bad
        assert "--name" in capsys.readouterr().err
    assert main(["--preset", "smoke", "--name", "ok-name_1.2", "--dry-run"]) == 0


def test_the_shipped_driver_has_no_test_only_flags() -> None:
    text = (ROOT / "sweeps" / "driver.py").read_text() + (ROOT / "sweeps" / "trainable.py").read_text()
    assert "inject_failure" not in text and "InjectedFailure" not in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--inject-failure", "x"])


def test_schedule_builds_each_artifact_first() -> None:
    subs = {
        "s": SubSweep(
            "s", "t", axes={"attack.injection_ratio": (0.05, 0.1), "defense.params.epochs": (1, 2, 3)}
        )
    }
    plan = expand(subs, BASE, Preset("p", "", seeds=(0, 1)))
    ordered = schedule(plan.trials)
    assert len(ordered) == len(plan.trials) == 12
    clean_keys = {t.clean_key for t in ordered}
    bd_keys = {t.backdoor_key for t in ordered}
    assert len(clean_keys) == 2 and len(bd_keys) == 4  # two seeds; two injection ratios per seed
    head = ordered[: len(bd_keys)]
    assert {t.backdoor_key for t in head} == bd_keys  # one builder per backdoored model, first
    assert {t.clean_key for t in ordered[: len(clean_keys)]} == clean_keys


def test_build_config_removes_sections() -> None:
    cfg = build_config({"seed": 2, "attack": None, "attack.name": "sub_ba", "data.dataset": "Cora"})
    assert "attack" not in cfg and cfg["train"]["seed"] == 2 and cfg["data"]["split_seed"] == 2


def test_dry_run_prints_every_subsweep_with_count(capsys: pytest.CaptureFixture[str]) -> None:
    from sweeps.driver import main

    assert main(["--preset", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    plan = make_plan(build_parser().parse_args(["--preset", "paper"]))
    counts = plan.counts()
    for name in grids.SUBSWEEPS:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f" {counts[name]:>7} {plan.declared[name]:>9} " in line, line
        if name in plan.skipped:
            assert "skipped: " in line
    assert f"total {len(plan.trials)} trials" in out and "CPU time" in out
    # the printed table adds up: the per-sub-sweep counts (parsed from the text) sum to the total
    rows = [line for line in out.splitlines() if line.split()[:1] and line.split()[0] in grids.SUBSWEEPS]
    assert len(rows) == len(grids.SUBSWEEPS)
    printed = [int(line[52:59]) for line in rows]  # the "trials" column (name 20, paper 30, trials 7)
    assert sum(printed) == len(plan.trials) > 0
    # the main sub-sweep is the product of its registered methods, datasets and five seeds
    main_plan = [t for t in plan.trials if t.subsweep == "main"]
    combos = {
        (t.config["data"]["dataset"], t.config["attack"]["name"], t.config["defense"]["name"])
        for t in main_plan
    }
    assert (
        len(main_plan) == 5 * len(combos) == 5 * 4 * 4 * len(set(grids.DEFENSES_T3) & set(DEFENSES.names()))
    )


# ---- end to end on embedded Ray ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_env(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(
        GNNSEC_DATA_MIRROR=str(mirror),
        GNNSEC_CACHE_DIR=str(tmp_path_factory.mktemp("cache")),
        PYTHONUNBUFFERED="1",
    )
    env["GNNSEC_TEST_ARTIFACTS"] = str(tmp_path_factory.mktemp("artifacts"))  # shared by the sweeps below
    return env


FAULTS = ROOT / "tests" / "helpers" / "sweep_with_faults.py"  # the driver plus test-only fault injection


def _sweep(
    env: dict[str, str], run_dir: Path, *extra: str, wait: bool = True, script: Path = FULL
) -> subprocess.Popen | int:
    cmd = [
        sys.executable,
        str(script),
        "--run-dir",
        str(run_dir),
        "--cache-dir",
        env["GNNSEC_TEST_ARTIFACTS"],
    ]
    cmd += ["--num-cpus", "2", *extra]
    log = open(run_dir.parent / f"{run_dir.name}.log", "a")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if not wait:
        return proc
    try:
        return proc.wait(timeout=600)
    finally:
        log.close()


def _runs(run_dir: Path, experiment: str) -> object:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{run_dir / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[experiment])


def _tail(run_dir: Path) -> str:
    path = run_dir.parent / f"{run_dir.name}.log"
    return path.read_text()[-4000:] if path.exists() else ""


@pytest.mark.slow
def test_smoke_preset_end_to_end(sweep_env: dict[str, str], tmp_path: Path) -> None:
    run_dir = tmp_path / "runs"
    env = {**sweep_env, "GNNSEC_TEST_ARTIFACTS": str(tmp_path / "artifacts")}  # cold cache: count misses
    rc = _sweep(env, run_dir, "--preset", "smoke", "--name", "smoke-e2e")
    assert rc == 0, _tail(run_dir)
    plan = make_plan(build_parser().parse_args(["--preset", "smoke"]))
    runs = _runs(run_dir, "gnnsec/smoke-e2e")
    assert len(runs) == len(plan.trials) >= 4
    assert set(runs["tags.mlflow.runName"]) == {t.name for t in plan.trials}  # each trial exactly once
    assert set(runs["status"]) == {"FINISHED"}
    for col in ("metrics.defended_acc", "metrics.backdoor_asr", "metrics.clean_acc", "metrics.defended_asr"):
        assert runs[col].notna().all(), col
    assert set(runs["tags.gnnsec.subsweep"]) == {"main", "injection_ratio", "holding_rate"}
    assert (runs["params.data.dataset"] == "MUTAG").all()
    # per-epoch histories were logged (batched), artifacts exist
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    rid = runs["run_id"].iloc[0]
    assert len(client.get_metric_history(rid, "clean/loss")) == 3
    assert {"config.json", "per_class_acc.json", "embeddings.npz"} <= {
        a.path for a in client.list_artifacts(rid)
    }
    # each backdoored model was trained once and then read from the cache
    assert runs["metrics.cache_misses"].sum() == len({t.backdoor_key for t in plan.trials}) + len(
        {t.clean_key for t in plan.trials}
    )
    report = run_dir / "report" / "smoke-e2e"
    assert (report / "gcleaner_table3.csv").is_file() and (report / "gcleaner_fig6.png").is_file()
    assert (report / "report.html").is_file()


@pytest.mark.slow
def test_failing_trial_is_retried_then_failed(sweep_env: dict[str, str], tmp_path: Path) -> None:
    run_dir = tmp_path / "runs"
    args = ["--preset", "smoke", "--only", "injection_ratio", "--name", "fail"]
    fault = ["--inject-failure", "injection_ratio=0.1", "--max-failures", "1"]
    rc = _sweep(sweep_env, run_dir, *args, *fault, script=FAULTS)
    assert rc == 1, _tail(run_dir)  # the sweep itself ran to the end, and says that a trial failed
    assert "1 trial(s) FAILED after 1 retries" in _tail(run_dir)
    runs = _runs(run_dir, "gnnsec/fail")
    assert len(runs) == 2 and runs["tags.mlflow.runName"].is_unique
    failed = runs[runs["tags.mlflow.runName"].str.contains("injection_ratio=0.1")]
    assert list(failed["status"]) == ["FAILED"]
    assert failed["tags.gnnsec.attempts"].iloc[0] == "2"  # first try + one retry, in one run
    assert "InjectedFailure" in failed["tags.gnnsec.error"].iloc[0]
    assert (runs.drop(failed.index)["status"] == "FINISHED").all()


def _experiment_ready(db: Path, name: str) -> bool:
    """True once the driver has created the store and the experiment. Read with plain sqlite3 (read-only):
    an MLflow client opened on a store still being created would race the driver's schema migration."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:
        return False


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning(sweep_env: dict[str, str], tmp_path: Path) -> None:
    run_dir = tmp_path / "runs"
    args = ["--preset", "smoke", "--only", "injection_ratio", "holding_rate", "--name", "resume"]
    proc = _sweep(sweep_env, run_dir, *args, "--max-concurrent", "1", "--no-report", wait=False)
    db = run_dir / "mlflow.db"
    finished_before: set[str] = set()
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if _experiment_ready(db, "gnnsec/resume"):
            try:
                runs = _runs(run_dir, "gnnsec/resume")
            except Exception:  # experiment not created yet
                continue
            if len(runs) and (runs["status"] == "FINISHED").sum() >= 1:
                finished_before = set(runs[runs["status"] == "FINISHED"]["tags.gnnsec.trial_id"])
                proc.send_signal(signal.SIGINT)
                break
    assert proc.wait(timeout=120) == 1, _tail(run_dir)  # interrupted, not all trials done
    runs = _runs(run_dir, "gnnsec/resume")
    assert 1 <= len(finished_before) < 4
    assert "RUNNING" not in set(runs["status"])  # open runs were marked KILLED
    rc = _sweep(sweep_env, run_dir, "--preset", "smoke", "--resume", "--name", "resume", "--no-report")
    assert rc == 0, _tail(run_dir)
    runs = _runs(run_dir, "gnnsec/resume")
    assert len(runs) == 4 and runs["tags.gnnsec.trial_id"].is_unique  # each trial exactly once
    assert set(runs["status"]) == {"FINISHED"}
    again = runs[runs["tags.gnnsec.trial_id"].isin(finished_before)]
    assert (again["tags.gnnsec.attempts"] == "1").all()  # finished trials were not re-run


def test_trainable_ships_without_the_checkout(tmp_path: Path) -> None:
    """Workers need gnnsec installed, not this checkout: the sweeps code is pickled by value."""
    from ray import cloudpickle

    import sweeps
    from sweeps.trainable import sweep_trainable

    cloudpickle.register_pickle_by_value(sweeps)
    try:
        blob = tmp_path / "fn.pkl"
        blob.write_bytes(cloudpickle.dumps(sweep_trainable))
    finally:
        cloudpickle.unregister_pickle_by_value(sweeps)
    code = (
        f"import sys, pickle; sys.path = [p for p in sys.path if p not in ('', {str(ROOT)!r})]\n"
        "sys.modules['sweeps'] = None  # a worker without the sweeps package: importing it fails\n"
        f"fn = pickle.loads(open({str(blob)!r}, 'rb').read()); print(fn.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "sweep_trainable"
