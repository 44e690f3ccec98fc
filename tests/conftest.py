"""Shared fixtures: the offline data mirror, per-test caches, tiny synthetic graphs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

MIRROR_ENV = "GNNSEC_DATA_MIRROR"


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
        pytest.skip(f"no data mirror: set {MIRROR_ENV} to a folder like ../shared/data")
    os.environ[MIRROR_ENV] = str(path)
    return path


def require_dataset(mirror: Path, family: str, name: str) -> None:
    raw = mirror / family / name / "raw"
    if not raw.is_dir() or not any(raw.iterdir()):
        pytest.skip(f"{name} is not in the data mirror {mirror} (see its MANIFEST.md)")


def path_graph(n: int, y: int = 0, dim: int = 3) -> Data:
    src = torch.arange(n - 1)
    edge_index = torch.cat([torch.stack([src, src + 1]), torch.stack([src + 1, src])], 1)
    return Data(x=torch.randn(n, dim), edge_index=edge_index, y=torch.tensor([y]), num_nodes=n)
