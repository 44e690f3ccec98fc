"""Under CI=true the suite cannot go green by skipping (issue 9.5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
PROBE = """
import pytest

def test_needs_mirror(mirror):
    assert mirror.is_dir()

@pytest.mark.skip(reason="no browser")
def test_marked_skip():
    pass

def test_importorskip():
    pytest.importorskip("no_such_package_for_gnnsec")
"""


@pytest.fixture()
def probe(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_probe=PROBE)
    monkeypatch.setenv("GNNSEC_DATA_MIRROR", str(tmp_path / "no-mirror-here"))
    return pytester


def test_skips_are_failures_under_ci(probe: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = probe.runpytest("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()  # a skip in a fixture or mark fails at setup: an error
    assert result.ret != 0 and "skipped" not in outcomes
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 3, outcomes
    result.stdout.fnmatch_lines(["*CI=true: nothing may be skipped: no data mirror*"])
    result.stdout.fnmatch_lines(["*CI=true: nothing may be skipped*no browser*"])


def test_skips_stay_skips_locally(probe: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    probe.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=3)


def test_multiprocess_check_fails_instead_of_skipping_under_ci(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PGBIN": str(tmp_path / "no-postgres"),
        "PY": "/bin/false",
        "HOME": str(tmp_path),
    }
    local = subprocess.run(["bash", ".ci/multiprocess.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert local.returncode == 0 and "SKIP" in local.stdout
    ci = subprocess.run(
        ["bash", ".ci/multiprocess.sh"], cwd=ROOT, env={**env, "CI": "true"}, capture_output=True, text=True
    )
    assert ci.returncode != 0 and "CI=true" in ci.stdout + ci.stderr


def test_test_script_refuses_to_skip_the_cluster_check_under_ci() -> None:
    text = (ROOT / "scripts" / "test.sh").read_text()
    assert "CI" in text
    env = {"PATH": "/usr/bin:/bin", "CI": "true", "GNNSEC_SKIP_MULTIPROCESS": "1", "GNNSEC_DATA_MIRROR": ""}
    out = subprocess.run(
        ["bash", "-c", 'source <(sed -n "/^# --- CI: no skips/,/^# --- end CI/p" scripts/test.sh)'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "CI=true" in out.stdout + out.stderr
