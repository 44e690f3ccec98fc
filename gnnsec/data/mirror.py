"""Seeding PyG's ``raw/`` folders from a read-only local mirror (e.g. ``../shared/data``).

PyG writes ``processed/`` beside ``raw/``, so raw files are copied (``.xz`` files decompressed) into the
writable data root first; the mirror itself is never written to. Seeding is process-safe: a file lock per
dataset, and every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from gnnsec.data.registry import DatasetSpec
from gnnsec.errors import DataUnavailableError

log = logging.getLogger(__name__)


def dataset_lock(root: Path, spec: DatasetSpec) -> FileLock:
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{spec.family}-{spec.pyg_name}.lock"))


def mirror_has(spec: DatasetSpec, mirror: Path) -> bool:
    src = mirror / spec.mirror_subdir
    return src.is_dir() and any(src.iterdir())


def unavailable(spec: DatasetSpec, looked_in: Path, reason: str = "") -> DataUnavailableError:
    return DataUnavailableError(
        f"dataset {spec.name!r}: raw files not found in {looked_in}{' (' + reason + ')' if reason else ''}. "
        f"Provide them by setting GNNSEC_DATA_MIRROR (or data.mirror) to a folder holding "
        f"{spec.mirror_subdir}/ in PyTorch Geometric's layout, or run once with network access so PyG can "
        f"download them."
    )


def seed_raw(spec: DatasetSpec, mirror: Path, root: Path) -> Path:
    """Copy ``<mirror>/<family>/<name>/raw`` into ``<root>/<family>/<name>/raw``; return the target."""
    src = mirror / spec.mirror_subdir
    if not mirror_has(spec, mirror):
        raise unavailable(spec, src, "not in the mirror")
    dst = root / spec.mirror_subdir
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if not path.is_file():
            continue
        target = dst / (path.stem if path.suffix == ".xz" else path.name)
        if target.exists():
            continue
        log.info("seeding %s from mirror %s", target, path)
        fd, tmp = tempfile.mkstemp(dir=dst, prefix=".seed-")
        try:
            with os.fdopen(fd, "wb") as out:
                if path.suffix == ".xz":
                    with lzma.open(path, "rb") as inp:
                        shutil.copyfileobj(inp, out, 1 << 20)
                else:
                    with open(path, "rb") as inp:
                        shutil.copyfileobj(inp, out, 1 << 20)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dst
