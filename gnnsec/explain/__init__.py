"""Explainers used by attacks, defenses and the verifier: node importance and node heatmaps."""

from gnnsec.explain.heatmaps import HEATMAPS, heatmaps
from gnnsec.explain.importance import NODE_EXPLAINERS, node_importance

__all__ = ["HEATMAPS", "NODE_EXPLAINERS", "heatmaps", "node_importance"]
