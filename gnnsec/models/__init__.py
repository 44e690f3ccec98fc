"""GNN backbones behind registries (graph- and node-level)."""

from gnnsec.models.graph import GRAPH_MODELS, GraphClassifier, ModelOutput, build_graph_model
from gnnsec.models.node import NODE_MODELS, NodeClassifier, build_node_model

__all__ = [
    "GRAPH_MODELS",
    "NODE_MODELS",
    "GraphClassifier",
    "ModelOutput",
    "NodeClassifier",
    "build_graph_model",
    "build_node_model",
]
