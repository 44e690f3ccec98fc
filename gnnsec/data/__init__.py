"""Datasets (registry, mirror seeding, features, splits)."""

from gnnsec.data.features import Featurizer
from gnnsec.data.loading import GraphDataset, load_graph_dataset, load_node_dataset
from gnnsec.data.registry import DATASETS, DatasetSpec
from gnnsec.data.splits import GraphSplit, split_graphs

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Featurizer",
    "GraphDataset",
    "GraphSplit",
    "load_graph_dataset",
    "load_node_dataset",
    "split_graphs",
]
