"""Seeded splits (GCleaner 5.1): 8:2 train/test, and the defender's clean "holding" set drawn from the test
split as a fraction of the whole dataset; evaluation uses the remaining test graphs, disjoint from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from gnnsec.config import split_sizes
from gnnsec.errors import ConfigError


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
    n_train, n_hold, n_eval = split_sizes(n, train_ratio, holding_rate)
    if n_eval < 1:
        raise ConfigError(
            "data.holding_rate",
            holding_rate,
            f"a rate leaving evaluation graphs ({n} graphs, {n_hold} held out)",
        )
    idx = np.arange(n)
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, test = train_test_split(idx, train_size=n_train, random_state=seed, stratify=stratify)
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(test)
    holding, rest = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return GraphSplit(np.sort(train), holding, rest)
