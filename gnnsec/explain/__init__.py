"""Explainers used by attacks, defenses and the verifier: node importance and node heatmaps.

Importing this package registers every method: node-importance explainers ("random", "gnnexplainer",
"pgexplainer" in :mod:`.importance`, "subgraphx" in :mod:`.subgraphx`) and heatmap methods ("gradcam",
"none" in :mod:`.heatmaps`, "integrated_gradients", "guided_backprop", "gnnexplainer" in
:mod:`.attributions`).
"""

from gnnsec.explain import attributions, subgraphx  # noqa: F401  (registration)
from gnnsec.explain.heatmaps import HEATMAPS, heatmaps
from gnnsec.explain.importance import NODE_EXPLAINERS, node_importance

__all__ = ["HEATMAPS", "NODE_EXPLAINERS", "heatmaps", "node_importance"]
