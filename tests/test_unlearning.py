"""Unlearners: served graphs, GraphEditor's exactness, IDEA's bound, forget-set identity, named errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from gnnsec.cli import main
from gnnsec.config import TrainConfig, TrialConfig, UnlearningConfig
from gnnsec.errors import ConfigError
from gnnsec.models.node import build_node_model
from gnnsec.node_trial import PAPER_SETTINGS, forget_set
from gnnsec.pipeline import run_trial
from gnnsec.unlearning import UNLEARNERS, UnlearnRequest, remove_nodes
from gnnsec.unlearning.grapheditor import LinearGNN, exact_removal, propagate
from gnnsec.unlearning.idea import newton_bound, newton_removal


def random_graph(n: int = 40, d: int = 6, classes: int = 3, seed: int = 0) -> Data:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = torch.randn(n, d, generator=gen) + nn.functional.one_hot(y, d).float()
    src = torch.randint(0, n, (3 * n,), generator=gen)
    dst = torch.randint(0, n, (3 * n,), generator=gen)
    keep = src != dst
    ei = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=n)
    g = Data(x=x, edge_index=ei, y=y, num_nodes=n)
    perm = torch.randperm(n, generator=gen)
    g.train_mask = torch.zeros(n, dtype=torch.bool)
    g.train_mask[perm[: n // 2]] = True
    g.test_mask = ~g.train_mask
    g.val_mask = torch.zeros(n, dtype=torch.bool)
    g.node_ids = torch.arange(n)
    return g


def request(g: Data, forget: torch.Tensor, classes: int = 3, epochs: int = 30) -> UnlearnRequest:
    cfg = TrainConfig(epochs=epochs, lr=0.01, seed=0)

    def new() -> nn.Module:
        torch.manual_seed(0)
        return build_node_model("GCN", g.x.size(1), classes, hidden=16)

    from gnnsec.train_nodes import fit_nodes

    model = new()
    fit_nodes(model, g, cfg)
    return UnlearnRequest(model, g, forget, new, cfg, classes)


@pytest.mark.parametrize("name", ["retrain", "gnndelete", "grapheditor", "idea"])
def test_served_graph_lacks_forget_nodes(name: str) -> None:
    g = random_graph()
    forget = torch.tensor([0, 5, 7])
    out = UNLEARNERS.get(name)({}).unlearn(request(g, forget))
    assert not set(forget.tolist()) & set(out.graph.node_ids.tolist())
    assert out.graph.num_nodes == g.num_nodes - 3
    assert out.graph.edge_index.max() < out.graph.num_nodes
    assert out.seconds > 0
    with torch.no_grad():  # the unlearned model serves its graph
        logits = out.model(out.graph.x, out.graph.edge_index, node_ids=out.graph.node_ids)
    assert logits.shape == (g.num_nodes - 3, 3) and torch.isfinite(logits).all()


def test_gnndelete_keeps_backbone_and_changes_only_the_neighbourhood() -> None:
    g = random_graph()
    forget = torch.tensor([3])
    req = request(g, forget)
    out = UNLEARNERS.get("gnndelete")({"epochs": 50}).unlearn(req)
    for (k, p), q in zip(out.model.base.state_dict().items(), req.model.state_dict().values()):
        assert torch.equal(p, q), k  # original weights frozen
    from gnnsec.unlearning.base import k_hop_mask

    far = ~k_hop_mask(g, forget, 2)
    served = out.graph
    with torch.no_grad():
        new = out.model(served.x, served.edge_index, node_ids=served.node_ids)
        old = req.model.eval()(served.x, served.edge_index)
    far_served = far[served.node_ids]
    assert torch.allclose(new[far_served], old[far_served])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grapheditor_closed_form_equals_retraining_the_linear_model(seed: int) -> None:
    g = random_graph(n=60, d=8, seed=seed)
    forget = torch.tensor([1, 2, 10, 33]) + seed
    updated, served, _ = exact_removal(g, forget, k=2, lam=0.1, num_classes=3)
    z = propagate(served, 2)
    scratch = LinearGNN(z[served.train_mask], served.y[served.train_mask], 3, 0.1)
    assert torch.allclose(updated.w, scratch.w, atol=1e-8)
    before = LinearGNN(propagate(g, 2)[g.train_mask], g.y[g.train_mask], 3, 0.1)
    assert (before.w - scratch.w).abs().max() > 1e-3  # the removal did change the solution


def _logistic(z: torch.Tensor, y: torch.Tensor, lam: float, n: int):  # noqa: ANN202
    def loss(theta: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-y * (z @ theta)).sum() / n + 0.5 * lam * theta @ theta

    return loss


def _minimise(loss, d: int) -> torch.Tensor:  # noqa: ANN001
    theta = torch.zeros(d, dtype=torch.float64)
    for _ in range(50):  # Newton's method to machine precision (strongly convex)
        g = torch.autograd.functional.jacobian(loss, theta)
        h = torch.autograd.functional.hessian(loss, theta)
        theta = theta - torch.linalg.solve(h, g)
    return theta


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_idea_update_respects_its_bound(seed: int) -> None:
    """Binary logistic regression on SGC features of a small graph (IDEA's convex setting)."""
    g = random_graph(n=50, d=4, classes=2, seed=seed)
    lam, n = 0.05, int(g.train_mask.sum())
    forget = torch.tensor([0, 4, 9]) + seed
    served = remove_nodes(g, forget)
    z_old, z_new = propagate(g, 2), propagate(served, 2)
    y_old = (2 * g.y - 1).double()[g.train_mask]
    y_new = (2 * served.y - 1).double()[served.train_mask]
    l_old = _logistic(z_old[g.train_mask], y_old, lam, n)
    l_new = _logistic(z_new[served.train_mask], y_new, lam, n)
    theta_star = _minimise(l_old, 4)
    theta_retrain = _minimise(l_new, 4)
    theta = theta_star.clone().requires_grad_(True)
    update, g_norm = newton_removal([theta], lambda: l_old(theta), lambda: l_new(theta), 0.0, cg_iters=50)
    theta_bar = theta_star - update
    h = torch.autograd.functional.hessian(l_old, theta_star)
    h_new = torch.autograd.functional.hessian(l_new, theta_star)
    inv_diff = float(torch.linalg.matrix_norm(torch.linalg.inv(h) - torch.linalg.inv(h_new), ord=2))
    zt = z_new[served.train_mask]
    m_lip = 1 / (6 * 3**0.5) * float((zt.norm(dim=1) ** 3).sum()) / n  # Lipschitz constant of ∇²L̃
    bound = newton_bound(g_norm, inv_diff, lam, m_lip)
    err = float((theta_bar - theta_retrain).norm())
    assert err <= bound
    assert err < float((theta_star - theta_retrain).norm())  # the update moves towards retraining


def test_forget_set_identical_across_unlearners_and_backbones(mirror) -> None:  # noqa: ANN001
    assert torch.equal(forget_set(2708, 0.05, 3), forget_set(2708, 0.05, 3))
    assert not torch.equal(forget_set(2708, 0.05, 3), forget_set(2708, 0.05, 4))
    rows = {}
    for model, name in [("GCN", "idea"), ("GCN", "gnndelete"), ("GAT", "retrain")]:
        cfg = TrialConfig.from_dict(
            {"data": {"dataset": "Cora"}, "model": {"name": model}, "unlearning": {"name": name}}
        ).with_overrides({**PAPER_SETTINGS, "train.epochs": 3, "unlearning.params": _fast(name)})
        m = run_trial(cfg).metrics
        rows[(model, name)] = m
        assert m["verify_ra_post"] == 0.0 and m["verify_ged"] == m["verify_proxy_edges_pre"]
    assert len({m["verify_proxy_edges_pre"] for m in rows.values()}) == 1  # same forget set -> same proxy
    assert len({m["n_forget_train"] for m in rows.values()}) == 1
    assert rows[("GCN", "idea")]["verify_ra_pre"] == rows[("GCN", "gnndelete")]["verify_ra_pre"]


def _fast(name: str) -> dict:
    return {"gnndelete": {"epochs": 2}, "grapheditor": {"finetune_epochs": 2}}.get(name, {})


def test_named_errors() -> None:
    with pytest.raises(ConfigError, match="unlearning.name"):
        UnlearningConfig(name="forgetful")
    for ratio in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="unlearning.forget_ratio"):
            UnlearningConfig(forget_ratio=ratio)
    with pytest.raises(ConfigError, match="data.dataset"):
        TrialConfig.from_dict({"data": {"dataset": "AIDS"}, "unlearning": {"name": "retrain"}})
    with pytest.raises(ConfigError, match="unlearning.params.bogus"):
        UnlearningConfig(name="idea", params={"bogus": 1})


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--unlearner", "forgetful"], "unlearning.name"),
        (["--forget-ratio", "1.5"], "unlearning.forget_ratio"),
        (["--forget-ratio", "0"], "unlearning.forget_ratio"),
        (["--dataset", "MUTAG"], "data.dataset"),
    ],
)
def test_cli_unlearn_fails_with_named_error(argv: list[str], field: str, capsys) -> None:  # noqa: ANN001
    assert main(["unlearn", *argv]) == 2
    assert f"invalid {field}=" in capsys.readouterr().err


def test_cli_unlearn_config_nests_unlearner_params() -> None:
    from gnnsec.cli import build_parser, build_unlearn_config

    args = build_parser().parse_args(
        ["unlearn", "--unlearner", "gnndelete", "--seed", "2", "--set", "unlearning.params.epochs=5"]
    )
    cfg = build_unlearn_config(args)
    assert cfg.unlearning.params == {"epochs": 5} and cfg.unlearning.name == "gnndelete"
    assert (cfg.model.num_layers, cfg.model.dropout, cfg.train.lr, cfg.train.seed) == (2, 0.5, 0.005, 2)
    assert cfg.data.dataset == "Cora" and cfg.data.split_seed == 2


def test_cli_unlearn_json_prints_utility_time_and_verifier_row(mirror, capsys) -> None:  # noqa: ANN001
    import json

    argv = ["unlearn", "--dataset", "Cora", "--unlearner", "idea", "--epochs", "3", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["metrics"]
    for key in ("base_acc", "unlearned_acc", "unlearn_seconds", "verify_ra_pre", "verify_ged", "verify_grs"):
        assert key in m
    assert m["verify_ra_post"] == 0.0 and 0.0 < m["verify_ra_pre"] < 1.0
    assert m["n_forget"] == round(0.05 * 2708)
