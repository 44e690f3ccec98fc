"""The clean model (needed only for the clean-model floor) trained concurrently with the backdoored one.

With ``attack.clean_concurrent = true`` and an attack that does not use the clean model (not Exp-BA /
Motif-BA, which explain with it before poisoning), :func:`start` starts one child process that trains the
clean model into the artifact cache while the parent poisons and trains the backdoored model; the parent
then :func:`wait` s for the child and reads the model from the cache as if a previous trial had built it.
The child runs the very code of the sequential path (:func:`gnnsec.pipeline.clean_model`, seeded by
``train.seed``, with the parent's number of intra-op threads), so the model and every metric are the same
as sequentially (``tests/test_fast_paths_identical.py``, forked and spawned child).

It takes a second CPU: a trial that sets it should be allotted two (Ray Tune trials get one by default,
so the default ``false`` never oversubscribes; the sweep driver gives each of the two processes half the
trial's CPUs as threads, so ``--cpus-per-trial 2`` runs both with one thread, like a default trial). When the model is already cached, the attack needs it, or
the child cannot be started (e.g. inside a daemonic process) or fails, the parent trains it itself.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from gnnsec import artifact_keys
from gnnsec.cache import ArtifactCache
from gnnsec.config import TrialConfig
from gnnsec.data.loading import GraphDataset
from gnnsec.data.splits import GraphSplit

log = logging.getLogger(__name__)


def wanted(cfg: TrialConfig, cache: ArtifactCache) -> bool:
    """Whether to train the clean model in a child: asked for, needed, not used by the attack, not cached."""
    if cfg.attack is None or not cfg.attack.clean_concurrent or not artifact_keys.needs_clean_model(cfg):
        return False
    if artifact_keys.attack_uses_clean_model(cfg):
        return False  # the attack poisons with it: it must exist before the backdoored model
    return not (cache.path("clean", artifact_keys.clean_spec(cfg)) / "meta.json").is_file()


def start(cfg: TrialConfig, cache: ArtifactCache, ds: GraphDataset, split: GraphSplit) -> BaseProcess | None:
    """Start the child that trains the clean model into ``cache`` (None: not wanted or not possible).

    With one intra-op thread the child is forked: it starts with this process's modules and dataset
    (no second interpreter start, imports and load: ~6 CPU-s on AIDS). With more threads it is spawned
    (a fresh interpreter that loads the dataset itself): OpenMP's thread pool does not survive a fork."""
    if not wanted(cfg, cache):
        return None
    threads = torch.get_num_threads()
    if threads == 1 and "fork" in mp.get_all_start_methods():
        target, args = _train_forked, (cfg, ds, split, str(cache.root))
        ctx = mp.get_context("fork")
    else:
        target, args = _train_clean, (cfg.to_dict(), str(cache.root), threads)
        ctx = mp.get_context("spawn")
    proc = ctx.Process(
        target=target,
        args=args,
        name="gnnsec-clean-model",
        daemon=True,  # ends with the trial's process (the cache's writes are atomic)
    )
    try:
        proc.start()
    except (AssertionError, OSError) as e:  # e.g. "daemonic processes are not allowed to have children"
        log.warning("clean model not trained concurrently (%s); training it after the backdoored one", e)
        return None
    log.info("training the clean model concurrently (pid %s)", proc.pid)
    return proc


def wait(proc: BaseProcess | None) -> None:
    """Wait for the child; if it failed, the caller's cache lookup trains the model itself."""
    if proc is None:
        return
    proc.join()
    if proc.exitcode != 0:
        log.warning("the clean-model process exited with %s; training the clean model here", proc.exitcode)


def _train_forked(cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, cache_root: str) -> None:
    from gnnsec.pipeline import clean_model

    torch.set_num_threads(1)
    clean_model(cfg, ds, split, ArtifactCache(Path(cache_root)))


def _train_clean(cfg_dict: dict[str, Any], cache_root: str, threads: int) -> None:
    from gnnsec.data.loading import load_graph_dataset
    from gnnsec.pipeline import clean_model

    torch.set_num_threads(threads)
    cfg = TrialConfig.from_dict(cfg_dict)
    ds = load_graph_dataset(cfg.data)
    clean_model(cfg, ds, ds.split(cfg.data), ArtifactCache(Path(cache_root)))
