"""The adaptive attack (GCleaner 5.2.6, Eq. 16): ``min L_adapt = L_atk − α·L_pq``.

``L_pq = −cos(F(G'_p), F(G'_q))`` (Eq. 7), so ``−α·L_pq = +α·cos``: besides the usual cross-entropy the
attacker pushes the embeddings of triggered graphs apart, to break the "dense backdoor area" that GCleaner's
trigger recovery searches for. Works on top of any attack.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from gnnsec.similarity import mean_pairwise_cosine  # noqa: F401  (re-exported)


def adaptive_loss(alpha: float) -> Callable[[nn.Module, Batch], Tensor]:
    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        out = model.forward_full(batch.x, batch.edge_index, batch.batch)
        loss = nn.functional.cross_entropy(out.logits, batch.y)
        poisoned = batch.poisoned.view(-1).bool()
        if int(poisoned.sum()) >= 2:
            loss = loss + alpha * mean_pairwise_cosine(out.embedding[poisoned])
        return loss

    return loss_fn


@torch.no_grad()
def triggered_similarity(model: nn.Module, batch: Batch) -> float:
    """Mean pairwise cosine similarity of the graph embeddings of an (already triggered) batch."""
    model.eval()
    out = model.forward_full(batch.x, batch.edge_index, batch.batch)
    return float(mean_pairwise_cosine(out.embedding))
