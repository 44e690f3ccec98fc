"""Loading registered datasets through PyG's own classes, from the mirror or PyG's download."""

from __future__ import annotations

import logging
import shutil
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.data import Dataset as PygDataset

from gnnsec.config import DataConfig
from gnnsec.data.features import Featurizer
from gnnsec.data.mirror import dataset_lock, mirror_has, seed_raw, unavailable
from gnnsec.data.packed import load_pack, pack_lock, pack_path, save_pack
from gnnsec.data.registry import DATASETS, DatasetSpec
from gnnsec.data.splits import GraphSplit, split_graphs
from gnnsec.errors import ConfigError, DataUnavailableError

log = logging.getLogger(__name__)


@dataclass
class GraphDataset:
    """A graph-classification dataset ready for training: featurized graphs plus how they were featurized."""

    spec: DatasetSpec
    graphs: list[Data]
    num_classes: int
    featurizer: Featurizer

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_features(self) -> int:
        return self.featurizer.num_features

    @property
    def labels(self) -> np.ndarray:
        return np.array([int(g.y) for g in self.graphs])

    @property
    def avg_nodes(self) -> float:
        return float(np.mean([g.num_nodes for g in self.graphs]))

    def subset(self, idx: np.ndarray) -> list[Data]:
        return [self.graphs[int(i)] for i in idx]

    def split(self, cfg: DataConfig) -> GraphSplit:
        return split_graphs(self.labels, cfg.split_seed, cfg.train_ratio, cfg.holding_rate)


def _pyg_class(spec: DatasetSpec) -> type[PygDataset]:
    from torch_geometric import datasets

    return getattr(datasets, spec.family)


def load_pyg(spec: DatasetSpec, mirror: Path | None, root: Path) -> PygDataset:
    """Return PyG's dataset object, seeding its raw folder from ``mirror`` when one is set.

    A ``processed/`` file that cannot be read (truncated, corrupt) is reported at WARNING as such, moved
    away and rebuilt from the raw files once; only a failure without processed files is "unavailable".
    """
    family_root = root / spec.family
    processed = family_root / spec.pyg_name / "processed"
    kwargs = {"use_node_attr": True} if spec.family == "TUDataset" else {}
    with dataset_lock(root, spec):
        if mirror is not None:
            if not mirror_has(spec, mirror) and not (root / spec.mirror_subdir).is_dir():
                raise unavailable(spec, mirror / spec.mirror_subdir, "not in the mirror")
            if mirror_has(spec, mirror):
                seed_raw(spec, mirror, root)
        for attempt in (0, 1):
            had_processed = processed.is_dir() and any(processed.iterdir())
            try:
                return _pyg_class(spec)(str(family_root), spec.pyg_name, **kwargs)
            except DataUnavailableError:
                raise
            except Exception as exc:  # noqa: BLE001  (unpickling a corrupt file raises many types)
                reason = f"{type(exc).__name__}: {exc}"
                if had_processed and attempt == 0:
                    log.warning(
                        "%s: processed file in %s is corrupt (%s); rebuilding it from the raw files",
                        spec.name,
                        processed,
                        reason,
                    )
                    shutil.rmtree(processed, ignore_errors=True)
                    continue
                if isinstance(exc, urllib.error.URLError | OSError | RuntimeError):  # download failed
                    raise unavailable(spec, root / spec.mirror_subdir, reason) from exc
                raise
        raise AssertionError("unreachable")


def _native_features(pyg: PygDataset, spec: DatasetSpec) -> tuple[int, slice]:
    n_labels = int(getattr(pyg, "num_node_labels", 0) or 0)
    n_attrs = int(getattr(pyg, "num_node_attributes", 0) or 0)
    if n_labels > 0:  # TU puts node attributes first, then the one-hot node labels
        return n_labels, slice(n_attrs, n_attrs + n_labels)
    if n_attrs > 0:
        return n_attrs, slice(0, n_attrs)
    raise ConfigError("data.feature_mode", "native", f"degree ({spec.name} has no native node features)")


def load_graph_dataset(cfg: DataConfig) -> GraphDataset:
    """Load, filter, relabel and featurize a graph-classification dataset."""
    spec = DATASETS.get(cfg.dataset, "data.dataset")
    if spec.task != "graph":
        raise ConfigError(
            "data.dataset", cfg.dataset, [n for n in DATASETS if DATASETS.get(n).task == "graph"]
        )
    if cfg.feature_mode == "native" and not spec.native_features:
        raise ConfigError("data.feature_mode", "native", f"degree ({spec.name} has no native node features)")
    root = cfg.root_path
    if cfg.mirror_path is not None and mirror_has(spec, cfg.mirror_path):
        with dataset_lock(root, spec):
            seed_raw(spec, cfg.mirror_path, root)
    path = pack_path(spec, root, cfg.feature_mode, cfg.degree_cap)
    packed = load_pack(path, cfg.feature_mode) if path is not None else None
    if packed is None and path is not None:
        with pack_lock(path):  # one builder per key; the others wait and read its file
            packed = load_pack(path, cfg.feature_mode)
            if packed is None:
                packed = _featurize(cfg, spec)
                save_pack(path, *packed)
    elif packed is None:  # no raw files yet: PyG downloads them, then the pack is written
        packed = _featurize(cfg, spec)
        path = pack_path(spec, root, cfg.feature_mode, cfg.degree_cap)
        if path is not None:
            with pack_lock(path):
                save_pack(path, *packed)
    graphs, featurizer, num_classes = packed
    log.info(
        "loaded %s: %d graphs, %d features (%s)",
        spec.name,
        len(graphs),
        featurizer.num_features,
        cfg.feature_mode,
    )
    return GraphDataset(spec, graphs, num_classes, featurizer)


def _featurize(cfg: DataConfig, spec: DatasetSpec) -> tuple[list[Data], Featurizer, int]:
    """Graphs from PyG, filtered and relabelled, with their node features (cached by the caller)."""
    pyg = load_pyg(spec, cfg.mirror_path, cfg.root_path)
    native_dim, cols = (0, slice(0, 0))
    if cfg.feature_mode == "native":
        native_dim, cols = _native_features(pyg, spec)
    graphs: list[Data] = []
    for data in pyg:
        if spec.graph_filter is not None and not spec.graph_filter(data):
            continue
        y = int(data.y)
        if spec.label_map is not None:
            y = spec.label_map[y]
        g = Data(edge_index=data.edge_index, y=torch.tensor([y]), num_nodes=int(data.num_nodes))
        if cfg.feature_mode == "native":
            g.x_native = data.x[:, cols].float()
        graphs.append(g)
    max_degree = max(
        (int(torch.bincount(g.edge_index[1], minlength=g.num_nodes).max()) for g in graphs if g.num_edges),
        default=1,
    )
    featurizer = Featurizer(cfg.feature_mode, cfg.degree_cap or max(1, max_degree), native_dim)
    for g in graphs:
        g.x = featurizer.features(g.edge_index, g.num_nodes, getattr(g, "x_native", None))
    num_classes = spec.num_classes or int(max(int(g.y) for g in graphs)) + 1
    return graphs, featurizer, num_classes


def load_node_dataset(cfg: DataConfig) -> Data:
    """Node-classification datasets with their standard splits (Planetoid public split; Coauthor: none)."""
    spec = DATASETS.get(cfg.dataset, "data.dataset")
    if spec.task != "node":
        raise ConfigError(
            "data.dataset", cfg.dataset, [n for n in DATASETS if DATASETS.get(n).task == "node"]
        )
    return load_pyg(spec, cfg.mirror_path, cfg.root_path)[0]
