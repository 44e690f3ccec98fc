"""Explainers used by attacks, defenses and the verifier."""

from gnnsec.explain.importance import NODE_EXPLAINERS, node_importance

__all__ = ["NODE_EXPLAINERS", "node_importance"]
