"""Dataset statistics in the columns of the GCleaner paper's Table 2."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from gnnsec.config import DataConfig
from gnnsec.data.loading import load_graph_dataset, load_node_dataset
from gnnsec.data.registry import DATASETS


def dataset_stats(name: str, **data_kwargs: Any) -> dict[str, Any]:
    """Graphs, average nodes and (undirected) edges, classes and graphs per class of one dataset."""
    spec = DATASETS.get(name, "data.dataset")
    cfg = DataConfig(dataset=spec.name, feature_mode="degree", **data_kwargs)
    if spec.task == "node":
        data = load_node_dataset(cfg)
        counts = Counter(data.y.tolist())
        return {
            "dataset": spec.name,
            "task": "node",
            "graphs": 1,
            "avg_nodes": float(data.num_nodes),
            "avg_edges": data.num_edges / 2,
            "classes": len(counts),
            "graphs_per_class": "/".join(str(counts[c]) for c in sorted(counts)),
        }
    ds = load_graph_dataset(cfg)
    counts = Counter(int(g.y) for g in ds.graphs)
    return {
        "dataset": spec.name,
        "task": "graph",
        "graphs": len(ds.graphs),
        "avg_nodes": round(float(np.mean([g.num_nodes for g in ds.graphs])), 2),
        "avg_edges": round(float(np.mean([g.num_edges / 2 for g in ds.graphs])), 2),
        "classes": ds.num_classes,
        "graphs_per_class": "/".join(str(counts[c]) for c in range(ds.num_classes)),
    }
