"""The CLI: --help, data stats, train with --json (one JSON object on stdout), clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gnnsec.cli import main


def test_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gnnsec", "--help"], capture_output=True, text=True, check=True
    )
    for cmd in ("data", "train", "attack", "defend", "cache"):
        assert cmd in out.stdout


def test_data_stats_json(mirror, capsys) -> None:
    assert main(["data", "stats", "MUTAG", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["datasets"][0]["graphs"] == 188


def test_train_json_prints_one_object(mirror, capsys, tmp_path) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "MUTAG",
            "--model",
            "GCN",
            "--epochs",
            "3",
            "--json",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    m = payload["metrics"]
    assert m["n_train"] + m["n_holding"] + m["n_test"] == m["n_graphs"] == 188  # MUTAG, the whole split
    assert m["clean_n"] == m["n_test"] and float(m["clean_acc"] * m["n_test"]).is_integer()  # a real count
    assert payload["config"]["model"]["name"] == "GCN"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--dataset", "NOPE"], "data.dataset"),
        (["train", "--dataset", "MUTAG", "--epochs", "0"], "train.epochs"),
        (["attack", "--dataset", "MUTAG", "--injection-ratio", "1.5"], "attack.injection_ratio"),
        (["train", "--dataset", "MUTAG", "--model", "Transformer"], "model.name"),
    ],
)
def test_bad_flags_fail_fast_with_clear_errors(argv: list[str], needle: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "valid" in err
