"""Small context managers shared by the explainers: explain in eval mode, keep the explainer's own
optimisation from writing ``.grad`` into the model, and seed the global RNG locally for PyG algorithms
that draw from it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put ``model`` in eval mode (restored on exit, also on error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily set ``requires_grad=False`` on the model's trainable parameters, so an explainer's
    ``loss.backward()`` neither accumulates into nor allocates their ``.grad``."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


@contextmanager
def eval_frozen(model: nn.Module) -> Iterator[nn.Module]:
    with eval_mode(model), frozen_params(model):
        yield model


@contextmanager
def seeded(generator: torch.Generator | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with the global torch RNG seeded from ``generator`` (one draw), restoring the global
    RNG state afterwards; a no-op when ``generator`` is None."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
