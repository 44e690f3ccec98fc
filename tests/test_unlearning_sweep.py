"""The ``unlearning`` sub-sweep expands to the paper's grid with the paper's settings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnsec.node_trial import PAPER_SETTINGS  # noqa: E402
from sweeps.driver import build_parser, make_plan  # noqa: E402


def test_unlearning_subsweep_is_the_papers_grid() -> None:
    argv = [
        "--preset",
        "paper",
        "--only",
        "unlearning",
        "--datasets",
        "Cora",
        "CiteSeer",
        "--seeds",
        "0",
        "1",
        "2",
    ]
    plan = make_plan(build_parser().parse_args(argv))
    assert "unlearning" not in plan.skipped
    assert len(plan.trials) == 2 * 2 * 4 * 3
    combos = {
        (
            t.config["data"]["dataset"],
            t.config["model"]["name"],
            t.config["unlearning"]["name"],
            t.config["train"]["seed"],
        )
        for t in plan.trials
    }
    assert len(combos) == 48
    for t in plan.trials:
        c = t.config
        assert c["attack"] is None and c["defense"] is None
        assert c["unlearning"]["forget_ratio"] == 0.05
        for dotted, value in PAPER_SETTINGS.items():
            section, key = dotted.split(".")
            assert c[section][key] == value, dotted
    # every unlearner of a (dataset, backbone, seed) shares one cached base model
    keys = {}
    for t in plan.trials:
        c = t.config
        keys.setdefault((c["data"]["dataset"], c["model"]["name"], c["train"]["seed"]), set()).add(
            t.clean_key
        )
    assert all(len(v) == 1 for v in keys.values()) and len(keys) == 12
