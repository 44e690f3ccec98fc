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
