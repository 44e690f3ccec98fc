"""The fast GIN/SAGE layers compute what PyG's propagate computes.

Narrow inputs (every molecule dataset): bitwise the same forward and backward as the propagate path, so
training numerics are unchanged. Wide inputs (linear map applied before the sum) and dense batches (CSR
product): the same function to float tolerance, bias counted once per node.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from gnnsec.models import build_graph_model
from gnnsec.models.layers import DENSE_EDGES_PER_NODE, WeightedGINConv, WeightedSAGEConv


def _old_gin(conv: WeightedGINConv, x: Tensor, ei: Tensor, w: Tensor | None) -> Tensor:
    """The layer before the fast path: PyG's propagate, then the MLP."""
    out = conv.propagate(ei, x=(x, x), edge_weight=w)
    return conv.nn(out + (1 + conv.eps) * x)


def _old_sage(conv: WeightedSAGEConv, x: Tensor, ei: Tensor, w: Tensor | None) -> Tensor:
    weight = w if w is not None else x.new_ones(ei.size(1))
    total = conv.propagate(ei, x=(x, x), edge_weight=weight)
    norm = scatter(weight, ei[1], 0, dim_size=x.size(0), reduce="sum").view(-1, 1)
    mean = torch.where(norm > 0, total / norm.clamp(min=1e-12), torch.zeros_like(total))
    return conv.lin_l(mean) + conv.lin_r(x)


def _gin(in_dim: int, hidden: int) -> WeightedGINConv:
    mlp = nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden)
    )
    conv = WeightedGINConv(mlp, train_eps=True)
    with torch.no_grad():
        conv.eps.fill_(0.3)
    return conv


def _graph(n: int, e: int, dim: int, seed: int, weighted: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)
    ei = torch.randint(0, n, (2, e), generator=gen)
    return x, ei, (torch.rand(e, generator=gen) if weighted else None)


def _run(fn, conv: nn.Module, x: Tensor, ei: Tensor, w: Tensor | None) -> tuple[Tensor, list[Tensor]]:  # noqa: ANN001
    x = x.clone().requires_grad_(True)
    conv.zero_grad()
    out = fn(conv, x, ei, w)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [x.grad] + [p.grad.clone() for p in conv.parameters() if p.grad is not None]


FAST = {
    "gin": (_gin, lambda c, x, ei, w: c(x, ei, edge_weight=w), _old_gin),
    "sage": (WeightedSAGEConv, lambda c, x, ei, w: c(x, ei, edge_weight=w), _old_sage),
}


@pytest.mark.parametrize("kind", ["gin", "sage"])
@pytest.mark.parametrize("weighted", [False, True])
def test_narrow_inputs_are_bitwise_unchanged(kind: str, weighted: bool) -> None:
    make, fast, old = FAST[kind]
    for seed in range(3):
        x, ei, w = _graph(60, 130, 7, seed, weighted)  # 7 features into 16 units: aggregate first, as before
        conv = make(7, 16)
        a, ga = _run(fast, conv, x, ei, w)
        b, gb = _run(old, copy.deepcopy(conv), x, ei, w)
        assert torch.equal(a, b)
        assert all(torch.equal(p, q) for p, q in zip(ga, gb, strict=True))


@pytest.mark.parametrize("kind", ["gin", "sage"])
@pytest.mark.parametrize("dense", [False, True])
def test_linear_before_aggregation_is_the_same_function(kind: str, dense: bool) -> None:
    make, fast, old = FAST[kind]
    n = 40
    e = int(DENSE_EDGES_PER_NODE * n) + 5 if dense else 70
    for seed in range(3):
        x, ei, w = _graph(n, e, 50, seed, weighted=seed == 1)  # 50 features into 8 units: transform first
        x = (x > 0.8).float() if seed == 2 else x  # one-hot-like sparse inputs too (degree features)
        conv = make(50, 8)
        for train in (True, False):  # BatchNorm with batch statistics and with running statistics
            conv.train(train)
            ref = copy.deepcopy(conv)
            a, ga = _run(fast, conv, x, ei, w)
            b, gb = _run(old, ref, x, ei, w)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            for p, q in zip(ga, gb, strict=True):
                torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)


def test_bias_counted_once_per_node_not_per_neighbour() -> None:
    conv = _gin(20, 4).eval()
    with torch.no_grad():
        conv.nn[0].weight.zero_()
        conv.nn[0].bias.fill_(1.0)  # Linear(x) == 1 whatever x: the pre-BN value must be 1 at every node
    seen = {}
    conv.nn[1].register_forward_hook(lambda m, i, o: seen.setdefault("pre_bn", i[0]))
    star = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]])
    conv(torch.rand(5, 20), star)
    assert torch.equal(seen["pre_bn"], torch.ones(5, 4))


def test_explain_mode_and_hooks_still_run_pyg_propagate() -> None:
    conv = _gin(7, 16)
    calls = []
    conv.register_message_forward_hook(lambda *args: calls.append(1))
    x, ei, _ = _graph(10, 20, 7, 0, False)
    conv(x, ei)
    assert calls == [1]


def test_molecule_sized_model_is_bitwise_the_propagate_model() -> None:
    """A whole GIN at AIDS-like width (7 degree features < 64 hidden) gives the same logits and gradients."""
    torch.manual_seed(0)
    model = build_graph_model("GIN", 7, 2)
    ref = copy.deepcopy(model)
    for conv in ref.convs:  # force PyG's propagate everywhere in the reference
        conv.register_message_forward_hook(lambda *args: None)
    x, ei, _ = _graph(200, 420, 7, 1, False)
    batch = torch.arange(200) // 20
    out_a, out_b = model(x, ei, batch), ref(x, ei, batch)
    assert torch.equal(out_a, out_b)
    out_a.sum().backward()
    out_b.sum().backward()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize(
    ("n", "sort"),
    [(50, False), (50, True), (3000, False), (70_000, False), (1, False)],
)
def test_stable_row_order_is_torch_stable_argsort(n: int, sort: bool) -> None:
    """The CSR's row order (sorted fast path, 16-bit radix, int32 sort) is exactly the stable argsort, so the
    CSR matrices (and the models trained with them) are bitwise those of the plain int64 argsort."""
    from gnnsec.models.layers import _csr, stable_row_order

    gen = torch.Generator().manual_seed(n)
    rows = torch.randint(0, n, (5 * n + 3,), generator=gen)  # many duplicate rows: stability matters
    if sort:
        rows = rows.sort().values
    ref = torch.argsort(rows, stable=True)
    order = stable_row_order(rows, n)
    assert torch.equal(ref, torch.arange(len(rows)) if order is None else order)
    cols = torch.randint(0, n, rows.shape, generator=gen)
    values = torch.rand(rows.shape, generator=gen)
    got = _csr(rows, cols, values, n)
    assert torch.equal(got.col_indices(), cols[ref]) and torch.equal(got.values(), values[ref])
