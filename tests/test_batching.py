"""The fast loader yields PyG's own mini-batches: same graphs, same order, same tensors."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from gnnsec import batching
from gnnsec.batching import CollatedGraphs, GraphLoader


def _graphs(n: int = 37, seed: int = 0, weights: bool = True) -> list[Data]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        nodes = int(torch.randint(1, 9, (1,), generator=gen))
        m = int(torch.randint(0, 3 * nodes, (1,), generator=gen))  # some graphs have no edges
        ei = torch.randint(0, nodes, (2, m), generator=gen)
        g = Data(edge_index=ei, y=torch.tensor([i % 3]), num_nodes=nodes)
        g.x = torch.randn(nodes, 4, generator=gen)
        g.x_native = torch.randn(nodes, 2, generator=gen)
        if weights:
            g.edge_weight = torch.rand(m, generator=gen)
        out.append(g)
    return out


def assert_same_batch(ours: Batch, ref: Batch) -> None:
    assert sorted(ours.keys()) == sorted(ref.keys())
    for key in ref.keys():  # noqa: SIM118  (Data iterates over (key, value) pairs)
        assert _same(ours[key], ref[key]), key
    assert ours.num_graphs == ref.num_graphs and ours.num_nodes == ref.num_nodes
    for key in ref._slice_dict:
        assert _same(ours._slice_dict[key], ref._slice_dict[key]), key
        assert _same(ours._inc_dict[key], ref._inc_dict[key]), key
    for g, h in zip(ours.to_data_list(), ref.to_data_list(), strict=True):
        assert all(_same(g[key], h[key]) for key in h.keys())  # noqa: SIM118


def _same(a: object, b: object) -> bool:
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def test_any_index_batch_equals_pyg_collation() -> None:
    graphs = _graphs()
    data = CollatedGraphs(graphs)
    assert data.vectorised
    for idx in ([0], [5, 2, 36, 2], list(range(37))[::-1], [10, 11, 12]):
        ref = Batch.from_data_list([graphs[i] for i in idx])
        assert_same_batch(data.batch(torch.tensor(idx)), ref)


@pytest.mark.parametrize("group_bytes", [1, 2000, 2**30])  # one batch per gather, a few, the whole epoch
def test_loader_yields_pyg_dataloader_batches_epoch_after_epoch(group_bytes: int, monkeypatch) -> None:
    monkeypatch.setattr(batching, "GROUP_BYTES", group_bytes)
    graphs = _graphs(weights=False)
    for shuffle, bs in ((True, 8), (True, 37), (False, 5)):
        g_ref, g_new = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        ref = DataLoader(graphs, batch_size=bs, shuffle=shuffle, generator=g_ref)
        new = GraphLoader(graphs, batch_size=bs, shuffle=shuffle, generator=g_new)
        assert len(new) == len(ref)
        for _epoch in range(3):  # the generator advances the same way every epoch
            pairs = list(zip(new, ref, strict=True))
            for ours, theirs in pairs:
                assert_same_batch(ours, theirs)
        assert torch.equal(g_ref.get_state(), g_new.get_state())


def test_non_tensor_attributes_fall_back_to_pyg() -> None:
    graphs = _graphs(5)
    for i, g in enumerate(graphs):
        g.name = f"g{i}"
    data = CollatedGraphs(graphs)
    assert not data.vectorised
    assert_same_batch(data.batch(torch.tensor([3, 1])), Batch.from_data_list([graphs[3], graphs[1]]))


def test_empty_list_yields_nothing() -> None:
    assert list(GraphLoader([], batch_size=4)) == []


def test_graphs_with_different_attributes_collate_per_batch_like_pyg() -> None:
    graphs = _graphs(6, weights=False)
    del graphs[4].x_native  # a list PyG's loader handles only when graph 4 is not batched after graph 0
    loader = GraphLoader(graphs, batch_size=3)
    assert not loader.data.vectorised
    assert_same_batch(next(iter(loader)), Batch.from_data_list(graphs[:3]))


def test_collation_cache_reuses_only_the_very_same_unchanged_graphs() -> None:
    cache = batching.CollationCache(size=2)
    graphs = _graphs(weights=False)
    first = cache.get(graphs)
    assert cache.get(list(graphs)) is first  # another list of the same graphs: a hit
    assert cache.get(graphs[:-1]) is not first  # other graphs: a miss
    graphs[3].x.mul_(2.0)  # written in place: the old collation is stale
    fresh = cache.get(graphs)
    assert fresh is not first
    assert_same_batch(fresh.batch(torch.arange(len(graphs))), Batch.from_data_list(graphs))
    graphs[4].x = torch.zeros_like(graphs[4].x)  # attribute replaced
    again = cache.get(graphs)
    assert again is not fresh
    assert_same_batch(again.batch(torch.arange(len(graphs))), Batch.from_data_list(graphs))
    cache.get(_graphs(5, seed=1))
    cache.get(_graphs(6, seed=2))
    assert len(cache._entries) == 2  # bounded
    big = batching.CollationCache(max_bytes=0)
    assert big.get(graphs) is not big.get(graphs)  # over the size limit: never kept


def test_predict_logits_with_reused_collations_is_bitwise_the_uncached_result(monkeypatch) -> None:
    from gnnsec.models import build_graph_model
    from gnnsec.train import predict_logits

    graphs = _graphs(weights=False)
    torch.manual_seed(0)
    model = build_graph_model("GIN", 4, 3, hidden=16, num_layers=3)
    cache = batching.CollationCache()
    monkeypatch.setattr("gnnsec.train.COLLATIONS", cache)
    cache.enabled = False
    ref = [predict_logits(model, graphs, batch_size=b) for b in (8, 256)]
    cache.enabled = True
    for _ in range(2):
        for b, r in zip((8, 256), ref, strict=True):
            assert torch.equal(predict_logits(model, graphs, batch_size=b), r)
    assert cache.hits >= 2
