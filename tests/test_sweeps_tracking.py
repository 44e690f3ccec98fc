"""gnnsec.tracking: one MLflow run per trial id, batched logging, clean terminal states, the UI-facing tags
(experiment kind, dataset inputs, saved views), and the CLI commands that use it (in gnnsec/cli.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from gnnsec.tracking import (
    ATTEMPTS_TAG,
    TrackerSettings,
    TrialTracker,
    artifact_location,
    flatten,
    tracking_uri,
)


@pytest.fixture()
def tracker(tmp_path: Path) -> TrialTracker:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return TrialTracker(
        TrackerSettings(uri, "gnnsec/test", artifact_location(uri, tmp_path), {"gnnsec.sweep": "t"})
    )


CONFIG = {
    "data": {"dataset": "MUTAG"},
    "attack": {"name": "sub_ba", "params": {"density": 0.8}},
    "defense": None,
}


def test_one_run_per_trial_reused_on_retry_and_resume(tracker: TrialTracker) -> None:
    rid = tracker.start("t1", "main/MUTAG/s0", CONFIG, {"gnnsec.subsweep": "main"})
    run = tracker.client.get_run(rid)
    assert run.data.params["attack.params.density"] == "0.8" and run.data.params["data.dataset"] == "MUTAG"
    assert run.data.tags["gnnsec.subsweep"] == "main" and run.data.tags["gnnsec.sweep"] == "t"
    tracker.finish("t1", "KILLED")  # e.g. the driver was interrupted
    resumed = pickle.loads(pickle.dumps(tracker))  # a new driver: no cached ids, no client
    assert resumed._client is None and resumed._runs == {}
    assert resumed.start("t1", "main/MUTAG/s0", CONFIG) == rid
    run = resumed.client.get_run(rid)
    assert run.info.status == "RUNNING" and run.data.tags[ATTEMPTS_TAG] == "2"
    resumed.finish("t1")
    runs = resumed.client.search_runs([resumed.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_metrics_and_history_are_batched(tracker: TrialTracker, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = tracker.start("t2", "x", CONFIG)
    calls = []
    original = tracker.client.log_batch
    monkeypatch.setattr(tracker.client, "log_batch", lambda *a, **k: (calls.append(k), original(*a, **k))[1])
    monkeypatch.setattr(tracker.client, "log_metric", lambda *a, **k: pytest.fail("one call per value"))
    history = {"clean": [{"epoch": e, "loss": 1.0 / (e + 1), "acc": 0.5} for e in range(700)]}
    assert tracker.log_history("t2", history) == 1400
    assert len(calls) == 2  # 1400 values in batches of 1000
    assert tracker.log_metrics("t2", {"clean_acc": 0.75, "flag": True, "name": "skip me"}) == 2
    losses = tracker.client.get_metric_history(rid, "clean/loss")
    assert len(losses) == 700 and sorted(m.step for m in losses)[-1] == 699
    assert tracker.client.get_run(rid).data.metrics["clean_acc"] == 0.75


def test_fail_and_kill_open(tracker: TrialTracker) -> None:
    tracker.start("ok", "ok", CONFIG)
    tracker.start("open", "open", CONFIG)
    tracker.finish("ok")
    tracker.fail("bad", "Traceback ...\nRuntimeError: boom\n")  # failed before it started: still one run
    assert tracker.kill_open() == 1
    status = {r.data.tags["gnnsec.trial_id"]: r for r in tracker.client.search_runs([tracker.experiment_id])}
    assert {k: r.info.status for k, r in status.items()} == {
        "ok": "FINISHED",
        "open": "KILLED",
        "bad": "FAILED",
    }
    assert status["bad"].data.tags["gnnsec.error"] == "RuntimeError: boom"
    assert [a.path for a in tracker.client.list_artifacts(status["bad"].info.run_id)] == ["error.txt"]


def test_store_location_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("GNNSEC_RUN_DIR", str(tmp_path / "r"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}"
    assert artifact_location(tracking_uri()) == (tmp_path / "r" / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000" and artifact_location(tracking_uri()) is None
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}


def test_cli_commands_registered() -> None:
    from gnnsec.cli import build_parser

    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1" and args.port == 5000  # loopback unless told otherwise
    args = build_parser().parse_args(["sweep", "--preset", "smoke", "--dry-run"])
    assert args.sweep_args == ["--preset", "smoke", "--dry-run"]
    args = build_parser().parse_args(["report", "--experiment", "gnnsec/x"])
    assert args.experiment == "gnnsec/x"


def test_experiment_opens_in_training_view_with_saved_acc_asr_views(tracker: TrialTracker) -> None:
    import json

    from gnnsec.tracking import EXPERIMENT_KIND_TAG, RESULTS_VIEW, SHARED_VIEW_PREFIX, ensure_experiment

    tracker.start("t1", "main/MUTAG/s0", CONFIG)
    tags = tracker.client.get_experiment(tracker.experiment_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(tags[SHARED_VIEW_PREFIX + RESULTS_VIEW])
    assert {"metrics.`defended_asr`", "metrics.`defended_acc`", "attributes.`Dataset`"} <= set(
        view["selectedColumns"]
    )
    # an experiment made without the tag (older code) gets it on the next sweep that uses it
    client = tracker.client
    old = client.create_experiment("gnnsec/old")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert ensure_experiment(client, "gnnsec/old") == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_each_run_logs_its_dataset_as_an_input(tracker: TrialTracker) -> None:
    cfg = {"data": {"dataset": "MUTAG", "split_seed": 1}, "attack": {"name": "sub_ba"}}
    rid = tracker.start("t1", "x", cfg)
    other = tracker.start("t2", "y", {**cfg, "data": {"dataset": "MUTAG", "split_seed": 2}})
    inputs = {r: tracker.client.get_run(r).inputs.dataset_inputs for r in (rid, other)}
    assert [d.dataset.name for d in inputs[rid]] == ["MUTAG"]
    assert [t.value for t in inputs[rid][0].tags if t.key == "mlflow.data.context"] == ["train"]
    assert inputs[rid][0].dataset.digest != inputs[other][0].dataset.digest  # another split: another digest
    assert tracker.client.get_run(tracker.start("t3", "z", {"train": {}})).inputs.dataset_inputs == []


def test_tracking_report_and_cli_have_one_home_each() -> None:
    """tracking.py writes MLflow and imports neither the report nor the CLI; the report never imports the
    CLI; every module of these stays under ~400 lines (ast: imports anywhere in the module, also lazy)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "gnnsec"

    def imports(path: Path) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    tracking = imports(root / "tracking.py") | imports(root / "provenance.py")
    assert not {m for m in tracking if m.startswith(("gnnsec.report", "gnnsec.cli", "sweeps"))}
    for path in (root / "report").glob("*.py"):
        assert not {m for m in imports(path) if m.startswith(("gnnsec.cli", "sweeps"))}, path
        assert len(path.read_text().splitlines()) <= 400, path
    assert len((root / "tracking.py").read_text().splitlines()) <= 400
    assert not {n for n in ("cmd_ui", "cmd_sweep", "cmd_report") if n in (root / "tracking.py").read_text()}
