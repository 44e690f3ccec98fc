"""The constants of ``--dry-run``'s cost model (:mod:`sweeps.estimate`), measured by a calibration run.

``benchmarks/bench_cost_model.py`` measures them on the machine it runs on and writes them, with its
predicted-vs-measured comparison, to ``benchmarks/results/cost_model.json``; :func:`load` reads the
``constants`` of that file (``$GNNSEC_COST_MODEL`` names another one). Without a calibration file (e.g. a
``ray submit`` that copies ``sweeps/full.py`` alone) the built-in :data:`FALLBACK` is used and the dry-run
says so. All times are CPU seconds of one trial process with one torch thread.

- ``epoch_seconds[dataset]``: one training epoch of the default backbone (GIN, 3 x 64, batch 32) over the
  dataset's training split (80%); node datasets: one full-batch epoch of the unlearning sub-sweep's base
  model. The one input that changes when training gets faster: re-run the calibration after such a change.
- ``model_factor[backbone]``: an epoch of that backbone relative to GIN (measured on AIDS).
- ``trial_overhead`` + ``overhead_epochs`` x the dataset's epoch cost: what a trial costs besides training
  and defending (dataset load, evaluations, injections, verification, embeddings: the second term grows
  with the dataset), from clean-only trials on two datasets.
- ``attack_fixed[attack] + attack_factor[attack] x epochs``, in epochs of the dataset: poisoning (e.g.
  Exp-BA's explanations, GTA's generator) + backdoored training; fitted from two epoch counts.
- ``gcleaner_factor``: GCleaner's cost per (restarts x recovery + teacher + 2 x unlearning) epochs over the
  holding set, in units of a training epoch over as many graphs.
- ``defense_factor[defense]``: a post-training defense (fine-tuning) relative to its epochs over the holding
  set; a training-time defense: ``defense_fixed[defense] + defense_factor[defense] x epochs`` in epochs of
  the dataset (fitted from two epoch counts like the attacks).
- ``unlearner_factor[unlearner]``: an unlearner relative to the node base model's training.
- ``gpu``: the stated assumption for a GPU node (nothing here was measured on a GPU).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cost_model.json"

# A GPU node, stated (not measured): one GPU shared by 4 trials (--gpus-per-trial 0.25) next to 8 CPU cores.
# Small-graph epochs (AIDS-like: ~16 nodes, batch 32) are bound by per-batch work (collation, kernel
# launches), not arithmetic: the same per-epoch time as one CPU core. Datasets whose epoch is arithmetic
# (COLLAB: 12.3M directed edges x 492-wide features in the first layer) run `dense_speedup` times faster.
GPU_ASSUMPTION: dict[str, Any] = {
    "concurrent_trials": 4,
    "dense_datasets": ["COLLAB"],
    "dense_speedup": 10.0,
    "text": (
        "GPU node: 1 GPU shared by 4 concurrent trials; small-graph epochs as fast as one CPU core "
        "(per-batch bound); COLLAB epochs 10x faster (arithmetic bound); assumed, not measured"
    ),
}


@dataclass(frozen=True)
class CostModel:
    epoch_seconds: dict[str, float]
    model_factor: dict[str, float] = field(default_factory=dict)
    trial_overhead: float = 8.0
    overhead_epochs: float = 0.0
    attack_factor: dict[str, float] = field(default_factory=dict)
    attack_fixed: dict[str, float] = field(default_factory=dict)
    gcleaner_factor: float = 4.0
    defense_factor: dict[str, float] = field(default_factory=dict)
    defense_fixed: dict[str, float] = field(default_factory=dict)
    unlearner_factor: dict[str, float] = field(default_factory=dict)
    source: str = "built-in"

    def epoch(self, dataset: str, model: str = "GIN") -> float:
        """CPU seconds of one training epoch over the training split (80%)."""
        if dataset in self.epoch_seconds:
            base = self.epoch_seconds[dataset]
        else:  # not calibrated: scale the per-node cost of the calibrated datasets by this one's size
            base = _per_node(self) * _nodes(dataset) * 0.8
        return base * self.model_factor.get(model, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "source"}


def _nodes(dataset: str) -> float:
    from sweeps import grids

    graphs, nodes = grids.DATASET_SIZE.get(dataset, (1000, 20.0))
    return graphs * nodes


def _per_node(model: CostModel) -> float:
    """Seconds per node-epoch, the median over calibrated graph datasets (fallback for the others)."""
    rates = sorted(s / (0.8 * _nodes(d)) for d, s in model.epoch_seconds.items() if _nodes(d) > 10_000)
    return rates[len(rates) // 2] if rates else 2.5e-5


def fallback() -> CostModel:
    """Before any calibration: the old hand-set constants of ``sweeps/grids.py`` (2.5e-5 s per node-epoch,
    COLLAB x8, backdoor 1.2x, GCleaner 4x, 8 s overhead), kept only as the fallback."""
    from sweeps import grids

    epochs = {
        d: 0.8
        * _nodes(d)
        * grids.SECONDS_PER_NODE_EPOCH
        * (grids.COLLAB_EDGE_FACTOR if d == "COLLAB" else 1.0)
        for d in grids.DATASET_SIZE
    }
    return CostModel(
        epoch_seconds=epochs,
        trial_overhead=grids.TRIAL_OVERHEAD_SECONDS,
        source="built-in fallback (uncalibrated: run benchmarks/bench_cost_model.py)",
    )


def gpu_node(model: CostModel) -> CostModel:
    """The same model under :data:`GPU_ASSUMPTION` (dense datasets' epochs divided by its speedup)."""
    epochs = dict(model.epoch_seconds)
    for d in GPU_ASSUMPTION["dense_datasets"]:
        epochs[d] = model.epoch(d) / float(GPU_ASSUMPTION["dense_speedup"])
    return CostModel(**{**model.to_dict(), "epoch_seconds": epochs}, source=model.source + ", GPU node")


def load(path: str | Path | None = None) -> CostModel:
    """The calibrated cost model (``$GNNSEC_COST_MODEL`` or ``benchmarks/results/cost_model.json``)."""
    file = Path(path or os.environ.get("GNNSEC_COST_MODEL") or DEFAULT_PATH)
    if not file.is_file():
        return fallback()
    data = json.loads(file.read_text())
    const = dict(data["constants"])
    names = set(CostModel.__dataclass_fields__) - {"source"}
    kwargs = {k: v for k, v in const.items() if k in names}
    where = data.get("machine", {}).get("host", "?")
    return CostModel(**kwargs, source=f"calibrated {data.get('date', '?')} on {where} ({file.name})")
