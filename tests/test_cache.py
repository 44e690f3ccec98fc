"""The artifact cache builds once, serves later requests, and survives concurrent builders."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest
import torch

from gnnsec.cache import ArtifactCache, cache_key, load_tensors, save_tensors


def _build_slowly(root: str, marker_dir: str, value: int) -> None:
    cache = ArtifactCache(root)

    def build(tmp: Path) -> None:
        (Path(marker_dir) / f"built-{value}-{time.time_ns()}").touch()
        time.sleep(0.5)
        save_tensors(tmp / "model.pt", {"w": torch.full((3,), float(value))})

    cache.get_or_create("demo", {"name": "same-key"}, build)


def test_key_depends_on_every_field() -> None:
    assert cache_key({"a": 1, "b": {"c": 2}}) == cache_key({"b": {"c": 2}, "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_second_request_is_served_from_cache(tmp_path) -> None:
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(tmp: Path) -> None:
        calls.append(1)
        save_tensors(tmp / "x.pt", {"x": torch.ones(2)})

    p1, hit1 = cache.get_or_create("k", {"a": 1}, build)
    p2, hit2 = cache.get_or_create("k", {"a": 1}, build)
    assert (hit1, hit2) == (False, True) and p1 == p2 and len(calls) == 1
    assert torch.equal(load_tensors(p2 / "x.pt")["x"], torch.ones(2))
    assert [e.kind for e in cache.entries()] == ["k"]
    assert cache.clear() == 1 and cache.entries() == []


def test_failed_build_leaves_nothing(tmp_path) -> None:
    cache = ArtifactCache(tmp_path)

    def broken(tmp: Path) -> None:
        (tmp / "half.pt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.get_or_create("k", {"a": 1}, broken)
    assert cache.entries() == [] and not list((tmp_path / "k").glob("*/half.pt"))


def test_concurrent_processes_leave_one_valid_artifact(tmp_path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_slowly, args=(str(tmp_path / "c"), str(markers), i)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(list(markers.iterdir())) == 1  # built exactly once
    entries = ArtifactCache(tmp_path / "c").entries()
    assert len(entries) == 1
    w = load_tensors(entries[0].path / "model.pt")["w"]
    assert w.shape == (3,) and len(set(w.tolist())) == 1
    assert json.loads((entries[0].path / "meta.json").read_text())["spec"] == {"name": "same-key"}


# ---- self-healing (issue 9.1) ------------------------------------------------------------------------
def _model_build(calls: list) -> object:
    def build(tmp: Path) -> None:
        calls.append(1)
        save_tensors(tmp / "model.pt", {"w": torch.arange(1000.0)})
        (tmp / "info.json").write_text("{}")

    return build


def test_truncated_file_is_quarantined_and_rebuilt(tmp_path, caplog) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    folder, _ = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["files"]) == {"model.pt", "info.json"} and len(meta["files"]["model.pt"]["sha256"]) == 64
    with open(folder / "model.pt", "r+b") as fh:
        fh.truncate(100)
    with caplog.at_level("WARNING", logger="gnnsec.cache"):
        folder2, hit = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    assert not hit and len(calls) == 2 and folder2 == folder
    assert torch.equal(load_tensors(folder2 / "model.pt")["w"], torch.arange(1000.0))
    assert any(folder.name in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    quarantined = list((tmp_path / ".quarantine").iterdir())
    assert len(quarantined) == 1 and (quarantined[0] / "model.pt").stat().st_size == 100


def test_same_size_bit_flip_is_caught_by_the_hash(tmp_path) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    folder, _ = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    raw = bytearray((folder / "model.pt").read_bytes())
    raw[-40] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(raw))
    assert [p for p, _ in cache.verify()] == [folder]
    _, hit = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    assert not hit and len(calls) == 2 and cache.verify() == []


def test_folder_without_meta_and_stale_tmp_are_healed(tmp_path) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    final = cache.path("clean", {"a": 1})
    final.mkdir(parents=True)
    (final / "model.pt").write_text("half")  # a partial entry: used to make os.replace fail forever
    stale = final.parent / f".tmp-{final.name}-dead"
    stale.mkdir()
    folder, hit = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    assert not hit and folder == final and (folder / "meta.json").is_file()
    assert not stale.exists()


def test_corrupt_meta_never_crashes_clear_or_verify(tmp_path) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    good, _ = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    bad, _ = cache.get_or_create("backdoor", {"a": 2}, _model_build(calls))
    (bad / "meta.json").write_text("{not json")
    assert [e.path for e in cache.entries()] == [good]
    problems = cache.verify()
    assert [p for p, _ in problems] == [bad] and "meta.json" in problems[0][1]
    assert cache.clear() == 2 and not good.exists() and not bad.exists()


def test_cli_cache_verify_reports_and_repairs(tmp_path, capsys) -> None:
    from gnnsec.cli import main

    cache, calls = ArtifactCache(tmp_path), []
    folder, _ = cache.get_or_create("clean", {"a": 1}, _model_build(calls))
    assert main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 0
    (folder / "info.json").write_text("{} ")
    assert main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 1
    assert folder.name in capsys.readouterr().out
    assert main(["cache", "verify", "--cache-dir", str(tmp_path), "--repair"]) == 1
    assert not folder.exists() and main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 0


def test_code_versions_change_the_key() -> None:
    from gnnsec.attacks import ATTACKS
    from gnnsec.cache import code_versions

    klass = ATTACKS.get("sub_ba")
    before = cache_key({"code": code_versions(attack=klass)})

    class Bumped(klass):  # type: ignore[misc, valid-type]
        version = klass.version + 1

    Bumped.__name__ = klass.__name__
    assert cache_key({"code": code_versions(attack=Bumped)}) != before
    assert code_versions()["gnnsec"] == __import__("gnnsec").__version__


def test_pipeline_keys_change_when_a_method_version_is_bumped(mirror, monkeypatch) -> None:
    from gnnsec.attacks import ATTACKS
    from gnnsec.config import TrialConfig
    from gnnsec.data import load_graph_dataset
    from gnnsec.models import GRAPH_MODELS
    from gnnsec.pipeline import backdoor_spec, clean_spec

    cfg = TrialConfig.from_dict({"data": {"dataset": "MUTAG"}, "attack": {"name": "sub_ba"}})
    ds = load_graph_dataset(cfg.data)
    clean, backdoor = cache_key(clean_spec(cfg, ds)), cache_key(backdoor_spec(cfg, ds))
    attack_version, model_version = ATTACKS.get("sub_ba").version, GRAPH_MODELS.get("GIN").version
    monkeypatch.setattr(ATTACKS.get("sub_ba"), "version", attack_version + 1)
    assert cache_key(clean_spec(cfg, ds)) == clean and cache_key(backdoor_spec(cfg, ds)) != backdoor
    monkeypatch.setattr(GRAPH_MODELS.get("GIN"), "version", model_version + 1)
    assert cache_key(clean_spec(cfg, ds)) != clean
    monkeypatch.setattr("gnnsec.__version__", "9.9.9")
    monkeypatch.setattr(ATTACKS.get("sub_ba"), "version", attack_version)
    monkeypatch.setattr(GRAPH_MODELS.get("GIN"), "version", model_version)
    assert cache_key(clean_spec(cfg, ds)) != clean  # the package version alone changes it too
