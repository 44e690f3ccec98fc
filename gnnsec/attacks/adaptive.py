"""The adaptive attack (GCleaner 5.2.6, Eq. 16): ``min L_adapt = L_atk − α·L_pq``.

``L_pq = −cos(F(G'_p), F(G'_q))`` (Eq. 7), so ``−α·L_pq = +α·cos``: besides the usual cross-entropy the
attacker pushes the representations of triggered graphs apart, to break the "dense backdoor area" that
GCleaner's trigger recovery searches for. Works on top of any attack.

F is every space the defense reads: GCleaner's recovery compares the model's *logits* (its default
``similarity_on``) or its readout *embeddings*, so the penalty is the mean of the mean pairwise cosine in
both spaces. The pairs come from a buffer of the poisoned graphs: every training step draws ``buffer``
(32) of them, so the penalty acts on many pairs in every step (not only in the mini-batches that happen to
hold two poisoned graphs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.similarity import mean_pairwise_cosine

BUFFER = 32


def adaptive_penalty(model: nn.Module, batch: Batch) -> Tensor:
    """Mean pairwise cosine of the triggered graphs of ``batch``, averaged over logits and embeddings."""
    out = model.forward_full(batch.x, batch.edge_index, batch.batch)
    return 0.5 * (mean_pairwise_cosine(out.logits) + mean_pairwise_cosine(out.embedding))


def adaptive_loss(
    alpha: float, poisoned: Sequence[Data], buffer: int = BUFFER, seed: int = 0
) -> Callable[[nn.Module, Batch], Tensor]:
    """Cross-entropy on the mini-batch + α × :func:`adaptive_penalty` on ``buffer`` poisoned graphs drawn
    afresh (seeded) at every step."""
    poisoned = list(poisoned)
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        logits = model(batch.x, batch.edge_index, batch.batch)
        loss = nn.functional.cross_entropy(logits, batch.y)
        if len(poisoned) >= 2:
            idx = torch.randperm(len(poisoned), generator=gen)[:buffer]
            pbatch = Batch.from_data_list([poisoned[int(i)] for i in idx]).to(batch.x.device)
            loss = loss + alpha * adaptive_penalty(model, pbatch)
        return loss

    return loss_fn


@torch.no_grad()
def triggered_similarity(model: nn.Module, batch: Batch, space: str = "embedding") -> float:
    """Mean pairwise cosine similarity of the graph embeddings (or logits) of an (already triggered) batch."""
    model.eval()
    out = model.forward_full(batch.x, batch.edge_index, batch.batch)
    return float(mean_pairwise_cosine(out.logits if space == "logits" else out.embedding))
