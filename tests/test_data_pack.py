"""A featurized dataset is built once per data root and read back identically (tiny COLLAB stand-in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import gnnsec.data.loading as loading
from gnnsec.config import DataConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.data.packed import pack_path
from gnnsec.data.registry import DATASETS


def _fake_collab(mirror: Path, n_graphs: int = 12, seed: int = 0) -> None:
    """TU raw files in COLLAB's layout: undirected random graphs, labels 1..3, no node labels."""
    gen = torch.Generator().manual_seed(seed)
    raw = mirror / "TUDataset" / "COLLAB" / "raw"
    raw.mkdir(parents=True)
    edges, indicator, labels, offset = [], [], [], 1
    for g in range(n_graphs):
        n = int(torch.randint(3, 12, (1,), generator=gen))
        pairs = {(int(a), int(b)) for a, b in torch.randint(0, n, (3 * n, 2), generator=gen) if a != b}
        for a, b in sorted(pairs | {(b, a) for a, b in pairs}):
            edges.append(f"{a + offset}, {b + offset}")
        indicator += [str(g + 1)] * n
        labels.append(str(g % 3 + 1))
        offset += n
    (raw / "COLLAB_A.txt").write_text("\n".join(edges) + "\n")
    (raw / "COLLAB_graph_indicator.txt").write_text("\n".join(indicator) + "\n")
    (raw / "COLLAB_graph_labels.txt").write_text("\n".join(labels) + "\n")


def _same_graphs(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for g, h in zip(a, b, strict=True):
        if list(g.keys()) != list(h.keys()) or g.num_nodes != h.num_nodes:
            return False
        for key in ("x", "edge_index", "y"):
            if g[key].dtype != h[key].dtype or not torch.equal(g[key], h[key]):
                return False
    return True


@pytest.fixture()
def fake(tmp_path: Path) -> DataConfig:
    _fake_collab(tmp_path / "mirror")
    return DataConfig(dataset="COLLAB", mirror=str(tmp_path / "mirror"), root=str(tmp_path / "root"))


def test_second_load_reads_the_pack_and_skips_pyg(fake: DataConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_graph_dataset(fake)
    path = pack_path(DATASETS.get("COLLAB"), fake.root_path, "degree", None)
    assert path is not None and path.is_file()

    def no_pyg(*_a: object, **_k: object) -> None:
        raise AssertionError("PyG was loaded although the featurized pack exists")

    monkeypatch.setattr(loading, "load_pyg", no_pyg)
    second = load_graph_dataset(fake)
    assert _same_graphs(first.graphs, second.graphs)
    assert second.featurizer == first.featurizer and second.num_classes == first.num_classes == 3
    assert all(torch.all(g.x.sum(1) == 1) for g in second.graphs)  # one-hot degree rows
    monkeypatch.undo()
    path.unlink()  # built afresh from PyG: the same graphs
    assert _same_graphs(load_graph_dataset(fake).graphs, first.graphs)


def test_corrupt_pack_is_rebuilt(fake: DataConfig) -> None:
    first = load_graph_dataset(fake)
    path = pack_path(DATASETS.get("COLLAB"), fake.root_path, "degree", None)
    assert path is not None
    path.write_bytes(b"truncated")
    assert _same_graphs(load_graph_dataset(fake).graphs, first.graphs)
    assert path.stat().st_size > 100


def test_key_follows_settings_and_raw_files(fake: DataConfig) -> None:
    load_graph_dataset(fake)
    spec, root = DATASETS.get("COLLAB"), fake.root_path
    base = pack_path(spec, root, "degree", None)
    assert base != pack_path(spec, root, "degree", 3)
    capped = load_graph_dataset(
        DataConfig(dataset="COLLAB", mirror=fake.mirror, root=fake.root, degree_cap=3)
    )
    assert capped.num_features == 4
    raw = root / "TUDataset" / "COLLAB" / "raw" / "COLLAB_graph_labels.txt"
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))  # a replaced raw file
    assert pack_path(spec, root, "degree", None) != base
