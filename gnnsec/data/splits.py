"""Seeded splits (GCleaner 5.1): 8:2 train/test, and the defender's clean "holding" set drawn from the test
split as a fraction of the whole dataset; evaluation uses the remaining test graphs, disjoint from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class GraphSplit:
    train: np.ndarray
    holding: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "holding": len(self.holding), "test": len(self.test)}


def split_graphs(
    labels: np.ndarray, seed: int, train_ratio: float = 0.8, holding_rate: float = 0.03
) -> GraphSplit:
    """Stratified seeded split; ``holding`` has round(holding_rate * N) graphs (at least 2)."""
    n = len(labels)
    idx = np.arange(n)
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, test = train_test_split(idx, train_size=train_ratio, random_state=seed, stratify=stratify)
    n_hold = max(2, int(round(holding_rate * n)))
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(test)
    holding, rest = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return GraphSplit(np.sort(train), holding, rest)
