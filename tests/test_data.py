"""Datasets load from the mirror with the right counts; features, splits and mirror seeding behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnsec.config import DataConfig
from gnnsec.data import DATASETS, Featurizer, load_graph_dataset, load_node_dataset, split_graphs
from gnnsec.data.stats import dataset_stats
from tests.conftest import require_dataset

# (name, graphs, per-class counts) from the mirror's MANIFEST.md / GCleaner Table 2
GRAPH_DATASETS = [
    ("MUTAG", 188, [63, 125]),
    ("AIDS", 2000, [400, 1600]),
    ("PROTEINS", 1113, [663, 450]),
    ("NCI1", 4110, [2053, 2057]),
    ("Fingerprint", 1661, [538, 517, 109, 497]),
    ("Bitcoin", 1174, [845, 329]),
]


@pytest.mark.parametrize(("name", "graphs", "per_class"), GRAPH_DATASETS)
def test_graph_datasets_load_with_expected_counts(
    mirror, name: str, graphs: int, per_class: list[int]
) -> None:
    require_dataset(mirror, "TUDataset", name)
    ds = load_graph_dataset(DataConfig(dataset=name))
    assert len(ds.graphs) == graphs
    assert np.bincount(ds.labels).tolist() == per_class
    assert ds.graphs[0].x.shape[1] == ds.num_features


def test_table2_statistics_of_aids_and_fingerprint(mirror) -> None:
    aids = dataset_stats("AIDS")
    assert (aids["graphs"], aids["classes"], aids["graphs_per_class"]) == (2000, 2, "400/1600")
    assert aids["avg_nodes"] == pytest.approx(15.69, rel=0.01) and aids["avg_edges"] == pytest.approx(
        16.2, rel=0.01
    )
    fp = dataset_stats("Fingerprint")
    assert (fp["graphs"], fp["graphs_per_class"]) == (1661, "538/517/109/497")
    assert fp["avg_nodes"] == pytest.approx(8.15, abs=0.01) and fp["avg_edges"] == pytest.approx(
        6.81, abs=0.01
    )


@pytest.mark.parametrize(("name", "nodes", "classes"), [("Cora", 2708, 7), ("CiteSeer", 3327, 6)])
def test_node_datasets_load_with_standard_splits(mirror, name: str, nodes: int, classes: int) -> None:
    require_dataset(mirror, "Planetoid", name)
    data = load_node_dataset(DataConfig(dataset=name))
    assert data.num_nodes == nodes and int(data.y.max()) + 1 == classes
    assert int(data.train_mask.sum()) == 20 * classes and int(data.test_mask.sum()) == 1000


def test_incomplete_or_missing_datasets_give_a_clear_error(mirror, tmp_path) -> None:
    from gnnsec.errors import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="CoauthorCS"):
        load_node_dataset(DataConfig(dataset="CoauthorCS", root=str(tmp_path)))


def test_mirror_is_never_written(mirror, tmp_path) -> None:
    before = sorted(p.name for p in (mirror / "TUDataset" / "MUTAG").iterdir())
    load_graph_dataset(DataConfig(dataset="MUTAG", root=str(tmp_path)))
    assert sorted(p.name for p in (mirror / "TUDataset" / "MUTAG").iterdir()) == before
    assert (tmp_path / "TUDataset" / "MUTAG" / "processed").is_dir()


def test_xz_raw_files_are_decompressed_when_seeding(tmp_path) -> None:
    import lzma

    from gnnsec.data.mirror import seed_raw

    spec = DATASETS.get("MUTAG")
    raw = tmp_path / "mirror" / "TUDataset" / "MUTAG" / "raw"
    raw.mkdir(parents=True)
    with lzma.open(raw / "MUTAG_A.txt.xz", "wb") as fh:
        fh.write(b"1, 2\n2, 1\n")
    (raw / "MUTAG_graph_labels.txt").write_text("1\n")
    dst = seed_raw(spec, tmp_path / "mirror", tmp_path / "root")
    assert (dst / "MUTAG_A.txt").read_text() == "1, 2\n2, 1\n"
    assert (dst / "MUTAG_graph_labels.txt").read_text() == "1\n"


def test_native_features_are_node_labels(mirror) -> None:
    ds = load_graph_dataset(DataConfig(dataset="MUTAG", feature_mode="native"))
    assert ds.num_features == 7
    assert torch.all(ds.graphs[0].x.sum(1) == 1)


def test_native_mode_rejected_for_featureless_dataset() -> None:
    from gnnsec.errors import ConfigError

    with pytest.raises(ConfigError, match="feature_mode"):
        load_graph_dataset(DataConfig(dataset="COLLAB", feature_mode="native"))


def test_degree_features_are_capped_one_hot() -> None:
    f = Featurizer("degree", degree_cap=2)
    star = torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]])
    x = f.features(star, 4, None)
    assert x.shape == (4, 3)
    assert x.argmax(1).tolist() == [2, 1, 1, 1]  # centre has degree 3 -> clipped to the cap 2


def test_split_is_seeded_stratified_and_disjoint() -> None:
    labels = np.array([0] * 400 + [1] * 1600)
    a, b = split_graphs(labels, seed=3), split_graphs(labels, seed=3)
    assert all(
        np.array_equal(x, y) for x, y in zip((a.train, a.holding, a.test), (b.train, b.holding, b.test))
    )
    assert len(a.train) == 1600 and len(a.holding) == 60 and len(a.test) == 340
    assert not set(a.holding) & set(a.test) and not set(a.train) & (set(a.test) | set(a.holding))
    assert abs(labels[a.train].mean() - 0.8) < 0.01
    assert not np.array_equal(a.test, split_graphs(labels, seed=4).test)


def test_no_mirror_and_no_network_names_dataset_folder_and_remedy(tmp_path, monkeypatch) -> None:
    import urllib.error

    import torch_geometric.datasets.tu_dataset as tu

    from gnnsec.errors import DataUnavailableError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.delenv("GNNSEC_DATA_MIRROR", raising=False)
    monkeypatch.setattr(tu.fs, "cp", offline)
    with pytest.raises(DataUnavailableError) as err:
        load_graph_dataset(DataConfig(dataset="MUTAG", root=str(tmp_path)))
    msg = str(err.value)
    assert "MUTAG" in msg and str(tmp_path) in msg and "GNNSEC_DATA_MIRROR" in msg
