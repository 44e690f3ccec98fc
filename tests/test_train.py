"""Training is seeded (same config and seed, same metrics) and actually learns."""

from __future__ import annotations

import copy

import torch

from gnnsec.config import TrainConfig
from gnnsec.models import build_graph_model
from gnnsec.train import evaluate, fit, predict
from tests.conftest import path_graph


def _dataset(seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(80):
        n = int(torch.randint(4, 9, (1,), generator=gen))
        y = i % 2
        g = path_graph(n, y=y, dim=2)
        g.x = torch.full((n, 2), float(y)) + 0.3 * torch.randn(n, 2, generator=gen)
        graphs.append(g)
    return graphs


def _run(seed: int) -> tuple[list, float]:
    torch.manual_seed(seed)
    model = build_graph_model("GIN", 2, 2, hidden=16, num_layers=2)
    history = fit(model, _dataset(), TrainConfig(epochs=8, lr=0.01, batch_size=16, seed=seed))
    return history, evaluate(model, _dataset(1)).acc


def test_same_seed_same_metrics() -> None:
    h1, acc1 = _run(3)
    h2, acc2 = _run(3)
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    assert acc1 == acc2


def test_training_learns_a_separable_task() -> None:
    history, acc = _run(0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert acc >= 0.9


def test_per_class_accuracy() -> None:
    model = build_graph_model("GCN", 2, 2, hidden=8)
    res = evaluate(model, _dataset(), num_classes=2)
    assert set(res.per_class_acc) == {0, 1} and res.n == 80
    # checked against the predictions: overall and per-class accuracy are those of the argmax labels
    labels = torch.tensor([int(g.y) for g in _dataset()])
    preds = predict(model, _dataset())
    assert res.acc == float((preds == labels).float().mean())
    for c in (0, 1):
        assert res.per_class_acc[c] == float((preds[labels == c] == c).float().mean())
    assert res.acc == sum(res.per_class_acc[c] * int((labels == c).sum()) for c in (0, 1)) / 80


def test_fit_is_bitwise_the_loop_over_pygs_dataloader() -> None:
    """The fast loader and the flat multi-tensor Adam change nothing: same weights as PyG's DataLoader +
    per-tensor Adam."""
    from torch_geometric.loader import DataLoader

    from gnnsec.train import cross_entropy_loss, seed_everything, train_epoch

    graphs = _dataset()
    cfg = TrainConfig(epochs=3, lr=0.01, batch_size=16, seed=5, step_size=2, device="cpu")
    torch.manual_seed(1)
    model = build_graph_model("GIN", 2, 2, hidden=16, num_layers=2)
    ref = copy.deepcopy(model)
    fit(model, graphs, cfg)
    gen = seed_everything(cfg.seed)
    loader = DataLoader(graphs, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr, foreach=False)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    for _ in range(3):
        train_epoch(ref, loader, opt, torch.device("cpu"), cross_entropy_loss)
        sched.step()
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_flat_parameters_are_restored_after_fit() -> None:
    """While ``fit`` runs the weights are views of one flat tensor; afterwards each has its own storage
    again, holds the trained values and still belongs to the model."""
    from gnnsec.train import flat_parameters

    model = build_graph_model("GIN", 2, 2, hidden=8, num_layers=1)
    params = list(model.parameters())
    with flat_parameters(model) as flat:
        assert len(flat) == 1 and flat[0].numel() == sum(p.numel() for p in params)
        flat[0].data.add_(1.0)  # an update of the flat tensor is an update of every weight
        storages = {p.untyped_storage().data_ptr() for p in params}
        assert storages == {flat[0].untyped_storage().data_ptr()}
    after = list(model.parameters())
    assert all(p is q for p, q in zip(params, after, strict=True))
    assert len({p.untyped_storage().data_ptr() for p in after}) == len(after)
    fit(model, _dataset(), TrainConfig(epochs=1, batch_size=16, device="cpu"))
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_denormals_flushed_only_while_training_dense_graphs() -> None:
    from gnnsec.train import flush_denormals, is_dense

    tiny = torch.tensor([1e-40])  # subnormal in float32
    assert not is_dense(_dataset())  # path graphs: ~2 edges per node
    n = 12
    full = torch.combinations(torch.arange(n)).t()
    dense = [path_graph(n, y=0, dim=2)]
    dense[0].edge_index = torch.cat([full, full.flip(0)], 1)  # 22 edges per node
    assert is_dense(dense)
    with flush_denormals(True):
        assert float((tiny * 1.0)[0]) == 0.0
    assert float((tiny * 1.0)[0]) > 0.0  # default mode restored
    model = build_graph_model("GIN", 2, 2, hidden=8, num_layers=1)
    fit(model, dense * 4, TrainConfig(epochs=1, batch_size=2, device="cpu"))
    assert float((tiny * 1.0)[0]) > 0.0
