"""Featurized graph datasets stored once per data root, so a process loads them in a fraction of a second.

Loading a graph dataset through PyG and featurizing it costs, per process, an iteration over PyG's
``InMemoryDataset`` and one feature computation per graph (COLLAB: 5,000 graphs, 372k nodes with 492-wide
one-hot degrees, seconds per trial process), after PyG's one-off processing of the raw text files (COLLAB:
minutes). The result of :func:`gnnsec.data.loading.load_graph_dataset` is therefore written once as a few
flat tensors (``<root>/<family>/<name>/featurized/<key>.pt``; ``weights_only`` safe) and read back by
every later load, which skips PyG entirely.

The key hashes everything the graphs depend on: the pack format, the dataset's registry entry (name,
``version``, filter and label map are versioned through ``DatasetSpec.version``), the feature mode and
degree cap, and the raw files' names, sizes and modification times (replacing a raw file changes the key).
Degree features are stored as the clipped degree (one integer per node) and expanded to the one-hot rows
on load (COLLAB: 3 MB instead of 730 MB of features).

Concurrent builders are safe: one file lock per key, the writer writes a temporary file and renames it into
place, so readers see nothing or a complete file; an unreadable file is removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import Tensor
from torch_geometric.data import Data

from gnnsec.data.features import Featurizer
from gnnsec.data.registry import DatasetSpec

log = logging.getLogger(__name__)
PACK_FORMAT = 2  # bump when the packed layout or the featurization changes


def raw_fingerprint(raw_dir: Path) -> list[list[Any]] | None:
    """Names, sizes and modification times of the raw files (None when there are none yet)."""
    if not raw_dir.is_dir():
        return None
    files = sorted(p for p in raw_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        return None
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def pack_path(spec: DatasetSpec, root: Path, feature_mode: str, degree_cap: int | None) -> Path | None:
    """Where the featurized dataset lives for these settings (None before the raw files exist)."""
    raw = raw_fingerprint(root / spec.mirror_subdir)
    if raw is None:
        return None
    spec_id = {"name": spec.name, "version": spec.version, "family": spec.family, "pyg": spec.pyg_name}
    text = json.dumps(
        {"format": PACK_FORMAT, "spec": spec_id, "mode": feature_mode, "cap": degree_cap, "raw": raw},
        sort_keys=True,
    )
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    return root / spec.family / spec.pyg_name / "featurized" / f"{key}.pt"


def pack_lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def save_pack(path: Path, graphs: list[Data], featurizer: Featurizer, num_classes: int) -> None:
    """Write ``graphs`` (edge_index, y, num_nodes, native features) and the featurizer atomically."""
    num_nodes = torch.tensor([int(g.num_nodes) for g in graphs], dtype=torch.long)
    tensors: dict[str, Tensor] = {
        "edge_index": torch.cat([g.edge_index for g in graphs], 1),
        "num_edges": torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long),
        "num_nodes": num_nodes,
        "y": torch.cat([g.y.view(-1) for g in graphs]),
        "meta": torch.tensor([featurizer.degree_cap, featurizer.native_dim, num_classes], dtype=torch.long),
    }
    if featurizer.mode == "native":
        tensors["x_native"] = torch.cat([g.x_native for g in graphs])
    else:  # one-hot rows stored as the index of their 1 (the clipped degree)
        tensors["degree"] = torch.cat([g.x.argmax(1) for g in graphs])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pack-")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(tensors, fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_pack(path: Path, feature_mode: str) -> tuple[list[Data], Featurizer, int] | None:
    """The graphs, featurizer and class count stored at ``path``; None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        t = torch.load(path, weights_only=True)
        cap, native_dim, num_classes = (int(v) for v in t["meta"])
        featurizer = Featurizer(feature_mode, cap, native_dim)
        graphs = _unpack(t, featurizer)
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file raises many types)
        log.warning(
            "featurized dataset %s is unreadable (%s: %s); rebuilding it", path, type(exc).__name__, exc
        )
        path.unlink(missing_ok=True)
        return None
    return graphs, featurizer, num_classes


def _unpack(t: dict[str, Tensor], featurizer: Featurizer) -> list[Data]:
    num_nodes, num_edges, edge_index, y = t["num_nodes"], t["num_edges"], t["edge_index"], t["y"]
    sizes = num_nodes.tolist()
    if featurizer.mode == "degree":
        width = featurizer.degree_cap + 1
        xs = [torch.zeros(d.numel(), width).scatter_(1, d.view(-1, 1), 1.0) for d in t["degree"].split(sizes)]
    else:
        xs = [x.clone() for x in t["x_native"].split(sizes)]
    starts = (torch.cumsum(num_edges, 0) - num_edges).tolist()
    graphs = []
    for i, (n, m, s) in enumerate(zip(sizes, num_edges.tolist(), starts, strict=True)):
        g = Data(edge_index=edge_index.narrow(1, s, m), y=y[i : i + 1].clone(), num_nodes=n)
        if featurizer.mode == "native":
            g.x_native = xs[i]
        g.x = xs[i]
        graphs.append(g)
    return graphs
