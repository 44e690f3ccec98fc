"""The Optuna + ASHA tuner end to end on tiny MUTAG settings: study persisted and resumed, best parameters
in MLflow and in a YAML file that ``sweeps/full.py --defense-params`` accepts; ASHA ends poor settings
while GCleaner is still unlearning; the defender-side objective ranks what the rates tie."""

from __future__ import annotations

import json
import math
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
    assert all(-1.0 <= m.value <= 2.0 for m in curve)  # soft val acc + drop of the trigger's probability
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


def _env(mirror: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(GNNSEC_DATA_MIRROR=str(mirror), GNNSEC_CACHE_DIR=str(tmp_path / "cache"))
    return env


@pytest.mark.slow
def test_asha_stops_poor_settings_while_gcleaner_unlearns(mirror: Path, tmp_path: Path) -> None:
    """One trial at a time (seeded TPE, deterministic order): every trial reports after each unlearning
    epoch, and ASHA ends at least one setting before its last epoch; such a trial never delivers its
    final report, and Optuna records it as PRUNED, so the best trial ran to the end."""
    import optuna

    run_dir = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "sweeps" / "tune_gcleaner.py"), "--run-dir", str(run_dir)]
    cmd += ["--cache-dir", str(tmp_path / "art"), "--study", "asha", "--trials", "6", *TINY]
    cmd[cmd.index("--max-epochs") + 1] = "8"
    cmd[cmd.index("--concurrency") + 1] = "1"
    cmd[cmd.index("--num-cpus") + 1] = "1"
    proc = subprocess.run(cmd, env=_env(mirror, tmp_path), capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    trials = []
    for path in (run_dir / "ray").glob("*/*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        epochs = [r for r in rows if not r.get("final")]
        assert [r["epoch"] for r in epochs] == list(range(len(epochs)))  # one report per epoch, live
        trials.append((rows[0]["config"]["unlearn_epochs"], len(epochs), any(r.get("final") for r in rows)))
    assert len(trials) == 6
    stopped = [(planned, done) for planned, done, final in trials if not final]
    assert any(done < planned for planned, done in stopped), trials  # ended mid-defense
    for planned, done, final in trials:
        assert done == planned if final else done <= planned

    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(stopped)
    assert study.best_trial.state == optuna.trial.TrialState.COMPLETE


def test_objective_ranks_settings_the_rates_tie() -> None:
    """J = soft validation accuracy + drop of the recovered trigger's class probability (defender-side)."""
    from sweeps.tuning import final_objective, objective_of

    before = {"val_soft_acc_before": 0.9, "val_trigger_prob_before": 0.95}
    strong = {**before, "val_soft_acc": 0.88, "val_trigger_prob": 0.10}
    weak = {**before, "val_soft_acc": 0.89, "val_trigger_prob": 0.60}
    assert math.isclose(objective_of(strong), 0.88 + 0.85)
    assert objective_of(strong) > objective_of(weak) > objective_of(before)
    # the input model returned unchanged scores its own soft accuracy, whatever the student did
    metrics = {"returned_input": 1.0, "val_soft_acc_before": 0.9, "val_trigger_prob_before": 0.95}
    metrics.update({"val_soft_acc_after": 0.5, "val_trigger_prob_after": 0.0})
    assert math.isclose(final_objective(metrics), 0.9)
    metrics["returned_input"] = 0.0
    assert math.isclose(final_objective(metrics), 0.5 + 0.95)
    # a recovery that found no trigger has nothing to drop: it cannot beat unlearning a real one
    nothing = {"val_soft_acc_before": 0.9, "val_trigger_prob_before": 0.02, "val_soft_acc": 0.9}
    assert objective_of({**nothing, "val_trigger_prob": 0.01}) < objective_of(strong)
    assert objective_of({"val_acc": 1.0}) is None


def test_gcleaner_reports_the_objective_inputs_every_epoch() -> None:
    """The rows GCleaner hands its progress hook carry what ``objective_of`` reads, for the student at that
    epoch and for the input model; the soft signals are the mean probabilities they claim to be."""
    import torch

    from gnnsec.config import DefenseConfig
    from gnnsec.data.features import Featurizer
    from gnnsec.defenses import DefenderData
    from gnnsec.defenses.gcleaner import GCleaner
    from gnnsec.defenses.gcleaner.signals import class_probs, trigger_prob, true_class_prob
    from sweeps.tuning import objective_of
    from tests.test_gcleaner import CAP, FAST, _toy_model, random_graph

    featurizer = Featurizer("degree", CAP)
    gen = torch.Generator().manual_seed(0)
    graphs = [random_graph(6 + i % 5, i % 2, gen, featurizer) for i in range(12)]
    model = _toy_model(featurizer)
    probs = class_probs(model, graphs)
    labels = torch.tensor([int(g.y) for g in graphs])
    assert math.isclose(
        true_class_prob(model, graphs), float(probs[torch.arange(12), labels].mean()), rel_tol=1e-6
    )
    shifted = graphs[1:] + graphs[:1]  # stand-in "triggered" copies: the probabilities of other graphs
    want = float(class_probs(model, shifted)[labels == 0, 1].mean())
    assert math.isclose(trigger_prob(model, graphs, shifted, 1), want, rel_tol=1e-6)

    params = {**FAST, "require_detection": False, "unlearn_epochs": 3, "lr_retries": 0}  # one schedule
    defense = GCleaner(DefenseConfig("gcleaner", params))
    rows: list[dict] = []
    defense.on_epoch = lambda epoch, row: rows.append(row)
    defense.defend(model, DefenderData(graphs, 2, featurizer))
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert {"val_soft_acc", "val_trigger_prob", "val_trigger_prob_before"} <= set(r)
        assert objective_of(r) is not None and -1.0 <= objective_of(r) <= 2.0
    assert len({objective_of(r) for r in rows}) > 1  # continuous: epochs are told apart
