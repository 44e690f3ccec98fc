"""Node-classification data (Forget and Explain, section 4): one graph with train/val/test node masks.

Planetoid (Cora, CiteSeer, PubMed): the public fixed split. Coauthor CS/Physics have no public split: a
seeded stratified split with 20 training and 30 validation nodes per class, the rest test (the protocol of
Shchur et al., "Pitfalls of GNN evaluation", which the unlearning literature follows); seed
``data.split_seed``. Features are row-normalised (sum to 1), as in GCN's Planetoid setup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from gnnsec.config import DataConfig
from gnnsec.data.loading import load_node_dataset
from gnnsec.data.registry import DATASETS

log = logging.getLogger(__name__)

COAUTHOR_TRAIN_PER_CLASS, COAUTHOR_VAL_PER_CLASS = 20, 30


@dataclass
class NodeData:
    """The graph, its masks and class count; ``graph.node_ids`` are the original node ids (identity)."""

    name: str
    graph: Data
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return int(self.graph.num_nodes)

    @property
    def num_features(self) -> int:
        return int(self.graph.x.size(1))


def stratified_node_split(
    labels: Tensor, seed: int, n_train: int, n_val: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Masks with ``n_train``/``n_val`` nodes per class (seeded), every other node in the test mask."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    train = np.zeros(len(y), dtype=bool)
    val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        train[idx[:n_train]] = True
        val[idx[n_train : n_train + n_val]] = True
    test = ~(train | val)
    return torch.from_numpy(train), torch.from_numpy(val), torch.from_numpy(test)


def load_node_data(cfg: DataConfig) -> NodeData:
    spec = DATASETS.get(cfg.dataset, "data.dataset")
    raw = load_node_dataset(cfg)
    x = raw.x.float()
    x = x / x.sum(1, keepdim=True).clamp(min=1e-12)
    edge_index = to_undirected(raw.edge_index, num_nodes=raw.num_nodes)
    g = Data(x=x, edge_index=edge_index, y=raw.y.view(-1), num_nodes=int(raw.num_nodes))
    if getattr(raw, "train_mask", None) is not None:
        g.train_mask, g.val_mask, g.test_mask = raw.train_mask, raw.val_mask, raw.test_mask
    else:
        g.train_mask, g.val_mask, g.test_mask = stratified_node_split(
            g.y, cfg.split_seed, COAUTHOR_TRAIN_PER_CLASS, COAUTHOR_VAL_PER_CLASS
        )
    g.node_ids = torch.arange(g.num_nodes)
    num_classes = int(g.y.max()) + 1
    log.info("loaded %s: %d nodes, %d edges, %d classes", spec.name, g.num_nodes, g.num_edges, num_classes)
    return NodeData(spec.name, g, num_classes)
