"""GTA, the graph trojaning attack (Xi, Pang, Ji, Wang, "Graph Backdoor", USENIX Security 2021; GCleaner
Appendix A, "GTA").

The trigger is *adaptive*: two generators ("GraphTrojanNet", MLPs as in the authors' release) produce it
for every graph from the graph itself.

* Inputs (GTA's ``2hop`` input): the trigger region is cleared (edges among the k trigger nodes removed,
  their features zeroed), then Â = 1[A + A² > 0] without self-loops, padded to ``max_nodes`` columns (the
  largest training graph), and X̂ = Â·X. The generators read the rows of the k trigger nodes.
* Topology generator: MLP(max_nodes → max_nodes), sigmoid, restricted to the trigger nodes' columns,
  symmetrised ((M + Mᵀ)/2) and binarised at ``threshold`` (0.5) with a straight-through gradient.
* Feature generator: MLP(d → d), ReLU; its output becomes the trigger nodes' features. Used only with
  native features: in degree mode the featurizer recomputes features from the degrees, so only the
  topology matters and no feature generator is built.

Trigger positions are k nodes drawn uniformly at random per graph (GTA's ``select_cdd_nodes``), among the
first ``max_nodes`` nodes so that every position has a generator column.

Training is GTA's bi-level optimisation, ``bilevel_iterations`` (20, GCleaner) rounds of: (a) update the
model on the poisoned training set with the current triggers (``epochs / bilevel_iterations`` epochs of the
shared training loop, one optimiser and learning-rate schedule across rounds); (b) update the topology
generator, then the feature generator, each for ``generator_epochs`` (5, GCleaner) full-batch steps of Adam
(lr ``generator_lr``, weight decay 5e-4 as released) minimising the cross-entropy of the triggered victims
against the target label under the current model (in eval mode). The triggered graph is kept
differentiable by giving every candidate trigger edge its binarised value as an edge weight (the backbones
multiply messages by edge weights; exactly 0/1 in the forward pass). The victims' trigger positions are
fixed during training. With ``adaptive_alpha > 0`` the model update in (a) uses the adaptive loss of Eq. 16.

Deviations from the release: the model is trained from scratch inside the bi-level loop with the shared
training recipe (the release fine-tunes a pretrained benign model with full-batch steps and a separate
positive/negative loss balance), so GTA's backdoored model has the same training budget as the other
attacks; GTA's outer re-sampling of victims is not used (victims are the pipeline's seeded selection).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.attacks.adaptive import adaptive_loss
from gnnsec.attacks.base import Attack, AttackContext, Trigger, top_k_per_graph
from gnnsec.attacks.inject import binarize, replace_subgraph, soft_inject
from gnnsec.attacks.registry import ATTACKS
from gnnsec.attacks.surrogate import derived_seed
from gnnsec.errors import ConfigError
from gnnsec.train import cross_entropy_loss, make_loader, seed_everything, select_device, train_epoch

log = logging.getLogger(__name__)


class GraphTrojanNet(nn.Module):
    """GTA's generator: ``layers`` Linear(dim, dim) with ReLU in between, dropout before each layer."""

    def __init__(self, dim: int, layers: int = 3, dropout: float = 0.05) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
            mods.append(nn.Linear(dim, dim))
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@ATTACKS.register("gta")
class GTA(Attack):
    name = "gta"
    # 2: gradients also flow through the weighted degree features (shared soft_inject); the adaptive
    # variant (α > 0) penalises logits and embeddings over a poisoned-graph buffer
    version: ClassVar[int] = 2
    param_defaults: ClassVar[dict[str, Any]] = {
        "threshold": 0.5,  # binarisation threshold of the topology generator (GTA's topo_thrd)
        "generator_epochs": 5,  # per bi-level iteration, for each generator (GCleaner Appendix A)
        "bilevel_iterations": 20,  # GCleaner Appendix A
        "generator_lr": 0.01,  # GTA's gtn_lr
        "generator_layers": 3,  # GTA's gtn_layernum
    }

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        if not 0.0 < params.get("threshold", 0.5) < 1.0:
            raise ConfigError("attack.params.threshold", params["threshold"], "a number in (0, 1)")
        for key in ("generator_epochs", "bilevel_iterations", "generator_layers"):
            value = params.get(key, 1)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"attack.params.{key}", value, "a positive integer")
        if params.get("generator_lr", 0.01) <= 0:
            raise ConfigError("attack.params.generator_lr", params["generator_lr"], "a positive number")

    # ---- generators ------------------------------------------------------------------------------------
    @property
    def uses_features(self) -> bool:
        return self.featurizer.mode == "native"

    def _build(self, max_nodes: int) -> None:
        self.max_nodes = int(max_nodes)
        layers = int(self.params["generator_layers"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.generator))
            self.toponet = GraphTrojanNet(self.max_nodes, layers)
            self.featnet = (
                GraphTrojanNet(self.featurizer.num_features, layers) if self.uses_features else None
            )
        for net in self.nets():
            net.eval()

    def nets(self) -> list[nn.Module]:
        return [n for n in (self.toponet, self.featnet) if n is not None]

    def prepare(self, ctx: AttackContext) -> None:
        self._build(max(g.num_nodes for g in ctx.train_graphs))
        self._victim_positions: tuple[Tensor, Tensor] | None = None

    def positions(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """k uniformly random nodes per graph among its first ``max_nodes`` nodes."""
        counts = torch.diff(batch.ptr).cpu()
        scores = torch.rand(int(counts.sum()), generator=self.generator)
        local = torch.arange(int(counts.sum())) - torch.repeat_interleave(batch.ptr[:-1].cpu(), counts)
        scores[local >= self.max_nodes] = -1.0  # only chosen when nothing else is left (never: k ≤ max_nodes)
        return top_k_per_graph(scores, batch, self.trigger_nodes)

    def generator_inputs(self, batch: Batch, pos: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """GTA's 2-hop inputs of the trigger nodes: Â rows [B, k, max_nodes] and X̂ = Â·X rows [B, k, d].

        Computed from the edge list (no dense [B, n, n] adjacency): after clearing the trigger region, the
        1-hop pairs (trigger slot, neighbour) are expanded along the neighbours' edges to the 2-hop pairs.
        """
        device = batch.edge_index.device
        pos, mask = pos.to(device), mask.to(device)
        B, k = pos.shape
        N = batch.num_nodes
        gpos = batch.ptr[:-1].view(-1, 1).to(device) + pos  # [B, k] global ids
        slot = torch.full((N,), -1, dtype=torch.long, device=device)
        slot[gpos[mask]] = torch.arange(B * k, device=device).view(B, k)[mask]
        src, dst = batch.edge_index
        keep = ~((slot[src] >= 0) & (slot[dst] >= 0))  # clear the trigger region
        src, dst = src[keep], dst[keep]
        one = slot[src] >= 0
        rows1, cols1 = slot[src[one]], dst[one]
        rows2, cols2 = _expand_along_edges(rows1, cols1, src, dst, N)
        rows, cols = torch.cat([rows1, rows2]), torch.cat([cols1, cols2])
        notself = cols != gpos.view(-1)[rows]
        key = torch.unique(rows[notself] * N + cols[notself])
        rows, cols = key // N, key % N
        local = cols - batch.ptr.to(device)[batch.batch[cols]]
        inside = local < self.max_nodes
        a_in = torch.zeros(B * k, self.max_nodes, device=device)
        a_in[rows[inside], local[inside]] = 1.0
        x_in = None
        if self.uses_features:
            x = batch.x.float() * (slot < 0).unsqueeze(-1)  # trigger nodes' features zeroed
            x_in = torch.zeros(B * k, x.size(1), device=device).index_add_(0, rows, x[cols])
            x_in = x_in.view(B, k, -1)
        return a_in.view(B, k, -1), x_in

    def generate(self, a_in: Tensor, x_in: Tensor | None, pos: Tensor, mask: Tensor) -> Trigger:
        """Trigger adjacency [B, k, k] (0/1, straight-through gradient) and features [B, k, d]."""
        k = pos.size(1)
        scores = torch.sigmoid(self.toponet(a_in))  # [B, k, max_nodes]
        cols = pos.to(scores.device).clamp(max=self.max_nodes - 1)
        sub = scores.gather(2, cols.unsqueeze(1).expand(-1, k, -1))  # [B, k, k]
        sub = (sub + sub.transpose(1, 2)) / 2
        adj = binarize(sub, float(self.params["threshold"]))
        valid = (mask.unsqueeze(2) & mask.unsqueeze(1)).to(adj.device)
        adj = adj * valid * (1 - torch.eye(k, device=adj.device))
        feats = torch.relu(self.featnet(x_in)) if self.featnet is not None and x_in is not None else None
        return Trigger(adj, feats)

    def trigger(self, batch: Batch, positions: Tensor, mask: Tensor) -> Trigger:
        device = next(self.toponet.parameters()).device
        batch = batch.to(device)
        a_in, x_in = self.generator_inputs(batch, positions, mask)
        return self.generate(a_in, x_in, positions, mask)

    # ---- poisoning --------------------------------------------------------------------------------------
    def poison(self, graphs: Sequence[Data], victims: np.ndarray) -> list[Data]:
        """As the base class, remembering the victims' trigger positions for the bi-level training."""
        batch = Batch.from_data_list([graphs[int(i)] for i in victims])
        pos, mask = self.positions(batch)
        self._victim_positions = (pos, mask)
        return self.relabel(graphs, victims, self._inject_at(batch, pos, mask))

    def _inject_at(
        self, batch: Batch, pos: Tensor, mask: Tensor, inputs: tuple[Tensor, Tensor | None] | None = None
    ) -> list[Data]:
        """The batch triggered at ``pos``; ``inputs``: its generator inputs when already computed (they
        depend only on the clean graphs and the positions, so the bi-level loop computes them once)."""
        with torch.no_grad():
            if inputs is None:
                trig = self.trigger(batch, pos, mask)
            else:
                trig = self.generate(inputs[0], inputs[1], pos, mask)
            out = replace_subgraph(
                batch.to(trig.adj.device), pos, mask, trig.adj, trig.features, self.featurizer
            )
        return out.cpu().to_data_list()

    # ---- bi-level training ------------------------------------------------------------------------------
    def train_backdoored(
        self, model: nn.Module, poisoned: list[Data], ctx: AttackContext, victims: np.ndarray
    ) -> list[dict[str, float]]:
        cfg = ctx.train_cfg
        device = select_device(cfg.device)
        model.to(device)
        for net in self.nets():
            net.to(device)
        clean_victims = [ctx.train_graphs[int(i)] for i in victims]
        vbatch = Batch.from_data_list(clean_victims)
        if self._victim_positions is None or self._victim_positions[0].size(0) != len(victims):
            self._victim_positions = self.positions(vbatch)
        pos, mask = self._victim_positions
        vbatch = vbatch.to(device)
        a_in, x_in = self.generator_inputs(vbatch, pos, mask)

        alpha = self.cfg.adaptive_alpha
        gen = seed_everything(cfg.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        gen_opts = [
            torch.optim.Adam(n.parameters(), lr=float(self.params["generator_lr"]), weight_decay=5e-4)
            for n in self.nets()
        ]
        iters = min(int(self.params["bilevel_iterations"]), cfg.epochs)
        ends = {int(round((i + 1) * cfg.epochs / iters)) for i in range(iters)}
        history: list[dict[str, float]] = []
        epoch = 0
        for it in range(iters):
            train_set = self.relabel(
                ctx.train_graphs, victims, self._inject_at(vbatch, pos, mask, (a_in, x_in))
            )
            loss_fn = (
                adaptive_loss(alpha, [train_set[int(i)] for i in victims], seed=self.cfg.seed + it)
                if alpha > 0
                else cross_entropy_loss
            )
            loader = make_loader(train_set, cfg.batch_size, shuffle=True, generator=gen)
            while True:
                row = {"epoch": float(epoch), "loss": train_epoch(model, loader, optimizer, device, loss_fn)}
                scheduler.step()
                epoch += 1
                history.append(row)
                if epoch in ends:
                    break
            row["generator_loss"] = self._update_generators(model, vbatch, a_in, x_in, pos, mask, gen_opts)
            row["bilevel_iteration"] = float(it)
        log.info(
            "gta: %d bi-level iterations, final generator loss %.4f", iters, history[-1]["generator_loss"]
        )
        return history

    def final_training_set(self, ctx: AttackContext, victims: np.ndarray, poisoned: list[Data]) -> list[Data]:
        """The victims triggered by the final (trained) generators at their training positions."""
        if self._victim_positions is None:
            return poisoned
        pos, mask = self._victim_positions
        vbatch = Batch.from_data_list([ctx.train_graphs[int(i)] for i in victims])
        return self.relabel(ctx.train_graphs, victims, self._inject_at(vbatch, pos, mask))

    def _update_generators(
        self,
        model: nn.Module,
        vbatch: Batch,
        a_in: Tensor,
        x_in: Tensor | None,
        pos: Tensor,
        mask: Tensor,
        opts: list[torch.optim.Optimizer],
    ) -> float:
        """GTA's ``train_gtn``: topology generator, then feature generator, each ``generator_epochs`` steps."""
        was_training = model.training
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        target = torch.full((vbatch.num_graphs,), self.cfg.target_label, device=a_in.device)
        loss = torch.zeros(())
        for net, opt in zip(self.nets(), opts):
            net.train()
            for _ in range(int(self.params["generator_epochs"])):
                opt.zero_grad()
                trig = self.generate(a_in, x_in, pos, mask)
                logits = self._forward_triggered(model, vbatch, trig, pos, mask)
                loss = nn.functional.cross_entropy(logits, target)
                loss.backward()
                opt.step()
            net.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
        return float(loss.detach())

    def _forward_triggered(
        self, model: nn.Module, batch: Batch, trig: Trigger, pos: Tensor, mask: Tensor
    ) -> Tensor:
        """Logits of the triggered batch with every candidate trigger edge weighted by its (0/1, straight-
        through) generated value, so gradients reach the topology generator (and, in degree mode, through
        the weighted degree features too)."""
        x, edge_index, weight = soft_inject(batch, pos, mask, trig.adj, trig.features, self.featurizer)
        return model(x, edge_index, batch.batch, weight)

    # ---- persistence ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"max_nodes": self.max_nodes, "topo": _cpu(self.toponet.state_dict())}
        if self.featnet is not None:
            state["feat"] = _cpu(self.featnet.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._build(int(state["max_nodes"]))
        self.toponet.load_state_dict(state["topo"])
        if self.featnet is not None:
            self.featnet.load_state_dict(state["feat"])
        self._victim_positions = None


def _expand_along_edges(
    rows: Tensor, cols: Tensor, src: Tensor, dst: Tensor, n: int
) -> tuple[Tensor, Tensor]:
    """Pairs (r, w) for every pair (r, v) and edge (v, w): one step of a sparse product, vectorised."""
    order = torch.argsort(src)
    src_sorted, dst_sorted = src[order], dst[order]
    deg = torch.bincount(src_sorted, minlength=n)
    rowptr = torch.cat([deg.new_zeros(1), deg.cumsum(0)])
    count = deg[cols]
    out_rows = torch.repeat_interleave(rows, count)
    start = torch.repeat_interleave(rowptr[cols], count)
    offset = torch.arange(int(count.sum()), device=rows.device) - torch.repeat_interleave(
        count.cumsum(0) - count, count
    )
    return out_rows, dst_sorted[start + offset]


def _cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
