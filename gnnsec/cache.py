"""Content-addressed artifact cache (poisoned sets, triggers, model state dicts).

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` hashes everything that determines it. It is
built once: a file lock per key serialises builders across processes (Ray trials, hosts on a shared
filesystem), the builder writes into a temporary folder, and one ``rename`` publishes it, so readers see
either nothing or a complete artifact. Models are stored as state dicts and loaded with
``weights_only=True``; no pickled objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from gnnsec.config import default_cache_dir

log = logging.getLogger(__name__)
CACHE_FORMAT = "1"


def cache_key(spec: dict[str, Any]) -> str:
    text = json.dumps({"format": CACHE_FORMAT, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_artifact_root() -> Path:
    return Path(os.environ.get("GNNSEC_ARTIFACT_DIR", default_cache_dir() / "artifacts")).expanduser()


@dataclass
class CacheEntry:
    kind: str
    key: str
    path: Path
    size_bytes: int
    created: float
    spec: dict[str, Any]


class ArtifactCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_artifact_root()
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, spec: dict[str, Any]) -> Path:
        return self.root / kind / cache_key(spec)

    def get_or_create(
        self, kind: str, spec: dict[str, Any], build: Callable[[Path], None]
    ) -> tuple[Path, bool]:
        """Return (folder, was_cached). ``build(tmp_folder)`` writes the artifact's files."""
        final = self.path(kind, spec)
        if (final / "meta.json").is_file():
            self.hits += 1
            return final, True
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / "meta.json").is_file():  # another process built it while we waited
                self.hits += 1
                return final, True
            self.misses += 1
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
            try:
                build(tmp)
                meta = {"kind": kind, "key": final.name, "created": time.time(), "spec": spec}
                atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        log.info("cached %s artifact %s", kind, final.name)
        return final, False

    def entries(self) -> list[CacheEntry]:
        out = []
        for meta_path in sorted(self.root.glob("*/*/meta.json")):
            meta = json.loads(meta_path.read_text())
            size = sum(f.stat().st_size for f in meta_path.parent.iterdir() if f.is_file())
            out.append(
                CacheEntry(meta["kind"], meta["key"], meta_path.parent, size, meta["created"], meta["spec"])
            )
        return out

    def clear(self, kind: str | None = None) -> int:
        """Delete all artifacts (or one kind's); return how many were removed."""
        entries = [e for e in self.entries() if kind is None or e.kind == kind]
        for e in entries:
            shutil.rmtree(e.path, ignore_errors=True)
        return len(entries)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def save_tensors(path: Path, obj: dict[str, Any]) -> None:
    """Save a dict of tensors / plain values atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
