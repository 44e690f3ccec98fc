"""The verifier's metrics (Forget and Explain, section 3.1), as pure functions of two snapshots' parts.

The paper's formal definitions were lost in extraction; these reduce to its prose. Notation: V the
original nodes, F ⊆ V the forget set, s_v ≥ 0 the vanilla-saliency attribution of node v (pre: original
model on G; post: unlearned model on the served graph G', s'_v = 0 for v ∉ G'), φ_j ≥ 0 the attribution
of feature j, ŝ = s / max_v s_v and φ̂ = φ / max_j φ_j (the within-run normalisation the paper uses to read
deltas independently of gradient scale).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.metrics import roc_auc_score


def residual_attribution(scores: np.ndarray, forget: np.ndarray) -> float:
    """RA = Σ_{v∈F} s_v / Σ_{v∈V} s_v: the share of total attribution through the forgotten nodes.

    0 when they left the graph (their s_v are 0). Table 2's "RA" column is RA_pre - RA_post.
    """
    total = float(scores.sum())
    return float(scores[forget].sum()) / total if total > 0 else 0.0


def _max_normalised(a: np.ndarray) -> np.ndarray:
    m = float(np.max(a)) if a.size else 0.0
    return a / m if m > 0 else np.zeros_like(a, dtype=float)


def heatmap_shift(pre: np.ndarray, post: np.ndarray) -> float:
    """HS = (1/|V|) Σ_{v∈V} |ŝ_v - ŝ'_v|: mean absolute change of the (max-normalised) node heatmap."""
    return float(np.mean(np.abs(_max_normalised(pre) - _max_normalised(post))))


def explainability_score_deviation(pre: np.ndarray, post: np.ndarray) -> float:
    """ESD = (1/d) Σ_j |φ̂_j - φ̂'_j|: mean absolute change of the (max-normalised) feature importance."""
    return float(np.mean(np.abs(_max_normalised(pre) - _max_normalised(post))))


def graph_edit_distance(pre_edges: set[tuple[int, int]], post_edges: set[tuple[int, int]]) -> int:
    """GED = |E(P) Δ E(P')|: edge symmetric difference of the pre/post proxy graphs.

    P is the union of the k-hop ego networks around F in G (undirected, original ids), P' the same around
    the forget nodes still present in G'. Edges are unordered pairs (u < v); the paper's counts for Cora
    exceed its 5,278 undirected edges, so they count ordered pairs: multiply by 2 to compare.
    """
    return len(pre_edges ^ post_edges)


def graph_rule_shift(pre_rules: Iterable[str], post_rules: Iterable[str]) -> int:
    """GRS = |R \\ R'|: root-to-leaf rules of the depth-limited surrogate tree that disappear."""
    return len(set(pre_rules) - set(post_rules))


def membership_auc(losses: np.ndarray, members: np.ndarray, non_members: np.ndarray) -> float:
    """ROC-AUC of the loss-threshold attack: score = -loss, members labelled 1, non-members 0.

    0.5 = no leakage; lower after unlearning = less leakage.
    """
    m, n = losses[members], losses[non_members]
    m, n = m[np.isfinite(m)], n[np.isfinite(n)]
    if len(m) == 0 or len(n) == 0:
        return float("nan")
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    return float(roc_auc_score(y, -np.r_[m, n]))
