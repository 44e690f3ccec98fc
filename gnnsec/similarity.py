"""Embedding similarity shared by the adaptive attack (Eq. 16) and GCleaner's trigger recovery (Eq. 7-8)."""

from __future__ import annotations

from torch import Tensor, nn


def mean_pairwise_cosine(emb: Tensor) -> Tensor:
    """Mean cosine similarity over all ordered pairs p != q of the rows of ``emb`` (0 for fewer than 2)."""
    n = emb.size(0)
    if n < 2:
        return emb.sum() * 0.0
    z = nn.functional.normalize(emb, dim=-1)
    sim = z @ z.t()
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))
