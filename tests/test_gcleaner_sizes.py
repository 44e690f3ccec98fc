"""GCleaner's per-class trigger-size search (gnnsec/defenses/gcleaner/sizes.py): per class the smallest
recovered trigger whose held-out flip reaches the detection threshold is kept, and detection reads each
class's best evidence over the sizes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gnnsec.config import DefenseConfig
from gnnsec.defenses import DefenderData
from gnnsec.defenses.gcleaner import GCleaner, GCleanerParams, sizes
from gnnsec.defenses.gcleaner.recovery import ClassEvidence
from gnnsec.errors import ConfigError
from tests.test_gcleaner_crossfit import FAST, _model, toy  # noqa: F401  (fixture)


def _ev(cls: int, flip: float) -> ClassEvidence:
    return ClassEvidence(cls, flip, 10, flip, 0.9, 0.1, 0, True)


def test_trigger_sizes_are_the_smaller_searched_sizes_and_n() -> None:
    assert sizes.trigger_sizes(GCleanerParams()) == [5]
    assert sizes.trigger_sizes(GCleanerParams(n_search="3, 2,7,5")) == [2, 3, 5]
    assert sizes.trigger_sizes(GCleanerParams(n=3, n_search="2")) == [2, 3]


@pytest.mark.parametrize("bad", ["2;3", "0", "8", "two", "2,-1"])
def test_bad_size_lists_are_rejected_before_any_work(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        DefenseConfig("gcleaner", {"n_search": bad})
    assert "n_search" in str(err.value)


def test_the_smallest_size_that_reaches_the_threshold_is_kept() -> None:
    by_size = {2: _ev(1, 0.4), 3: _ev(1, 0.6), 5: _ev(1, 1.0)}
    assert sizes.pick_size(by_size, 0.5) == 3  # not 5, although 5 flips more
    assert sizes.pick_size(by_size, 0.3) == 2
    # no size reaches it: the most flipping size, the smaller one on a tie
    assert sizes.pick_size({2: _ev(0, 0.1), 3: _ev(0, 0.2), 5: _ev(0, 0.2)}, 0.5) == 3


def test_recovery_over_sizes_combines_classes_and_keeps_each_class_trigger(toy, monkeypatch) -> None:  # noqa: ANN001, F811
    """Class 1 reaches the threshold only at n = 3 and class 0 never does: the verdict names class 1 with
    its n = 3 trigger (and that size's placement), and class 0's evidence is its best flip over sizes."""
    graphs, featurizer = toy
    flips = {2: {0: 0.3, 1: 0.2}, 3: {0: 0.1, 1: 0.8}, 5: {0: 0.35, 1: 1.0}}
    inner = sizes.recover
    seen: list[int] = []

    def fake(model, fit, feat, k, p, seed, val=()):  # noqa: ANN001, ANN202
        seen.append(p.n)
        real = inner(model, fit, feat, k, p, seed, val)
        ev = [dataclasses.replace(e, flip=flips[p.n][e.cls]) for e in real.evidence]
        return dataclasses.replace(real, evidence=ev)

    monkeypatch.setattr(sizes, "recover", fake)
    p = GCleanerParams(**{**FAST, "n_search": "2,3", "detect_flip": 0.5, "detect_gap": 0.4})
    rec = sizes.recover_by_size(_model(featurizer), graphs[:12], featurizer, 2, p, 0, graphs[12:])
    assert seen == [2, 3, 5]
    assert (rec.target, rec.believed, rec.sizes) == (1, True, {0: 5, 1: 3})
    assert rec.trigger.n == 3 and rec.placement.positions.size(1) == 3
    assert {e.cls: e.flip for e in rec.evidence} == {0: 0.35, 1: 1.0}
    assert rec.gap == pytest.approx(0.65)


def test_defend_logs_the_size_kept_per_class(toy) -> None:  # noqa: F811
    graphs, featurizer = toy
    params = {**FAST, "n_search": "2", "n": 3, "require_detection": False, "unlearn_epochs": 2}
    out = GCleaner(DefenseConfig("gcleaner", params)).defend(
        _model(featurizer), DefenderData(graphs, 2, featurizer)
    )
    assert {out.metrics["class0_n"], out.metrics["class1_n"]} <= {2.0, 3.0}
    assert out.metrics["recovery_n"] in (2.0, 3.0)
    assert not torch.isnan(torch.tensor(out.metrics["class1_flip"]))
