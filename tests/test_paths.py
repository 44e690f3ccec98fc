"""Names that become paths cannot write outside their run folder (issue 9.4, path part)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gnnsec.errors import ConfigError
from gnnsec.paths import inside, safe_name, slug

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "bad", ["..", "../x", "a/../../b", "/etc/passwd", ".hidden", "", "a b", "x\n", "a\\b"]
)
def test_unsafe_names_are_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="--name"):
        safe_name(bad, "--name")


def test_safe_names_pass_and_nesting_is_opt_in() -> None:
    assert safe_name("quick-20250101-120000", "--name") == "quick-20250101-120000"
    assert safe_name("gnnsec/tune-gcleaner-AIDS-sub_ba", "x", nested=True).startswith("gnnsec/")
    with pytest.raises(ConfigError):
        safe_name("gnnsec/x", "--name")
    with pytest.raises(ConfigError):
        safe_name("gnnsec/../x", "x", nested=True)


def test_inside_and_slug(tmp_path: Path) -> None:
    assert inside(tmp_path, tmp_path / "a" / "b.yaml", "--out") == (tmp_path / "a" / "b.yaml").resolve()
    with pytest.raises(ConfigError, match="--out"):
        inside(tmp_path / "runs", tmp_path / "runs" / ".." / "x.yaml", "--out")
    assert "/" not in slug("../../etc/x") and not slug("../../etc/x").startswith(".")


def test_tuner_rejects_escaping_study_and_out(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "sweeps"))
    from sweeps.tune_gcleaner import main

    with pytest.raises(ConfigError, match="--study"):
        main(["--run-dir", str(tmp_path / "runs"), "--study", "../../evil"])
    with pytest.raises(ConfigError, match="--out"):
        main(["--run-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "elsewhere.yaml")])


def test_report_keeps_names_read_from_mlflow_inside_its_folder(tmp_path: Path) -> None:
    from gnnsec.report import build_report
    from gnnsec.tracking import FACTOR_TAG, SUBSWEEP_TAG, TrackerSettings, TrialTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = TrialTracker(TrackerSettings(uri, "gnnsec/../../escape", (tmp_path / "art").as_uri()))
    for i, ratio in enumerate((0.01, 0.05)):
        cfg = {
            "data": {"dataset": "AIDS", "split_seed": 0},
            "train": {"seed": 0},
            "attack": {"name": "sub_ba", "injection_ratio": ratio, "seed": 0},
            "defense": {"name": "gcleaner", "seed": 0},
        }
        tags = {SUBSWEEP_TAG: "../../../pwned", FACTOR_TAG: "attack.injection_ratio"}
        tracker.start(f"t{i}", f"r{i}", cfg, tags)
        tracker.log_metrics(f"t{i}", {"backdoor_asr": 0.9, "defended_asr": 0.1, "defended_acc": 0.9})
        tracker.finish(f"t{i}", "FINISHED")
    out = tmp_path / "run" / "report" / "x"
    written = build_report(experiment="gnnsec/../../escape", uri=uri, out_dir=out)
    paths = [p for group in written.values() for p in group]
    assert paths and all(out.resolve() in Path(p).resolve().parents for p in paths)
    assert (out / "report.html") in [Path(p) for p in paths]  # the report was written, inside its folder
    assert all(out in p.parents for p in tmp_path.rglob("*pwned*"))
