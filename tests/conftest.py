"""Shared fixtures: the offline data mirror, per-test caches, tiny synthetic graphs.

Under ``CI=true`` (how ``.ci/run`` calls the suite) nothing may be skipped: a missing mirror, browser,
database server or optional package is a failure with the reason, so the suite cannot go green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

pytest_plugins = ["pytester"]  # tests/test_ci_no_skip.py runs a probe suite under this conftest
MIRROR_ENV = "GNNSEC_DATA_MIRROR"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> None:
    """``pytest.skip`` locally; under CI=true a failure naming what is missing."""
    if in_ci():
        pytest.fail(f"CI=true: nothing may be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under CI=true any skip (skip marks, importorskip, pytest.skip in a test or fixture) fails."""
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: nothing may be skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    """The same for skips at import time (``pytest.importorskip`` at module level)."""
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: nothing may be skipped: {reason}"


def mirror_path() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    if value and Path(value).is_dir():
        return Path(value)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts go to a per-session temp folder; the processed datasets are shared across the session."""
    monkeypatch.setenv("GNNSEC_ARTIFACT_DIR", str(tmp_path_factory.getbasetemp() / "artifacts"))
    torch.set_num_threads(1)  # small graphs: one thread is fastest and does not oversubscribe CI


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_path()
    if path is None:
        skip_or_fail(f"no data mirror: set {MIRROR_ENV} to a folder like ../shared/data")
    os.environ[MIRROR_ENV] = str(path)
    return path


def require_dataset(mirror: Path, family: str, name: str) -> None:
    raw = mirror / family / name / "raw"
    if not raw.is_dir() or not any(raw.iterdir()):
        skip_or_fail(f"{name} is not in the data mirror {mirror} (see its MANIFEST.md)")


def path_graph(n: int, y: int = 0, dim: int = 3) -> Data:
    src = torch.arange(n - 1)
    edge_index = torch.cat([torch.stack([src, src + 1]), torch.stack([src + 1, src])], 1)
    return Data(x=torch.randn(n, dim), edge_index=edge_index, y=torch.tensor([y]), num_nodes=n)


def aids_small_config(tmp: Path, attack: str, seed: int, defense_params: dict | None = None):  # noqa: ANN201
    """AIDS, a small GIN (hidden 32, 20 epochs), ``attack``, GCleaner (its defaults unless
    ``defense_params``); one seed everywhere. Shared by the GCleaner end-to-end tests."""
    from gnnsec.config import TrialConfig

    return TrialConfig.from_dict(
        {
            "data": {"dataset": "AIDS", "root": str(tmp / "data"), "split_seed": seed},
            "model": {"name": "GIN", "hidden": 32},
            "train": {"epochs": 20, "step_size": 20, "seed": seed},
            "attack": {"name": attack, "seed": seed},
            "defense": {"name": "gcleaner", "seed": seed, "params": dict(defense_params or {})},
        }
    )
