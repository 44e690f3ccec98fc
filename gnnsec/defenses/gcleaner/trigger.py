"""The recovered trigger's parts (GCleaner section 4.3, Eq. 6): the generator, where it goes (the n least
important nodes by an explainer) and the trained trigger that injects itself into any graphs.

How it is trained, and which class it belongs to, is :mod:`gnnsec.defenses.gcleaner.recovery`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.attacks.base import top_k_per_graph
from gnnsec.attacks.inject import replace_subgraph
from gnnsec.data.features import Featurizer
from gnnsec.explain import node_importance
from gnnsec.train import make_loader


# ---- the generator (Eq. 6) ---------------------------------------------------------------------------
class TriggerGenerator(nn.Module):
    """f_θg: the n selected nodes' features → trigger features X_t [B, n, d] and soft adjacency A_t [B, n, n].

    X_t goes through a sigmoid so generated features stay in the range of the (one-hot / normalised) node
    features; the paper leaves W_f linear, which lets a trigger win by sheer feature magnitude.
    """

    def __init__(self, n: int, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.n, self.dim = n, dim
        self.mlp = nn.Sequential(nn.Linear(n * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.w_f = nn.Linear(hidden, n * dim)
        self.pairs = n * (n - 1) // 2
        self.w_a = nn.Linear(hidden, self.pairs) if self.pairs else None
        iu = torch.triu_indices(n, n, 1)
        self.register_buffer("iu", iu, persistent=False)

    def forward(self, x_sel: Tensor) -> tuple[Tensor, Tensor]:
        B = x_sel.size(0)
        h = self.mlp(x_sel.reshape(B, self.n * self.dim))
        feats = torch.sigmoid(self.w_f(h)).view(B, self.n, self.dim)
        adj = x_sel.new_zeros(B, self.n, self.n)
        if self.w_a is not None:
            adj[:, self.iu[0], self.iu[1]] = torch.sigmoid(self.w_a(h))
            adj = adj + adj.transpose(1, 2)
        return feats, adj


# ---- positions and injection -------------------------------------------------------------------------
@dataclass
class Placement:
    """Where the trigger goes in each graph of a batch: local node ids [B, n] and validity mask [B, n]."""

    positions: Tensor
    mask: Tensor

    def index(self, idx: Tensor) -> Placement:
        return Placement(self.positions[idx], self.mask[idx])


def least_important(
    explainer: str, model: nn.Module, graphs: Sequence[Data], n: int, seed: int, chunk: int = 256
) -> Placement:
    """The n least important nodes of every graph under ``model`` (section 4.3), padded with a mask."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    pos, mask = [], []
    for batch in make_loader(graphs, chunk):
        batch = batch.to(device)
        scores = node_importance(explainer, model, batch, generator=gen)
        p, m = top_k_per_graph(scores, batch, n, largest=False)
        pos.append(p)
        mask.append(m)
    if not pos:
        return Placement(torch.zeros(0, n, dtype=torch.long), torch.zeros(0, n, dtype=torch.bool))
    return Placement(torch.cat(pos), torch.cat(mask))


def selected_features(batch: Batch, place: Placement) -> Tensor:
    """Features of the selected nodes [B, n, d] (zeros where a graph has fewer than n nodes)."""
    device = batch.x.device
    pos, mask = place.positions.to(device), place.mask.to(device)
    gpos = batch.ptr[:-1].view(-1, 1) + pos
    gpos = torch.where(mask, gpos, torch.zeros_like(gpos))
    return batch.x[gpos] * mask.unsqueeze(-1).to(batch.x.dtype)


# ---- the recovered trigger -------------------------------------------------------------------------------
class RecoveredTrigger:
    """A trained generator plus how to place it: injects the binarised recovered trigger into any graphs.

    Placement runs the explainer with the backdoored model it was recovered from (kept as a frozen copy).
    """

    def __init__(
        self,
        generator: TriggerGenerator,
        model: nn.Module,
        featurizer: Featurizer,
        explainer: str,
        seed: int,
    ) -> None:
        self.generator = generator.eval()
        self.model = model.eval()
        self.featurizer = featurizer
        self.explainer = explainer
        self.seed = seed

    @property
    def n(self) -> int:
        return self.generator.n

    def place(self, graphs: Sequence[Data]) -> Placement:
        return least_important(self.explainer, self.model, graphs, self.n, self.seed)

    def inject(self, graphs: Sequence[Data], place: Placement | None = None, chunk: int = 256) -> list[Data]:
        """The graphs with the trigger replacing their n least important nodes (labels untouched)."""
        graphs = list(graphs)
        place = place if place is not None else self.place(graphs)  # explainers need autograd
        with torch.no_grad():
            return self._inject(graphs, place, chunk)

    def _inject(self, graphs: list[Data], place: Placement, chunk: int) -> list[Data]:
        device = next(self.model.parameters()).device
        out: list[Data] = []
        for start in range(0, len(graphs), chunk):
            batch = Batch.from_data_list(graphs[start : start + chunk]).to(device)
            part = place.index(torch.arange(start, start + batch.num_graphs))
            feats, adj = self.generator(selected_features(batch, part))
            hard = (adj > 0.5).float()
            injected = replace_subgraph(
                batch, part.positions.to(device), part.mask.to(device), hard, feats, self.featurizer
            )
            out.extend(injected.cpu().to_data_list())
        return out

    __call__ = inject
