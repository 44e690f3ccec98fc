"""Why the backdoor attacks barely implant on COLLAB (issue 8; ``docs/attack_strength.md``, COLLAB section).

    python benchmarks/collab_backdoor_probe.py stats --cache-dir /work/cache3 \
        --out benchmarks/results/attack_strength_collab_probe.jsonl
    python benchmarks/collab_backdoor_probe.py continue --cache-dir /work/cache3 --extra-epochs 100 --out ...
    python benchmarks/collab_backdoor_probe.py density --cache-dir /work/cache3 --densities 0.3 --out ...

GIN, seed 0, the default (100-epoch) models. ``stats`` reads the cached Sub-BA / Motif-BA models and writes,
per attack: what injection changes in the 713 test victims (edges removed / added, nodes whose degree
changes), how often a random k-node subset of a clean COLLAB graph is already as dense as the ER trigger
(per class), the backdoored model's fit of its own poisoned training graphs, and raw ASR / floor split by
the victim's class and edge density. ``continue`` trains the cached Sub-BA model on its own poisoned set
for ``--extra-epochs`` more epochs (fresh Adam at the schedule's lr for epoch 100: 0.0025, halved every 50)
and ``density`` poisons and trains Sub-BA afresh with another ER density; both write ASR, floor (the
100-epoch clean model), test ACC, training accuracy and the fit of the poisoned graphs every 25 epochs.
Measurement only: COLLAB is held out, nothing here sets a default.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.utils import degree

from gnnsec.attacks.base import AttackContext
from gnnsec.cache import ArtifactCache, load_tensors
from gnnsec.config import TrialConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.pipeline import (
    EVAL_SALT,
    POISON_SALT,
    backdoor_spec,
    backdoored_model,
    clean_model,
    make_attack,
    new_model,
    unpack_graphs,
)
from gnnsec.train import evaluate, fit, predict

TARGET = 1
DENSITY_BINS = ((0.0, 0.3), (0.3, 0.6), (0.6, 0.9), (0.9, 1.01))


def _density(g) -> float:  # noqa: ANN001
    return g.edge_index.size(1) / max(1, g.num_nodes * (g.num_nodes - 1))


class Probe:
    def __init__(self, cache: ArtifactCache, out: Path) -> None:
        self.cache, self.out, self.t0 = cache, out, time.time()
        self.cfg = TrialConfig().with_overrides({"data.dataset": "COLLAB", "attack.name": "sub_ba"})
        self.ds = load_graph_dataset(self.cfg.data)
        self.split = self.ds.split(self.cfg.data)
        self.test = self.ds.subset(self.split.test)
        self.victims = [g for g in self.test if int(g.y) != TARGET]
        self.clean, _ = clean_model(self.cfg, self.ds, self.split, cache)

    def write(self, row: dict) -> None:
        row = {"dataset": "COLLAB", "seed": 0, "epochs_default": self.cfg.train.epochs, **row}
        print(json.dumps(row), flush=True)
        with self.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def cached(self, attack_name: str):  # noqa: ANN201
        cfg = self.cfg.with_overrides({"attack.name": attack_name})
        attack, model, info = backdoored_model(cfg, self.ds, self.split, self.cache, self.clean)
        folder = self.cache.path("backdoor", backdoor_spec(cfg, self.ds))
        return attack, model, info["victims"], unpack_graphs(load_tensors(folder / "poisoned.pt"))

    def checkpoint(self, run: str, attack, model, poisoned, victims, epoch: int) -> None:  # noqa: ANN001
        attack.reseed(EVAL_SALT)
        trig = attack.inject(self.victims)
        pred = predict(model, poisoned)
        labels = torch.cat([g.y.view(-1) for g in poisoned])
        self.write(
            {
                "run": run,
                "epoch": epoch,
                "asr": float((predict(model, trig) == TARGET).float().mean()),
                "floor": float((predict(self.clean, trig) == TARGET).float().mean()),
                "acc": evaluate(model, self.test).acc,
                "train_acc": float((pred == labels).float().mean()),
                "victim_fit": float((pred[torch.as_tensor(victims)] == TARGET).float().mean()),
                "n_victims_test": len(self.victims),
                "n_test": len(self.test),
                "n_poisoned": len(victims),
                "seconds": round(time.time() - self.t0),
            }
        )

    def stats(self, attack_name: str) -> None:
        attack, model, victims, poisoned = self.cached(attack_name)
        attack.reseed(EVAL_SALT)
        trig = attack.inject(self.victims)
        removed, added, moved, shift = [], [], [], []
        for a, b in zip(self.victims, trig, strict=True):
            ka = set((a.edge_index[0] * a.num_nodes + a.edge_index[1]).tolist())
            kb = set((b.edge_index[0] * b.num_nodes + b.edge_index[1]).tolist())
            removed.append(len(ka - kb) / 2)
            added.append(len(kb - ka) / 2)
            d = degree(b.edge_index[1], b.num_nodes) - degree(a.edge_index[1], a.num_nodes)
            moved.append(int((d != 0).sum()))
            shift.append(float(d.abs().sum()) / max(1, moved[-1]))
        hit = (predict(model, trig) == TARGET).numpy()
        floor = (predict(self.clean, trig) == TARGET).numpy()
        y = np.array([int(g.y) for g in self.victims])
        dens = np.array([_density(g) for g in self.victims])
        by = {f"class{c}": (y == c) for c in sorted(set(y.tolist()))}
        by.update({f"density_{lo}_{hi}": (dens >= lo) & (dens < hi) for lo, hi in DENSITY_BINS})
        pred = predict(model, poisoned)
        labels = torch.cat([g.y.view(-1) for g in poisoned])
        self.write(
            {
                "run": f"stats_{attack_name}",
                "trigger_nodes": attack.trigger_nodes,
                "edges_removed_mean": float(np.mean(removed)),
                "edges_added_mean": float(np.mean(added)),
                "net_removal_frac": float(np.mean(np.array(removed) > np.array(added))),
                "nodes_degree_changed_mean": float(np.mean(moved)),
                "degree_shift_mean": float(np.mean(shift)),
                "asr": float(hit.mean()),
                "floor": float(floor.mean()),
                "train_acc": float((pred == labels).float().mean()),
                "victim_fit": float((pred[torch.as_tensor(victims)] == TARGET).float().mean()),
                **{f"asr_{k}": float(hit[m].mean()) for k, m in by.items()},
                **{f"floor_{k}": float(floor[m].mean()) for k, m in by.items()},
                **{f"n_{k}": int(m.sum()) for k, m in by.items()},
            }
        )
        if attack_name == "sub_ba":
            self.natural_density(attack.adj)

    def natural_density(self, adj: torch.Tensor, draws: int = 4) -> None:
        """How often k random nodes of a clean graph already induce a subgraph as dense as the trigger."""
        k = adj.size(0)
        trig = float(adj.sum()) / (k * (k - 1))
        rng = np.random.default_rng(0)
        dens, ys = [], []
        for g in self.ds.graphs:
            n = g.num_nodes
            a = torch.zeros(n, n, dtype=torch.bool)
            a[g.edge_index[0], g.edge_index[1]] = True
            for _ in range(draws):
                s = torch.as_tensor(rng.choice(n, min(k, n), replace=False))
                dens.append(float(a[s][:, s].sum()) / (k * (k - 1)))
                ys.append(int(g.y))
        dens_a, ys_a = np.array(dens), np.array(ys)
        self.write(
            {
                "run": "natural_subset_density",
                "trigger_density": trig,
                "subsets": len(dens),
                "quantiles_10_25_50_75_90": np.quantile(dens_a, [0.1, 0.25, 0.5, 0.75, 0.9])
                .round(3)
                .tolist(),
                "frac_at_least_trigger": float((dens_a >= trig - 1e-9).mean()),
                **{
                    f"frac_at_least_trigger_class{c}": float((dens_a[ys_a == c] >= trig - 1e-9).mean())
                    for c in range(3)
                },
                "graph_density_quantiles_10_25_50_75_90": np.quantile(
                    [_density(g) for g in self.ds.graphs], [0.1, 0.25, 0.5, 0.75, 0.9]
                )
                .round(3)
                .tolist(),
            }
        )

    def cont(self, extra: int) -> None:
        attack, model, victims, poisoned = self.cached("sub_ba")
        self.checkpoint("continue_sub_ba", attack, model, poisoned, victims, 100)
        tc = copy.deepcopy(self.cfg.train)
        tc.epochs, tc.lr = extra, self.cfg.train.lr * self.cfg.train.gamma**2  # the lr at epoch 100

        def every(e: int, _row: dict) -> None:
            if (e + 1) % 25 == 0:
                self.checkpoint("continue_sub_ba", attack, model, poisoned, victims, 101 + e)

        fit(model, poisoned, tc, on_epoch=every)

    def density(self, dens: float) -> None:
        cfg = self.cfg.with_overrides({"attack.params": {"density": dens, "max_redraws": 20}})
        attack, train = make_attack(cfg, self.ds), self.ds.subset(self.split.train)
        ctx = AttackContext(
            train, self.ds.featurizer, self.ds.num_classes, self.ds.avg_nodes,
            lambda: new_model(cfg, self.ds), cfg.train, clean_model=self.clean,
        )  # fmt: skip
        attack.reseed(POISON_SALT)
        attack.prepare(ctx)
        victims = attack.select_victims(train)
        poisoned = attack.poison(train, victims)
        model = new_model(cfg, self.ds)

        def every(e: int, _row: dict) -> None:
            if (e + 1) % 25 == 0:
                self.checkpoint(f"sub_ba_density{dens}", attack, model, poisoned, victims.tolist(), e + 1)

        fit(model, poisoned, cfg.train, on_epoch=every)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["stats", "continue", "density"])
    ap.add_argument("--cache-dir")
    ap.add_argument("--extra-epochs", type=int, default=100)
    ap.add_argument("--densities", nargs="+", type=float, default=[0.3])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/attack_strength_collab_probe.jsonl"))
    args = ap.parse_args()
    probe = Probe(ArtifactCache(Path(args.cache_dir)) if args.cache_dir else ArtifactCache(), args.out)
    if args.mode == "stats":
        for name in ("sub_ba", "motif_ba"):
            probe.stats(name)
    elif args.mode == "continue":
        probe.cont(args.extra_epochs)
    else:
        for dens in args.densities:
            probe.density(dens)


if __name__ == "__main__":
    main()
