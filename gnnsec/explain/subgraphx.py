"""SubgraphX (Yuan et al., "On Explainability of Graph Neural Networks via Subgraph Explorations", ICML 2021).

A Monte-Carlo tree search over connected subgraphs of one graph. The root is the whole graph; a child is
obtained by pruning one node and keeping the largest connected component of what remains (section 4.2);
leaves are subgraphs with at most ``min_nodes`` nodes (N_min). Children are scored by their Shapley value
(section 4.3), and a rollout descends by Q + U (Eq. 6): U = c_puct · R · sqrt(Σ_j N_j) / (1 + N), R the
Shapley score, Q = W / N. The explanation is the highest-scoring subgraph with at most ``max_nodes`` nodes.

Shapley value of a subgraph G_i (section 4.3, Algorithm 2): the players are G_i (one player) and the nodes
within L hops of it (L = number of message-passing layers). A coalition S of the other players is sampled
as the players that precede G_i in a uniformly random order (Monte-Carlo permutation sampling, ``samples``
draws); the marginal contribution is f(S ∪ G_i) − f(S), f = softmax probability of the explained class,
where excluded *players* get zero features (zero filling, edges kept). As the authors' code (DIG) and their
clarification of Algorithm 2 (divelab/DIG issue #56) specify, nodes beyond the L-hop region keep their
features. All coalitions of all children of an expansion are evaluated in batched forward passes over
masked copies of the graph.

This module follows DIG's SubgraphX defaults (``rollouts=20``, ``min_nodes=5``, ``c_puct=10``,
``expand_atoms=14``, low-degree nodes pruned first, ``samples=100``). The search is bounded by its
rollouts (and the tree by ``expand_atoms`` and N_min), never by the clock, so with the same seed it gives
the same explanation on any machine and under any load (GCleaner Table 4 must not depend on load).
``time_budget`` (seconds per graph, default 300) is only a safety net against a runaway search: it is
checked before every expansion but the root's, and when it fires a WARNING says so (the result, built from
the partial tree, then depends on machine speed and is marked ``timed_out``).
The one other deviation: when all children are unvisited (Σ N = 0, so U = 0 for all), DIG picks the first child; here ties are broken by the Shapley score.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import MessagePassing

from gnnsec.explain.importance import NODE_EXPLAINERS
from gnnsec.explain.utils import eval_frozen, eval_mode

log = logging.getLogger(__name__)


@dataclass(eq=False)
class TreeNode:
    coalition: frozenset[int]
    score: float | None = None  # Shapley value R of the subgraph (None until evaluated)
    total: float = 0.0  # W
    visits: int = 0  # N
    children: list[TreeNode] | None = None  # None = not expanded yet

    def q(self) -> float:
        return self.total / self.visits if self.visits else 0.0


@dataclass
class SubgraphXResult:
    best: frozenset[int]  # node ids (0..n-1) of the explanation subgraph
    best_score: float
    node_scores: Tensor  # [n] importance in [0, 1], see SubgraphX.node_scores
    tree: dict[frozenset[int], TreeNode] = field(repr=False)
    rollouts: int = 0
    seconds: float = 0.0
    target: int = 0
    timed_out: bool = False  # the safety time limit stopped the search before its rollouts were done


def num_message_passing_layers(model: nn.Module) -> int:
    layers = getattr(model, "num_layers", None)
    if isinstance(layers, int) and layers > 0:
        return layers
    return max(1, sum(isinstance(m, MessagePassing) for m in model.modules()))


class SubgraphX:
    """SubgraphX explainer for graph classification; :meth:`explain` handles one graph."""

    def __init__(
        self,
        model: nn.Module,
        num_hops: int | None = None,
        rollouts: int = 20,
        min_nodes: int = 5,
        max_nodes: int | None = None,
        c_puct: float = 10.0,
        expand_atoms: int = 14,
        samples: int = 100,
        time_budget: float = 300.0,
        high2low: bool = False,
        max_batch_nodes: int = 1 << 16,
        generator: torch.Generator | None = None,
    ) -> None:
        if min_nodes < 1 or rollouts < 1 or samples < 1 or expand_atoms < 1:
            raise ValueError("min_nodes, rollouts, samples and expand_atoms must be >= 1")
        self.model = model
        self.num_hops = num_hops or num_message_passing_layers(model)
        self.rollouts, self.min_nodes = rollouts, min_nodes
        self.max_nodes = max_nodes if max_nodes is not None else min_nodes
        self.c_puct, self.expand_atoms, self.samples = c_puct, expand_atoms, samples
        self.time_budget, self.high2low, self.max_batch_nodes = time_budget, high2low, max_batch_nodes
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    # ---- the value function: batched forward passes over zero-filled copies -----------------------------

    @torch.no_grad()
    def _values(self, masks: Tensor) -> Tensor:
        """f(mask) for every row of ``masks`` [M, n]: the explained class's probability on the graph in
        which the nodes with mask 0 get zero features (edges kept)."""
        n = self.x.size(0)
        per_chunk = max(1, self.max_batch_nodes // max(n, 1))
        out = []
        for start in range(0, masks.size(0), per_chunk):
            m = masks[start : start + per_chunk].to(self.x.dtype)
            copies = m.size(0)
            x = (m.unsqueeze(-1) * self.x.unsqueeze(0)).reshape(copies * n, -1)
            offsets = torch.arange(copies, device=x.device) * n
            ei = (self.edge_index.unsqueeze(0) + offsets.view(-1, 1, 1)).permute(1, 0, 2).reshape(2, -1)
            b = torch.arange(copies, device=x.device).repeat_interleave(n)
            ew = None if self.edge_weight is None else self.edge_weight.repeat(copies)
            logits = self.model(x, ei, b, ew)
            out.append(logits.softmax(-1)[:, self.target])
        return torch.cat(out)

    def shapley(self, coalitions: list[frozenset[int]]) -> list[float]:
        """Monte-Carlo L-hop Shapley values of several subgraphs at once (Algorithm 2)."""
        n, k, t = self.x.size(0), len(coalitions), self.samples
        coal = torch.zeros(k, n, dtype=torch.bool, device=self.adj.device)
        for i, c in enumerate(coalitions):
            coal[i, list(c)] = True
        region = coal.clone()
        for _ in range(self.num_hops):
            region |= (region.to(self.adj.dtype) @ self.adj) > 0
        players = region & ~coal  # the other players: nodes within L hops of the subgraph
        keys = torch.rand(k, t, n + 1, generator=self.generator).to(coal.device)
        before = keys[..., :n] < keys[..., n:]  # players preceding G_i in a random order
        outside = ~region  # nodes beyond L hops keep their features (DIG, issue #56)
        excl = (players.unsqueeze(1) & before) | outside.unsqueeze(1)  # S (+ untouched outside nodes)
        incl = excl | coal.unsqueeze(1)  # S ∪ G_i
        masks = torch.cat([incl, excl]).view(2 * k * t, n)
        # near the root few players remain, so many sampled coalitions repeat: evaluate each distinct one once
        unique, inverse = torch.unique(masks, dim=0, return_inverse=True)
        values = self._values(unique)[inverse].view(2, k, t)
        return (values[0] - values[1]).mean(-1).tolist()

    # ---- the tree -----------------------------------------------------------------------------------------

    def _largest_component(self, nodes: set[int]) -> frozenset[int]:
        best: list[int] = []
        seen: set[int] = set()
        for start in sorted(nodes):
            if start in seen:
                continue
            comp, stack = [start], [start]
            seen.add(start)
            while stack:
                u = stack.pop()
                for v in self.neighbours[u]:
                    if v in nodes and v not in seen:
                        seen.add(v)
                        comp.append(v)
                        stack.append(v)
            if len(comp) > len(best):
                best = comp
        return frozenset(best)

    def _children(self, node: TreeNode) -> list[TreeNode]:
        """Prune one of the ``expand_atoms`` lowest-degree (or highest, ``high2low``) nodes; keep the
        largest connected component; merge identical subgraphs through the state map."""
        coal = node.coalition
        degree = {u: len(self.neighbours[u] & coal) for u in coal}
        order = sorted(coal, key=lambda u: (-degree[u] if self.high2low else degree[u], u))
        children: list[TreeNode] = []
        for u in order[: self.expand_atoms]:
            sub = self._largest_component(set(coal) - {u})
            if not sub:
                continue
            child = self.tree.setdefault(sub, TreeNode(sub))
            if all(child is not c for c in children):
                children.append(child)
        return children

    def _expired(self) -> bool:
        """The safety net: True (and remembered) once the graph's time limit has passed."""
        if time.monotonic() - self.start > self.time_budget:
            self.timed_out = True
        return self.timed_out

    def _rollout(self, node: TreeNode) -> float | None:
        """One MCTS rollout from ``node``; returns the leaf value, or None when the time budget ran out."""
        if len(node.coalition) <= self.min_nodes:
            return node.score or 0.0
        if node.children is None:
            if self._expired() and node is not self.root:
                return None
            children = self._children(node)
            fresh = [c for c in children if c.score is None]
            if fresh:
                for c, s in zip(fresh, self.shapley([c.coalition for c in fresh])):
                    c.score = s
            node.children = children
        if not node.children:
            return node.score or 0.0
        sqrt_total = math.sqrt(sum(c.visits for c in node.children))
        chosen = max(
            node.children,
            key=lambda c: (c.q() + self.c_puct * (c.score or 0.0) * sqrt_total / (1 + c.visits), c.score),
        )
        value = self._rollout(chosen)
        if value is not None:
            chosen.total += value
            chosen.visits += 1
        return value

    def node_scores(self, best: frozenset[int]) -> Tensor:
        """Per-node importance from the search, as a dense rank in [0, 1] of the lexicographic key
        (1) member of the explanation subgraph, (2) the best Shapley score of any evaluated subgraph with at
        most ``max_nodes`` nodes that contains the node (−2 if none), (3) how deep the node survived the
        pruning: 1 − (size of the smallest evaluated subgraph containing it) / n."""
        n = self.x.size(0)
        in_best = torch.zeros(n)
        in_best[list(best)] = 1.0
        cand = torch.full((n,), -2.0)
        smallest = torch.full((n,), float(n))
        for coal, node in self.tree.items():
            if node.score is None:
                continue
            idx = torch.tensor(sorted(coal))
            smallest[idx] = smallest[idx].clamp(max=len(coal))
            if len(coal) <= self.max_nodes:
                cand[idx] = cand[idx].clamp(min=node.score)
        keys = torch.stack([in_best, cand, 1 - smallest / n], dim=1)
        _, rank = torch.unique(keys, dim=0, return_inverse=True)
        return rank.float() / max(int(rank.max()), 1)

    def explain(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, target: int | None = None
    ) -> SubgraphXResult:
        """Explain the model's prediction (or class ``target``) on one graph (the model runs in eval mode)."""
        with eval_mode(self.model):
            return self._explain(x, edge_index, edge_weight, target)

    def _explain(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None, target: int | None
    ) -> SubgraphXResult:
        self.start = time.monotonic()
        self.x, self.edge_index, self.edge_weight = x, edge_index, edge_weight
        n = x.size(0)
        if target is None:
            with torch.no_grad():
                zeros = torch.zeros(n, dtype=torch.long, device=x.device)
                target = int(self.model(x, edge_index, zeros, edge_weight).argmax(-1))
        self.target = target
        self.adj = torch.zeros(n, n, device=x.device)
        self.adj[edge_index[0], edge_index[1]] = 1.0
        self.adj = ((self.adj + self.adj.t()) > 0).float()
        self.neighbours = [set() for _ in range(n)]
        for u, v in edge_index.t().tolist():
            if u != v:
                self.neighbours[u].add(v)
                self.neighbours[v].add(u)
        root_set = frozenset(range(n))
        root = self.root = TreeNode(root_set)
        self.tree = {root_set: root}
        self.rollouts_done = 0
        self.timed_out = False
        if n <= self.min_nodes:
            # No pruning possible: the whole graph is the explanation; rank nodes by their own Shapley value.
            values = torch.tensor(self.shapley([frozenset([u]) for u in range(n)] + [root_set]))
            root.score, values = float(values[-1]), values[:-1]
            scores = torch.zeros(n)
            if n > 1:
                _, rank = torch.unique(values, return_inverse=True)
                scores = rank.float() / max(int(rank.max()), 1)
            return SubgraphXResult(
                root_set, root.score, scores, self.tree, 0, time.monotonic() - self.start, target
            )
        while self.rollouts_done < self.rollouts and not (root.children is not None and self._expired()):
            if self._rollout(root) is None:
                break
            self.rollouts_done += 1
        scored = sorted(
            (node for node in self.tree.values() if node.score is not None), key=lambda nd: len(nd.coalition)
        )
        # the highest-scoring subgraph with at most max_nodes nodes; if the search (time budget) never got
        # that small, the smallest evaluated subgraph (highest score among equals)
        candidates = [nd for nd in scored if len(nd.coalition) <= self.max_nodes]
        if candidates:
            best_node = max(candidates, key=lambda nd: nd.score)
        elif scored:
            best_node = max(scored, key=lambda nd: (-len(nd.coalition), nd.score))
        else:
            best_node = root
        elapsed = time.monotonic() - self.start
        if self.timed_out:
            log.warning(
                "SubgraphX: safety time limit of %.1fs fired after %d of %d rollouts on a %d-node graph; this "
                "explanation depends on machine speed (raise time_budget or lower rollouts/samples)",
                self.time_budget,
                self.rollouts_done,
                self.rollouts,
                n,
            )
        log.debug(
            "SubgraphX: %d nodes, %d rollouts, %d subgraphs in %.2fs",
            n,
            self.rollouts_done,
            len(scored),
            elapsed,
        )
        return SubgraphXResult(
            best_node.coalition,
            float(best_node.score or 0.0),
            self.node_scores(best_node.coalition),
            self.tree,
            self.rollouts_done,
            elapsed,
            target,
            self.timed_out,
        )


def _graph_slices(batch: Batch) -> list[tuple[int, int, Tensor, Tensor | None]]:
    """(node offset, num nodes, local edge_index, edge weights) for every graph of the batch."""
    num_graphs = int(batch.num_graphs)
    ptr = batch.ptr.tolist()
    ew = getattr(batch, "edge_weight", None)
    edge_graph = batch.batch[batch.edge_index[0]]
    order = torch.argsort(edge_graph, stable=True)
    counts = torch.bincount(edge_graph, minlength=num_graphs).tolist()
    out = []
    for g, part in enumerate(torch.split(order, counts)):
        lo = ptr[g]
        out.append((lo, ptr[g + 1] - lo, batch.edge_index[:, part] - lo, None if ew is None else ew[part]))
    return out


@NODE_EXPLAINERS.register("subgraphx")
def subgraphx_importance(
    model: nn.Module,
    batch: Batch,
    time_budget: float = 300.0,
    rollouts: int = 20,
    samples: int = 100,
    min_nodes: int = 5,
    max_nodes: int | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Tensor:
    """SubgraphX node importance for every graph of the batch (graphs explained one after another, each
    bounded by ``rollouts``; ``time_budget`` seconds per graph is only a logged safety net). Each graph's
    scores are :meth:`SubgraphX.node_scores`: the nodes of the
    explanation subgraph rank highest, then nodes by the best Shapley score of a small (≤ ``max_nodes``)
    evaluated subgraph containing them, then by how long they survived pruning. Scores are in [0, 1] per
    graph and only their order within a graph is meaningful. Seeded (``generator``, else ``seed``)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    keys = ("num_hops", "c_puct", "expand_atoms", "high2low", "max_batch_nodes")
    explainer = SubgraphX(
        model,
        rollouts=rollouts,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        samples=samples,
        time_budget=time_budget,
        generator=gen,
        **{k: kwargs[k] for k in keys if k in kwargs},
    )
    scores = torch.zeros(batch.num_nodes, device=batch.x.device)
    with eval_frozen(model):
        for lo, n, ei, ew in _graph_slices(batch):
            if n == 0:
                continue
            result = explainer.explain(batch.x[lo : lo + n], ei, ew)
            scores[lo : lo + n] = result.node_scores.to(scores.device)
    return scores
