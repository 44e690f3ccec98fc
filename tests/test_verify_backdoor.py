"""Backdoor-unlearning verification: trigger masks match the real injection; RA on the trigger is high for
a backdoored model, lower for a clean one; identical models shift nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnnsec.attacks import ATTACKS, AttackContext
from gnnsec.config import AttackConfig, DataConfig, TrainConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.models import build_graph_model
from gnnsec.train import fit
from gnnsec.verify.backdoor import (
    graph_saliency,
    trigger_attribution,
    verify_backdoor_unlearning,
)
from tests.conftest import require_dataset


@pytest.fixture(scope="module")
def setup(mirror: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    require_dataset(mirror, "TUDataset", "MUTAG")
    torch.set_num_threads(1)
    cfg = DataConfig(dataset="MUTAG", root=str(tmp_path_factory.mktemp("data")))
    ds = load_graph_dataset(cfg)
    split = ds.split(cfg)
    train, test = ds.subset(split.train), ds.subset(split.test)
    tcfg = TrainConfig(epochs=20)

    def factory() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_graph_model("GIN", ds.num_features, ds.num_classes, hidden=32)

    clean = factory()
    fit(clean, train, tcfg)
    attack = ATTACKS.get("sub_ba")(
        AttackConfig(injection_ratio=0.1), ds.featurizer, ds.num_classes, ds.avg_nodes
    )
    ctx = AttackContext(train, ds.featurizer, ds.num_classes, ds.avg_nodes, factory, tcfg, clean_model=clean)
    attack.reseed(1)
    attack.prepare(ctx)
    victims = attack.select_victims(train)
    model = factory()
    attack.train_backdoored(model, attack.poison(train, victims), ctx, victims)
    victims_test = [g for g in test if int(g.y) != 1]
    return attack, clean.eval(), model.eval(), victims_test


def test_masks_belong_to_the_real_injection(setup) -> None:  # noqa: ANN001
    attack, _, _, victims = setup
    attack.reseed(2)
    expected = attack.inject(victims)
    attack.reseed(2)
    got, masks = attack.inject_with_masks(victims)
    for a, b, m in zip(expected, got, masks):
        assert torch.equal(a.edge_index, b.edge_index)
        assert m.shape == (a.num_nodes,) and 0 < int(m.sum()) <= attack.trigger_nodes
        # trigger nodes are exactly those whose edges the injection rewired among themselves
        src, dst = b.edge_index
        assert bool((m[src] & m[dst]).any())


def test_backdoored_model_attends_to_the_trigger(setup) -> None:  # noqa: ANN001
    attack, clean, backdoored, victims = setup
    attack.reseed(2)
    triggered, masks = attack.inject_with_masks(victims)
    share = float(np.mean([float(m.float().mean()) for m in masks]))
    ra_bd = trigger_attribution(graph_saliency(backdoored, triggered, 1), masks)
    ra_clean = trigger_attribution(graph_saliency(clean, triggered, 1), masks)
    assert ra_bd > share  # more than a uniform heatmap would give the trigger
    assert ra_bd > ra_clean


def test_same_model_shifts_nothing_and_clean_model_drops_ra(setup) -> None:  # noqa: ANN001
    attack, clean, backdoored, victims = setup
    attack.reseed(2)
    triggered, masks = attack.inject_with_masks(victims)
    same = verify_backdoor_unlearning(backdoored, backdoored, triggered, masks, 1)
    assert same["trigger_hs"] == 0.0 and same["trigger_ra_drop"] == 0.0
    to_clean = verify_backdoor_unlearning(backdoored, clean, triggered, masks, 1)
    assert to_clean["trigger_ra_drop"] > 0 and to_clean["trigger_hs"] > 0
    assert to_clean["trigger_verify_n"] == len(victims)
