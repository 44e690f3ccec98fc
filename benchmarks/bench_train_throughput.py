"""Training throughput: one epoch of the previous training loop against the current one, same run.

Issue 13 ("Speed"), item 1-2. The *previous loop* is reconstructed here only (it is not library code):
PyG's ``DataLoader`` collating every mini-batch from the list of graphs, Adam's per-tensor update, and the
GIN/GraphSAGE layers' previous forward (PyG's ``propagate``, aggregate-then-transform). The *current
loop* is the library's: ``gnnsec.train.make_loader`` (one collation per fit, mini-batches sliced by
offsets), ``make_optimizer`` (Adam's multi-tensor update) and the layers' fast path (direct neighbour
sums, linear map before the sum for wide inputs, CSR products on dense batches). Both visit the same
mini-batches in the same seeded order.

Per dataset: GIN 3 x 64, batch 32, Adam lr 0.01 (the paper defaults of ``TrainConfig``), trained on the
split's training graphs. Timing alternates old and new epochs (order flipped every repetition) on the same
machine with the same thread count and reports medians, the load average before and after, and the
one-off cost of the current loop's collation (``setup_s``, paid once per fit). Accuracy: both loops train
from the same initialisation for ``--acc-epochs`` epochs over ``--seeds`` and are evaluated on the test
split (the defender's holding graphs excluded).

    OMP_NUM_THREADS=1 python benchmarks/bench_train_throughput.py --datasets AIDS NCI1 COLLAB \\
        --out benchmarks/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.loader import DataLoader
from torch_geometric.utils import scatter

from gnnsec.cache import ArtifactCache, atomic_write_text
from gnnsec.config import DEFAULT_EPOCHS, DataConfig, TrainConfig, TrialConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.models import build_graph_model
from gnnsec.models.layers import WeightedGINConv, WeightedSAGEConv
from gnnsec.train import (
    cross_entropy_loss,
    evaluate,
    fit,
    flat_parameters,
    flush_denormals,
    is_dense,
    make_loader,
    make_optimizer,
    seed_everything,
    train_epoch,
)

log = logging.getLogger("bench_train_throughput")
DEFAULT_ACC_EPOCHS = {"AIDS": 50, "NCI1": 20, "COLLAB": 3}


# ---- the previous loop (reference only) -----------------------------------------------------------------
def _old_gin_forward(
    self: WeightedGINConv, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
) -> Tensor:
    out = self.propagate(edge_index, x=(x, x), edge_weight=edge_weight)
    return self.nn(out + (1 + self.eps) * x)


def _old_sage_forward(
    self: WeightedSAGEConv, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
) -> Tensor:
    weight = edge_weight if edge_weight is not None else x.new_ones(edge_index.size(1))
    total = self.propagate(edge_index, x=(x, x), edge_weight=weight)
    norm = scatter(weight, edge_index[1], 0, dim_size=x.size(0), reduce="sum").view(-1, 1)
    mean = torch.where(norm > 0, total / norm.clamp(min=1e-12), torch.zeros_like(total))
    out = self.lin_l(mean)
    return out + self.lin_r(x) if self.root_weight else out


@contextlib.contextmanager
def previous_layers() -> Iterator[None]:
    """The layers' forward before the fast path (PyG propagate, aggregate then transform)."""
    saved = WeightedGINConv.forward, WeightedSAGEConv.forward
    WeightedGINConv.forward, WeightedSAGEConv.forward = _old_gin_forward, _old_sage_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        WeightedGINConv.forward, WeightedSAGEConv.forward = saved  # type: ignore[method-assign]


def old_loader(graphs: list, cfg: TrainConfig, gen: torch.Generator) -> DataLoader:
    return DataLoader(list(graphs), batch_size=cfg.batch_size, shuffle=True, generator=gen)


def old_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def old_fit(
    model: torch.nn.Module,
    graphs: list,
    cfg: TrainConfig,
    loss_fn: Any = cross_entropy_loss,
    eval_graphs: Any = None,
    on_epoch: Any = None,
    progress: bool = False,
    desc: str = "",
) -> list[dict[str, float]]:
    """``gnnsec.train.fit`` as it was: PyG DataLoader, per-tensor Adam, previous layers (same signature, so
    it can stand in for the library's ``fit`` in a whole trial: see :func:`attack_asr`)."""
    device = torch.device("cpu")
    gen = seed_everything(cfg.seed)
    model.to(device)
    loader = old_loader(graphs, cfg, gen)
    opt = old_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    history = []
    with previous_layers():
        for epoch in range(int(cfg.epochs if cfg.epochs is not None else DEFAULT_EPOCHS)):
            row = {"epoch": float(epoch), "loss": train_epoch(model, loader, opt, device, loss_fn)}
            sched.step()
            if eval_graphs is not None:
                row["acc"] = evaluate(model, eval_graphs).acc
            history.append(row)
            if on_epoch is not None:
                on_epoch(epoch, row)
    return history


@contextlib.contextmanager
def old_training() -> Iterator[None]:
    """Every model a trial trains (clean, backdoored) trained by :func:`old_fit`."""
    import gnnsec.attacks.base as attack_base
    import gnnsec.pipeline as pipeline

    saved = attack_base.fit, pipeline.fit
    attack_base.fit = pipeline.fit = old_fit  # type: ignore[assignment]
    try:
        yield
    finally:
        attack_base.fit, pipeline.fit = saved  # type: ignore[assignment]


# ---- measurements --------------------------------------------------------------------------------------
def time_epochs(ds: Any, train: list, cfg: TrainConfig, reps: int) -> dict[str, Any]:
    device = torch.device("cpu")
    torch.manual_seed(0)
    base = build_graph_model("GIN", ds.num_features, ds.num_classes)
    m_old, m_new = copy.deepcopy(base), copy.deepcopy(base)
    t0 = time.perf_counter()
    loader_old = old_loader(train, cfg, seed_everything(0))
    setup_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    loader_new = make_loader(train, cfg.batch_size, shuffle=True, generator=seed_everything(0))
    setup_new = time.perf_counter() - t0
    stack = contextlib.ExitStack()  # the current loop's optimiser updates one flat parameter, as fit does
    opt_old, opt_new = (
        old_optimizer(m_old, cfg),
        make_optimizer(stack.enter_context(flat_parameters(m_new)), cfg),
    )

    def old() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        with previous_layers():
            train_epoch(m_old, loader_old, opt_old, device, cross_entropy_loss)
        return time.perf_counter() - t, time.process_time() - c

    dense = is_dense(train)

    def new() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        with flush_denormals(dense):  # as gnnsec.train.fit does for dense training sets
            train_epoch(m_new, loader_new, opt_new, device, cross_entropy_loss)
        return time.perf_counter() - t, time.process_time() - c

    load_before = os.getloadavg()
    warm = {"old": old(), "new": new()}  # first epoch: allocator warm-up, PyG's template compilation
    wall: dict[str, list[float]] = {"old": [], "new": []}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(reps):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for name, fn in order:
            w, c = fn()
            wall[name].append(w)
            cpu[name].append(c)
            log.info("%s: %s epoch %.3f s wall, %.3f s CPU", ds.name, name, w, c)
    stack.close()
    med = {f"{k}_{name}": statistics.median(v[name]) for k, v in (("wall", wall), ("cpu", cpu)) for name in v}
    return {
        "batches_per_epoch": len(loader_new),
        "dense_flush_denormals": dense,
        "old_epoch_cpu_s": med["cpu_old"],
        "new_epoch_cpu_s": med["cpu_new"],
        "old_epoch_wall_s": med["wall_old"],
        "new_epoch_wall_s": med["wall_new"],
        "ratio_epoch_cpu": med["cpu_old"] / med["cpu_new"],
        "ratio_epoch_wall": med["wall_old"] / med["wall_new"],
        "old_epoch_cpu_s_all": cpu["old"],
        "new_epoch_cpu_s_all": cpu["new"],
        "old_epoch_wall_s_all": wall["old"],
        "new_epoch_wall_s_all": wall["new"],
        "first_epoch_wall_cpu_s": warm,
        "old_setup_s": setup_old,
        "new_setup_s": setup_new,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }


def accuracy(ds: Any, train: list, test: list, epochs: int, seeds: list[int]) -> dict[str, Any]:
    rows = []
    for seed in seeds:
        cfg = TrainConfig(epochs=epochs, seed=seed, device="cpu")
        torch.manual_seed(seed)
        base = build_graph_model("GIN", ds.num_features, ds.num_classes)
        m_old, m_new = copy.deepcopy(base), copy.deepcopy(base)
        t = time.perf_counter()
        old_fit(m_old, train, cfg)
        t_old = time.perf_counter() - t
        t = time.perf_counter()
        fit(m_new, train, cfg)
        t_new = time.perf_counter() - t
        with previous_layers():
            acc_old = evaluate(m_old, test).acc
        acc_new = evaluate(m_new, test).acc
        same = all(
            torch.equal(a, b) for a, b in zip(m_old.state_dict().values(), m_new.state_dict().values())
        )
        rows.append(
            {
                "seed": seed,
                "acc_old": acc_old,
                "acc_new": acc_new,
                "fit_old_s": t_old,
                "fit_new_s": t_new,
                "bitwise_same_weights": same,
            }
        )
        log.info(
            "%s seed %d: acc old %.4f new %.4f (fit %.1f s / %.1f s)",
            ds.name,
            seed,
            acc_old,
            acc_new,
            t_old,
            t_new,
        )
    acc_old = [r["acc_old"] for r in rows]
    acc_new = [r["acc_new"] for r in rows]
    return {
        "epochs": epochs,
        "seeds": seeds,
        "test_graphs": len(test),
        "train_graphs": len(train),
        "runs": rows,
        "acc_old_mean": statistics.mean(acc_old),
        "acc_new_mean": statistics.mean(acc_new),
        "acc_old_std": statistics.pstdev(acc_old),
        "acc_new_std": statistics.pstdev(acc_new),
        "fit_ratio": sum(r["fit_old_s"] for r in rows) / sum(r["fit_new_s"] for r in rows),
    }


CATEGORIES = {  # self CPU time of these ATen ops, by what they do (the rest is framework overhead)
    "matmul (linear fwd/bwd)": ("aten::mm", "aten::addmm"),
    "batch_norm fwd/bwd": ("aten::native_batch_norm", "aten::native_batch_norm_backward"),
    "neighbour sum + readout (gather/scatter)": (
        "aten::index_select",
        "aten::index_add_",
        "aten::scatter_add_",
        "aten::gather",
        "aten::_sparse_mm",
        "aten::addmm_out_sparse_csr_cpu",
    ),
    "activations (relu fwd/bwd)": ("aten::clamp_min", "aten::threshold_backward", "aten::relu"),
    "adam update kernels": ("aten::_fused_adam_", "aten::_foreach_add_", "aten::addcdiv_", "aten::addcmul_"),
}


def profile_epoch(ds: Any, train: list, cfg: TrainConfig) -> dict[str, Any]:
    """Where one epoch's CPU time goes, previous loop against current (torch.profiler, one thread): the
    phases of each step (data, zero_grad, forward, backward, optimiser step) and the self time of the
    op families in :data:`CATEGORIES`, per mini-batch in milliseconds. The profiler's own cost inflates
    every figure; compare the two loops and the shares, not the absolute numbers."""
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    base = build_graph_model("GIN", ds.num_features, ds.num_classes)
    out: dict[str, Any] = {}
    for loop in ("old", "new"):
        model = copy.deepcopy(base)
        with contextlib.ExitStack() as stack:
            if loop == "old":
                stack.enter_context(previous_layers())
                loader: Any = old_loader(train, cfg, seed_everything(0))
                opt = old_optimizer(model, cfg)
            else:
                loader = make_loader(train, cfg.batch_size, shuffle=True, generator=seed_everything(0))
                opt = make_optimizer(stack.enter_context(flat_parameters(model)), cfg)

            def epoch(loader: Any = loader, opt: Any = opt, model: Any = model) -> int:
                model.train()
                it, n = iter(loader), 0
                while True:
                    with record_function("phase: data (collate/slice)"):
                        batch = next(it, None)
                    if batch is None:
                        return n
                    with record_function("phase: zero_grad"):
                        opt.zero_grad()
                    with record_function("phase: forward + loss"):
                        loss = cross_entropy_loss(model, batch)
                    with record_function("phase: backward"):
                        loss.backward()
                    with record_function("phase: optimiser step"):
                        opt.step()
                    with record_function("phase: loss bookkeeping"):
                        float(loss.detach())
                    n += 1

            epoch()  # warm-up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                c = time.process_time()
                n = epoch()
                total = time.process_time() - c
        events = prof.key_averages()
        per = 1.0 / n
        row: dict[str, Any] = {"batches": n, "profiled_epoch_cpu_ms_per_batch": total * 1000.0 * per}
        row["phases_ms_per_batch"] = {
            e.key.removeprefix("phase: "): e.cpu_time_total / 1000.0 * per
            for e in events
            if e.key.startswith("phase: ")
        }
        # the profiler times wall-clock intervals, which a loaded machine stretches: also give each phase's
        # share of the step and that share of the measured CPU time per batch
        phases = row["phases_ms_per_batch"]
        whole = sum(phases.values()) or 1.0
        row["phases_share"] = {k: v / whole for k, v in phases.items()}
        row["phases_cpu_ms_per_batch_est"] = {k: v / whole * total * 1000.0 * per for k, v in phases.items()}
        self_ms = {e.key: e.self_cpu_time_total / 1000.0 * per for e in events}
        row["op_families_self_ms_per_batch"] = {
            cat: sum(self_ms.get(k, 0.0) for k in keys) for cat, keys in CATEGORIES.items()
        }
        row["top_ops_self_ms_per_batch"] = dict(
            sorted(((k, v) for k, v in self_ms.items() if k.startswith("aten::")), key=lambda kv: -kv[1])[:15]
        )
        out[loop] = row
        log.info("%s profile %s: %s", ds.name, loop, row["phases_ms_per_batch"])
    return out


def step_floor(ds: Any, train: list, cfg: TrainConfig, reps: int = 7, inner: int = 100) -> dict[str, Any]:
    """What a training step costs at least with the current loop (CPU ms, min over ``reps`` blocks): a
    whole step (zero_grad, forward, backward, Adam) on a one-graph batch, which is the fixed per-step
    cost of the framework (Python, dispatch, autograd, optimiser) whatever the graph size; the same step on a
    typical batch of ``cfg.batch_size`` graphs; and the dense matrix products alone that the typical batch
    needs (each linear layer's forward, input-gradient and weight-gradient GEMM, at its shapes)."""
    from gnnsec.batching import CollatedGraphs

    torch.manual_seed(0)
    model = build_graph_model("GIN", ds.num_features, ds.num_classes)
    graphs = CollatedGraphs(train)
    one, typical = graphs.batch(torch.arange(1)), graphs.batch(torch.arange(cfg.batch_size))

    def best(fn: Any) -> float:
        fn()
        times = []
        for _ in range(reps):
            c = time.process_time()
            for _ in range(inner):
                fn()
            times.append((time.process_time() - c) / inner * 1000.0)
        return min(times)

    out: dict[str, Any] = {"one_graph_nodes": one.num_nodes, "typical_batch_nodes": typical.num_nodes}
    with flat_parameters(model) as params:
        opt = make_optimizer(params, cfg)
        model.train()

        def step(batch: Any) -> None:
            opt.zero_grad()
            loss = cross_entropy_loss(model, batch)
            loss.backward()
            opt.step()
            float(loss.detach())

        out["step_one_graph_ms"] = best(lambda: step(one))
        out["step_typical_batch_ms"] = best(lambda: step(typical))
    linears = [(m, typical.num_nodes) for conv in model.convs for m in conv.modules()]  # per node
    linears += [(m, cfg.batch_size) for m in model.head]  # per graph
    mats = [
        (
            torch.randn(rows, m.in_features),
            torch.randn(m.out_features, m.in_features),
            torch.randn(rows, m.out_features),
        )
        for m, rows in linears
        if isinstance(m, torch.nn.Linear)
    ]

    def gemms() -> None:
        for x, w, g in mats:
            torch.mm(x, w.t()), torch.mm(g, w), torch.mm(g.t(), x)

    out["gemm_only_typical_batch_ms"] = best(gemms)
    log.info("%s step floor: %s", ds.name, out)
    return out


def attack_asr(dataset: str, seeds: list[int], attack: str = "sub_ba") -> dict[str, Any]:
    """The backdoored model's raw ASR and clean accuracy (``run_trial``, default settings, no defense) with
    the previous and the current training loop, per seed, each in a fresh artifact cache."""
    from gnnsec.pipeline import run_trial

    rows = []
    for seed in seeds:
        cfg = TrialConfig.from_dict(
            {
                "data": {"dataset": dataset, "split_seed": seed},
                "model": {"name": "GIN"},
                "train": {"seed": seed, "device": "cpu"},
                "attack": {"name": attack, "seed": seed, "clean_floor": False},
            }
        )
        row: dict[str, Any] = {"seed": seed}
        for loop in ("old", "new"):
            with (
                tempfile.TemporaryDirectory() as tmp,
                old_training() if loop == "old" else contextlib.nullcontext(),
            ):
                t = time.process_time()
                m = run_trial(cfg, ArtifactCache(Path(tmp))).metrics
                row[f"cpu_s_{loop}"] = time.process_time() - t
            row[f"asr_{loop}"], row[f"acc_{loop}"] = m["backdoor_asr"], m["backdoor_acc"]
            row["asr_graphs"], row["test_graphs"] = m["backdoor_asr_n"], m["n_test"]
        log.info("%s %s seed %d: %s", dataset, attack, seed, row)
        rows.append(row)
    out: dict[str, Any] = {"attack": attack, "seeds": seeds, "epochs": cfg.train.epochs, "runs": rows}
    for key in ("asr_old", "asr_new", "acc_old", "acc_new"):
        vals = [r[key] for r in rows]
        out[f"{key}_mean"], out[f"{key}_std"] = statistics.mean(vals), statistics.pstdev(vals)
    return out


def time_compiled(ds: Any, train: list, cfg: TrainConfig, reps: int) -> dict[str, Any]:
    """``torch.compile`` (dynamic shapes) of the model and of Adam's step against eager, current loop."""
    device = torch.device("cpu")
    torch.manual_seed(0)
    base = build_graph_model("GIN", ds.num_features, ds.num_classes)
    out: dict[str, Any] = {}
    for variant in ("eager", "compiled_model", "compiled_model_and_step"):
        model = copy.deepcopy(base)
        opt = make_optimizer(model, cfg)
        run = torch.compile(model, dynamic=True) if variant != "eager" else model
        step = torch.compile(opt.step) if variant == "compiled_model_and_step" else opt.step
        loader = make_loader(train, cfg.batch_size, shuffle=True, generator=seed_everything(0))

        def epoch(
            run: Any = run, opt: Any = opt, step: Any = step, loader: Any = loader
        ) -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            for b in loader:
                opt.zero_grad()
                cross_entropy_loss(run, b.to(device)).backward()
                step()
            return time.perf_counter() - t, time.process_time() - c

        first = epoch()  # includes compilation
        cpu = [epoch()[1] for _ in range(reps)]
        out[variant] = {"first_epoch_wall_cpu_s": first, "epoch_cpu_s": statistics.median(cpu)}
    return out


def time_vmap(ds: Any, train: list, cfg: TrainConfig, ks: list[int]) -> dict[str, Any]:
    """K models trained on the same mini-batches: one after another vs batched with ``torch.func.vmap``."""
    from torch.func import functional_call, stack_module_state, vmap

    batches = list(make_loader(train, cfg.batch_size, shuffle=True, generator=seed_everything(0)))
    out: dict[str, Any] = {}
    for k in ks:
        models = []
        for seed in range(k):
            torch.manual_seed(seed)
            models.append(build_graph_model("GIN", ds.num_features, ds.num_classes))
        opts = [make_optimizer(m, cfg) for m in models]
        c = time.process_time()
        for b in batches:
            for m, o in zip(models, opts, strict=True):
                o.zero_grad()
                cross_entropy_loss(m, b).backward()
                o.step()
        sequential = time.process_time() - c
        params, buffers = stack_module_state(models)
        params = {n: v.detach().requires_grad_(True) for n, v in params.items()}
        skeleton = copy.deepcopy(models[0]).to("meta")

        def loss_one(
            p: dict, bu: dict, x: Tensor, ei: Tensor, bt: Tensor, y: Tensor, skeleton: Any = skeleton
        ) -> Tensor:
            return torch.nn.functional.cross_entropy(functional_call(skeleton, (p, bu), (x, ei, bt)), y)

        batched = vmap(loss_one, in_dims=(0, 0, None, None, None, None), randomness="same")
        opt = torch.optim.Adam(params.values(), lr=cfg.lr, foreach=True)
        c = time.process_time()
        for b in batches:
            opt.zero_grad()
            batched(params, buffers, b.x, b.edge_index, b.batch, b.y).sum().backward()
            opt.step()
        vmapped = time.process_time() - c
        out[str(k)] = {"sequential_cpu_s": sequential, "vmap_cpu_s": vmapped, "ratio": sequential / vmapped}
        log.info("vmap K=%d: sequential %.3f s, vmap %.3f s CPU per epoch", k, sequential, vmapped)
    return out


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    dcfg = DataConfig(dataset=name)
    ds = load_graph_dataset(dcfg)
    load_s = time.perf_counter() - t0
    split = ds.split(dcfg)
    train, test = ds.subset(split.train), ds.subset(split.test)
    cfg = TrainConfig(epochs=1, device="cpu")
    reps = args.collab_reps if name == "COLLAB" else args.reps
    out: dict[str, Any] = {"dataset": name, "load_s": load_s, "num_features": ds.num_features}
    if args.compile:
        out["torch_compile"] = time_compiled(ds, train, cfg, 3)
    if args.vmap:
        out["vmap"] = time_vmap(ds, train, cfg, args.vmap)
    if args.profile:
        out["profile"] = profile_epoch(ds, train, cfg)
        out["step_floor"] = step_floor(ds, train, cfg)
    if args.compile or args.vmap or args.profile:
        return out
    out["timing"] = time_epochs(ds, train, cfg, reps)
    out["timing"]["reps"] = reps
    epochs = args.acc_epochs.get(name, DEFAULT_ACC_EPOCHS.get(name, 100))
    if epochs > 0 and args.seeds:
        out["accuracy"] = accuracy(ds, train, test, epochs, args.seeds)
    if name in args.asr_datasets and args.seeds:
        out["sub_ba_raw_asr"] = attack_asr(name, args.seeds)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["AIDS", "NCI1", "COLLAB"])
    p.add_argument("--reps", type=int, default=7, help="timed epochs per loop (AIDS, NCI1)")
    p.add_argument("--collab-reps", type=int, default=2, help="timed epochs per loop on COLLAB")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument(
        "--acc-epochs",
        nargs="*",
        default=[],
        help=f"DATASET=EPOCHS for the accuracy runs (default {DEFAULT_ACC_EPOCHS}; 0 skips)",
    )
    p.add_argument(
        "--asr-datasets", nargs="*", default=["AIDS"], help="datasets whose Sub-BA raw ASR is compared"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--compile", action="store_true", help="instead: torch.compile against eager (current loop)"
    )
    p.add_argument("--profile", action="store_true", help="instead: torch.profiler breakdown, old vs new")
    p.add_argument("--vmap", type=int, nargs="*", default=[], help="instead: K models sequential vs vmap")
    p.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = p.parse_args()
    args.acc_epochs = {k: int(v) for k, v in (item.split("=") for item in args.acc_epochs)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    results = []
    for name in args.datasets:
        results.append(bench(name, args))
        _write(args, results)
    for r in results:
        if "timing" not in r:
            keys = ("dataset", "torch_compile", "vmap", "profile", "step_floor")
            print(json.dumps({k: r[k] for k in keys if k in r}, indent=1))
            continue
        t = r["timing"]
        acc = r.get("accuracy", {})
        print(
            f"{r['dataset']:8s} CPU s/epoch old {t['old_epoch_cpu_s']:.3f} new {t['new_epoch_cpu_s']:.3f} "
            f"x{t['ratio_epoch_cpu']:.2f} (wall x{t['ratio_epoch_wall']:.2f}; setup {t['new_setup_s']:.3f} s; "
            f"load avg {t['load_avg_before'][0]:.2f})"
            + (
                f"  acc old {acc['acc_old_mean']:.4f}±{acc['acc_old_std']:.4f} new "
                f"{acc['acc_new_mean']:.4f}±{acc['acc_new_std']:.4f} ({acc['epochs']} epochs)"
                if acc
                else ""
            )
        )


def _write(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    doc = {
        "benchmark": "train_throughput",
        "model": "GIN 3x64, batch 32, Adam lr 0.01",
        "threads": args.threads,
        "torch": torch.__version__,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
