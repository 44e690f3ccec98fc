"""The one training and evaluation loop for graph classification.

Adam with a step learning-rate schedule, seeded data order and initialisation, device chosen automatically
(CUDA when present). Attacks that change the objective (adaptive attack, GTA) pass a ``loss_fn``; nothing
else copies this loop.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from gnnsec.batching import COLLATIONS, GraphLoader
from gnnsec.config import DEFAULT_EPOCHS, TrainConfig
from gnnsec.models.layers import DENSE_EDGES_PER_NODE

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Batch], Tensor]


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def make_loader(
    graphs: Sequence[Data],
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> GraphLoader:
    """Mini-batches of ``graphs``: the batches (and order) of PyG's ``DataLoader`` with these arguments,
    sliced from one collation of the list (:mod:`gnnsec.batching`), already on ``device`` when given."""
    return GraphLoader(graphs, batch_size=batch_size, shuffle=shuffle, generator=generator, device=device)


@contextlib.contextmanager
def flush_denormals(enabled: bool) -> Iterator[None]:
    """Treat subnormal floats (|v| < 1.2e-38) as zero while training, when ``enabled``.

    Dense graphs (COLLAB) drive some gradients and Adam moments into the subnormal range, where x86 CPUs
    are 10-100x slower per operation (measured: a COLLAB step 3x slower). Values that small do not move
    the weights (Adam divides by sqrt(v) + 1e-8), so flushing them is a rounding-level change; it is
    enabled only for dense training sets (:func:`is_dense`), so molecule datasets keep bit-identical runs.
    """
    if not enabled:
        yield
        return
    torch.set_flush_denormal(True)  # torch cannot report the current mode: the default (off) is restored
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def is_dense(graphs: Sequence[Data]) -> bool:
    """At least ``DENSE_EDGES_PER_NODE`` edges per node over the whole list (COLLAB ~33, molecules ~2)."""
    nodes = sum(int(g.num_nodes) for g in graphs)
    edges = sum(int(g.edge_index.size(1)) for g in graphs)
    return nodes > 0 and edges >= DENSE_EDGES_PER_NODE * nodes


def make_optimizer(model: nn.Module | Sequence[nn.Parameter], cfg: TrainConfig) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with the multi-tensor (``foreach``) update over ``model``'s parameters, or
    over the parameters given, e.g. the one flat parameter of :func:`flat_parameters` (then a
    :class:`FlatAdam`, whose ``zero_grad`` keeps the shared gradient buffer). Adam is element-wise, so the
    update of one flat tensor is bitwise the per-tensor update (checked in tests/test_train.py) at a
    quarter of its cost (AIDS, GIN 3 x 64: ~0.12 instead of ~0.54 ms per step). Torch's fused kernel would
    halve that again but rounds differently, so seeded results would change; it is not used."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    cls = FlatAdam if len(params) == 1 and getattr(params[0], "is_flat", False) else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


class FlatAdam(torch.optim.Adam):
    """Adam whose ``zero_grad`` zeroes the gradients in place (they are shared with the model's views)."""

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: ARG002  (never drops the shared buffer)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.zero_()


@contextlib.contextmanager
def flat_parameters(model: nn.Module) -> Iterator[list[nn.Parameter]]:
    """The trainable parameters of ``model`` as views into one flat parameter (and their gradients as
    views into its gradient) while the context is open; yields the parameters an optimiser should update.

    Adam is element-wise, so one update over the concatenation of all weights is the same optimiser as
    per-tensor updates (the same moments, the same step per weight, bitwise), at the cost of ~10 kernel
    calls per step instead of ~10 per tensor (on AIDS, GIN 3 x 64 has 25 tensors: the update was a sixth
    of a mini-batch). Gradients accumulate in place into the views (autograd adds into an existing ``.grad``),
    and the optimiser zeroes the flat gradient in place, so a weight that gets no gradient in a step is
    updated with a zero gradient (Adam's momentum still moves it) rather than skipped; the backbones use
    every weight in every step. Parameters of mixed dtypes or devices, or none, are yielded unchanged. On
    exit each parameter gets its own storage back (values kept), so the model is as before ``fit``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) != 1 or any(p.is_sparse for p in params):
        yield params
        return
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    flat.is_flat = True  # type: ignore[attr-defined]  # make_optimizer: a FlatAdam (in-place zero_grad)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset : offset + n].view_as(p)
        p.grad = flat.grad[offset : offset + n].view_as(p)
        offset += n
    try:
        yield [flat]
    finally:
        for p in params:
            p.data = p.data.clone()
            p.grad = p.grad.clone() if p.grad is not None else None


def cross_entropy_loss(model: nn.Module, batch: Batch) -> Tensor:
    logits = model(batch.x, batch.edge_index, batch.batch, getattr(batch, "edge_weight", None))
    return nn.functional.cross_entropy(logits, batch.y)


@dataclass
class EvalResult:
    acc: float
    n: int
    per_class_acc: dict[int, float] = field(default_factory=dict)
    predictions: Tensor | None = None

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}acc": self.acc, f"{prefix}n": float(self.n)}
        out.update({f"{prefix}acc_class{c}": a for c, a in self.per_class_acc.items()})
        return out


def train_epoch(
    model: nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    loss_fn: LossFn,
) -> float:
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


def fit(
    model: nn.Module,
    graphs: Sequence[Data],
    cfg: TrainConfig,
    loss_fn: LossFn = cross_entropy_loss,
    eval_graphs: Sequence[Data] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train ``model`` in place; return the per-epoch history (loss, and accuracy on ``eval_graphs``)."""
    device = select_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model.to(device)
    loader = make_loader(graphs, cfg.batch_size, shuffle=True, generator=gen, device=device)
    history: list[dict[str, float]] = []
    epochs = cfg.epochs if cfg.epochs is not None else DEFAULT_EPOCHS
    dense = is_dense(graphs)
    with flat_parameters(model) as params:
        optimizer = make_optimizer(params, cfg)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
            with flush_denormals(dense):
                row = {"epoch": float(epoch), "loss": train_epoch(model, loader, optimizer, device, loss_fn)}
            scheduler.step()
            if eval_graphs is not None:
                row["acc"] = evaluate(model, eval_graphs).acc
            history.append(row)
            if on_epoch is not None:
                on_epoch(epoch, row)
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, graphs: Sequence[Data], batch_size: int = 256) -> Tensor:
    """The model's logits of each graph ([len(graphs), C], on CPU, in the order given), in eval mode.

    The collation of ``graphs`` is reused when the very same graphs were collated recently
    (:data:`gnnsec.batching.COLLATIONS`): the same batches, so the same logits, without the per-graph work."""
    device = next(model.parameters()).device
    model.eval()
    out = [  # the loader already puts each batch on ``device``
        model(b.x, b.edge_index, b.batch, getattr(b, "edge_weight", None)).cpu()
        for b in GraphLoader(COLLATIONS.get(graphs, device), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, 0)


def predict(model: nn.Module, graphs: Sequence[Data], batch_size: int = 256) -> Tensor:
    """Predicted class of each graph, on CPU, in the order given."""
    if len(graphs) == 0:
        return torch.empty(0, dtype=torch.long)
    return predict_logits(model, graphs, batch_size).argmax(-1)


def evaluate(model: nn.Module, graphs: Sequence[Data], num_classes: int | None = None) -> EvalResult:
    """Accuracy and per-class accuracy of ``model`` on ``graphs``."""
    if len(graphs) == 0:
        return EvalResult(float("nan"), 0)
    preds = predict(model, graphs)
    labels = torch.cat([g.y.view(-1) for g in graphs])
    correct = preds == labels
    classes = range(num_classes) if num_classes else sorted(set(labels.tolist()))
    per_class = {int(c): float(correct[labels == c].float().mean()) for c in classes if (labels == c).any()}
    return EvalResult(float(correct.float().mean()), len(graphs), per_class, preds)
