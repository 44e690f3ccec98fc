"""The defender sees nothing of the attack, checked on behaviour (issue 9.5): a defense run through the real
pipeline gets a recording ``DefenderData``; every graph it touched must be one of the holding split's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gnnsec.cache import ArtifactCache
from gnnsec.config import TrialConfig
from gnnsec.data import load_graph_dataset
from gnnsec.defenses import DEFENSES
from sweeps.grids import PRESETS

PARAMS = PRESETS["smoke"].defense_params  # the CI preset's tiny settings, one place


class RecordingList(list):
    """A list that remembers every element read from it (indexing, slicing, iteration)."""

    def __init__(self, items: object) -> None:
        super().__init__(items)
        self.touched: list[object] = []

    def __getitem__(self, i):  # noqa: ANN001, ANN204
        out = super().__getitem__(i)
        self.touched += out if isinstance(i, slice) else [out]
        return out

    def __iter__(self):  # noqa: ANN204
        for g in super().__iter__():
            self.touched.append(g)
            yield g


def fingerprint(g: object) -> tuple:
    return (
        int(g.num_nodes),
        int(g.y),
        g.edge_index.numpy().tobytes(),
        g.x.to(torch.float32).numpy().tobytes(),
    )


@pytest.mark.parametrize("defense", ["finetune", "gcleaner"])
def test_defense_touches_only_holding_graphs(defense: str, mirror, tmp_path, monkeypatch) -> None:
    from gnnsec.pipeline import run_trial

    if defense not in DEFENSES:
        pytest.fail(f"{defense} is not registered")
    klass = DEFENSES.get(defense)
    original = klass.defend
    recorders: list[RecordingList] = []

    def recording_defend(self, model, clean):  # noqa: ANN001, ANN202
        rec = RecordingList(clean.graphs)
        recorders.append(rec)
        return original(self, model, dataclasses.replace(clean, graphs=rec))

    monkeypatch.setattr(klass, "defend", recording_defend)
    cfg = TrialConfig.from_dict(
        {
            "data": {"dataset": "MUTAG", "holding_rate": 0.05},
            "model": {"hidden": 16},
            "train": {"epochs": 3},
            "attack": {"name": "sub_ba"},
            "defense": {"name": defense, "params": PARAMS[defense]},
        }
    )
    m = run_trial(cfg, ArtifactCache(tmp_path / "artifacts")).metrics
    assert len(recorders) == 1 and "defended_acc" in m

    ds = load_graph_dataset(cfg.data)  # an independent load: compare graphs by content
    split = ds.split(cfg.data)
    holding = {fingerprint(g) for g in ds.subset(split.holding)}
    elsewhere = {fingerprint(g) for g in ds.subset(split.train) + ds.subset(split.test)} - holding
    touched = {fingerprint(g) for g in recorders[0].touched}
    assert touched, "the defense read no clean graph at all"
    assert touched <= holding, (
        f"{len(touched - holding)} graphs outside the holding split reached the defense"
    )
    assert not touched & elsewhere
    assert m["n_defender"] == len(split.holding) == len(recorders[0])
