"""The explainability verifier of "Forget and Explain" (RA, HS, ESD, GED, GRS, membership inference) and
its application to backdoor unlearning (:mod:`.backdoor`). Snapshot before, compare after."""

from gnnsec.verify.metrics import (
    explainability_score_deviation,
    graph_edit_distance,
    graph_rule_shift,
    heatmap_shift,
    membership_auc,
    residual_attribution,
)
from gnnsec.verify.snapshot import Snapshot, compare, take_snapshot

__all__ = [
    "Snapshot",
    "compare",
    "explainability_score_deviation",
    "graph_edit_distance",
    "graph_rule_shift",
    "heatmap_shift",
    "membership_auc",
    "residual_attribution",
    "take_snapshot",
]
