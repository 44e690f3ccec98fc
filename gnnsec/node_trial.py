"""The node-level trial (Forget and Explain): base model (cached) → forget set → unlearner → verifier.

``pipeline.run_trial`` dispatches here when the dataset's task is ``node``. Steps: load the graph with its
split (:mod:`gnnsec.data.nodes`); train the base model with the shared full-batch loop (cached under a key
of everything that determines it, so every unlearner of a seed reuses one); draw the forget set (a
``forget_ratio`` share of all nodes, uniformly without replacement, from ``unlearning.seed`` or else
``train.seed`` alone: identical across unlearners and backbones); snapshot the base model; unlearn;
snapshot the unlearned model on the graph it serves; compare (:mod:`gnnsec.verify`).

Metric names: ``base_acc`` / ``unlearned_acc`` (test nodes outside the forget set, on the original / served
graph), ``unlearn_seconds``, ``base_train_seconds``, ``time_vs_base`` and the verifier's row prefixed
``verify_``. Time relative to Retrain is a ratio across trials (see ``benchmarks/bench_unlearning.py`` and
``gnnsec report``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gnnsec import artifact_keys
from gnnsec.cache import ArtifactCache, atomic_write_text, load_tensors, save_tensors
from gnnsec.config import TrialConfig
from gnnsec.data.nodes import NodeData, load_node_data
from gnnsec.models.node import build_node_model
from gnnsec.pipeline import TrialResult
from gnnsec.train_nodes import fit_nodes, node_accuracy
from gnnsec.unlearning import UNLEARNERS, UnlearnRequest
from gnnsec.verify import compare, take_snapshot

log = logging.getLogger(__name__)

# The paper's setting (section 4): applied by `gnnsec unlearn` and the `unlearning` sub-sweep.
PAPER_SETTINGS: dict[str, object] = {
    "model.hidden": 64,
    "model.num_layers": 2,
    "model.dropout": 0.5,
    "train.lr": 0.005,
    "train.epochs": 100,
    "train.weight_decay": 5e-4,  # not stated in the paper; GCN's standard Planetoid setting
}


def forget_set(num_nodes: int, ratio: float, seed: int) -> torch.Tensor:
    """``round(ratio * N)`` node ids (at least 1) drawn uniformly without replacement, sorted."""
    rng = np.random.default_rng(seed)
    k = max(1, int(round(ratio * num_nodes)))
    return torch.from_numpy(np.sort(rng.choice(num_nodes, size=k, replace=False))).long()


def base_spec(cfg: TrialConfig, data: NodeData | None = None) -> dict:
    del data  # the key depends on the config only (gnnsec.artifact_keys, shared with the sweep driver)
    return artifact_keys.node_base_spec(cfg)


def new_node_model(cfg: TrialConfig, data: NodeData) -> nn.Module:
    torch.manual_seed(cfg.train.seed)
    m = cfg.model
    return build_node_model(m.name, data.num_features, data.num_classes, m.hidden, m.num_layers, m.dropout)


def base_model(cfg: TrialConfig, data: NodeData, cache: ArtifactCache) -> tuple[nn.Module, dict]:
    def build(tmp: Path) -> None:
        model = new_node_model(cfg, data)
        t0 = time.perf_counter()
        history = fit_nodes(model, data.graph, cfg.train)
        save_tensors(tmp / "model.pt", model.state_dict())
        atomic_write_text(
            tmp / "info.json", json.dumps({"seconds": time.perf_counter() - t0, "history": history})
        )

    folder, hit = cache.get_or_create("node_base", base_spec(cfg, data), build)
    model = new_node_model(cfg, data)
    model.load_state_dict(load_tensors(folder / "model.pt"))
    info = json.loads((folder / "info.json").read_text())
    info["cached"] = hit
    return model.eval(), info


def run_node_trial(cfg: TrialConfig, cache: ArtifactCache | None = None) -> TrialResult:
    cache = cache or ArtifactCache()
    res = TrialResult(config=cfg.to_dict())
    m = res.metrics
    t_start = time.perf_counter()
    data = load_node_data(cfg.data)
    g = data.graph
    base, info = base_model(cfg, data, cache)
    m.update(
        {
            "n_nodes": float(data.num_nodes),
            "n_train": float(g.train_mask.sum()),
            "n_test": float(g.test_mask.sum()),
        }
    )
    m["base_train_seconds"] = info["seconds"]
    m["base_cached"] = float(info["cached"])
    res.history["base"] = info["history"]
    u = cfg.unlearning
    if u is None:
        m["base_acc"] = node_accuracy(base, g, g.test_mask)
        m["trial_seconds"] = time.perf_counter() - t_start
        return res

    seed = u.seed if u.seed is not None else cfg.train.seed
    forget = forget_set(data.num_nodes, u.forget_ratio, seed)
    is_f = torch.zeros(data.num_nodes, dtype=torch.bool)
    is_f[forget] = True
    eval_mask = g.test_mask & ~is_f
    m["n_forget"] = float(len(forget))
    m["n_forget_train"] = float((g.train_mask & is_f).sum())
    m["base_acc"] = node_accuracy(base, g, eval_mask)
    m["n_eval"] = float(eval_mask.sum())

    pre = take_snapshot(base, g, forget, data.num_nodes, u.k_hops, u.tree_depth, seed)
    unlearner = UNLEARNERS.get(u.name)(u.params)
    req = UnlearnRequest(base, g, forget, lambda: new_node_model(cfg, data), cfg.train, data.num_classes)
    outcome = unlearner.unlearn(req)
    served = outcome.graph
    m["unlearned_acc"] = node_accuracy(outcome.model, served, served.test_mask)
    m["unlearn_seconds"] = outcome.seconds
    m["unlearn_prepare_seconds"] = outcome.prepare_seconds
    m["time_vs_base"] = outcome.seconds / max(info["seconds"], 1e-9)
    m["served_nodes"] = float(served.num_nodes)
    m.update({f"unlearn_{k}": float(v) for k, v in outcome.info.items()})
    post = take_snapshot(outcome.model, served, forget, data.num_nodes, u.k_hops, u.tree_depth, seed)
    probe_post = take_snapshot(outcome.model, g, forget, data.num_nodes, structure=False)
    row = compare(
        pre,
        post,
        is_f.numpy(),
        g.train_mask.numpy(),
        g.test_mask.numpy(),
        seed,
        probe_pre=pre,
        probe_post=probe_post,
    )
    m.update({f"verify_{k}": v for k, v in row.items()})
    m["trial_seconds"] = time.perf_counter() - t_start
    return res
