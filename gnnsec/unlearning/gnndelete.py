"""GNNDelete (Cheng et al., ICLR 2023): a learnable deletion operator per layer, original weights frozen.

Node deletion as in the paper (section 4): deleting a node deletes all its edges, so the unlearning graph
G_r is the original graph without the forget nodes' edges (the nodes stay, isolated, so their own
representations can be constrained). Layer l's operator DEL^l(h) = h W_D^l rewrites the layer-l output of
the nodes within l hops of the forget set (the only representations the deletion can reach, Eq. 4); all
other nodes and the backbone weights are untouched. W_D is trained with (Eq. 6-8)

    L = alpha * L_DEC + (1 - alpha) * L_NI,
    L_DEC = MSE(h'_F, h_R)          Deleted Edge Consistency: the forget nodes' unlearned representations
                                    look like those of randomly drawn nodes of the original model,
    L_NI  = MSE(h'_S, h^{G_r}_S)    Neighborhood Influence: the local neighbourhood S (nodes within
                                    num_layers hops of F, minus F) keeps the original model's
                                    representations on G_r, i.e. as if the deleted edges never existed,

where h' is the unlearned model's output on G_r. Choices where the paper leaves room: the operator is a
linear map initialised to the identity (so unlearning starts from the original model), the losses are taken
on the last layer's output, alpha = 0.5, Adam (lr 0.01) for ``epochs`` steps. The served graph is the
original without the forget nodes (they are isolated in G_r, so the other nodes' outputs are the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.train import seed_everything
from gnnsec.unlearning.base import Unlearner, UnlearnRequest, k_hop_mask, remove_nodes
from gnnsec.unlearning.registry import UNLEARNERS


class DeletionOperators(nn.Module):
    """A frozen backbone plus one linear deletion operator per layer, applied on the masked nodes.

    Masks are indexed by original node id, so the model serves any subgraph carrying ``node_ids``.
    """

    def __init__(self, base: nn.Module, dims: list[int], masks: list[Tensor]) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.ops = nn.ParameterList(nn.Parameter(torch.eye(d)) for d in dims)
        for i, m in enumerate(masks):
            self.register_buffer(f"mask{i}", m)

    def forward(self, x: Tensor, edge_index: Tensor, node_ids: Tensor | None = None, **kw: object) -> Tensor:
        ids = node_ids if node_ids is not None else torch.arange(x.size(0), device=x.device)
        masks = [getattr(self, f"mask{i}")[ids].unsqueeze(1) for i in range(len(self.ops))]

        def hook(i: int, h: Tensor) -> Tensor:
            return torch.where(masks[i], h @ self.ops[i], h)

        return self.base(x, edge_index, hook=hook)


@UNLEARNERS.register("gnndelete")
class GNNDelete(Unlearner):
    name = "gnndelete"

    @dataclass
    class Params:
        epochs: int = 30
        lr: float = 0.01
        alpha: float = 0.5

    def _unlearn(self, req: UnlearnRequest) -> tuple[nn.Module, Data, dict[str, float]]:
        g = req.graph
        n = g.num_nodes
        forget = req.forget
        is_f = torch.zeros(n, dtype=torch.bool)
        is_f[forget] = True
        keep_edge = ~(is_f[g.edge_index[0]] | is_f[g.edge_index[1]])
        g_r = Data(x=g.x, edge_index=g.edge_index[:, keep_edge], num_nodes=n, node_ids=g.node_ids)
        base = req.model
        layers = base.num_layers
        masks = [k_hop_mask(g, forget, i + 1) for i in range(layers)]
        local = masks[-1] & ~is_f
        model = DeletionOperators(base, base.layer_dims, masks)
        with torch.no_grad():
            target_ni = base(g_r.x, g_r.edge_index)[local]
            h_orig = base(g.x, g.edge_index)
        gen = seed_everything(req.train.seed)
        opt = torch.optim.Adam(model.ops.parameters(), lr=self.p.lr)
        model.eval()  # deterministic representations (no dropout) while fitting the operator
        loss = torch.tensor(0.0)
        for _ in range(self.p.epochs):
            opt.zero_grad()
            h = model(g_r.x, g_r.edge_index, node_ids=g_r.node_ids)
            rand = torch.randint(0, n, (len(forget),), generator=gen)
            dec = nn.functional.mse_loss(h[forget], h_orig[rand])
            ni = nn.functional.mse_loss(h[local], target_ni)
            loss = self.p.alpha * dec + (1 - self.p.alpha) * ni
            loss.backward()
            opt.step()
        return (
            model,
            remove_nodes(g, forget),
            {"final_loss": float(loss.detach()), "n_local": float(local.sum())},
        )
