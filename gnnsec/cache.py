"""Content-addressed artifact cache (poisoned sets, triggers, model state dicts) that heals itself.

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` hashes everything that determines it,
including the version of the code that built it (:func:`code_versions`). It is built once: a file lock per
key serialises builders across processes (Ray trials, hosts on a shared filesystem), the builder writes into
a temporary folder, and one ``rename`` publishes it, so readers see either nothing or a complete artifact.

Every entry's ``meta.json`` records the size and sha256 of each file it holds. A read checks sizes first
(cheap) and then the hashes; a corrupt, partial or unreadable entry is moved to ``<root>/.quarantine/``
(kept for inspection), logged at WARNING with its key, and rebuilt under the same lock, so the trial that
asked for it still succeeds. Temporary folders of killed builders are removed by the next builder of the
same key (it holds the lock, so they cannot belong to a live build). Models are stored as state dicts and
loaded with ``weights_only=True``; no pickled objects.
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
from filelock import FileLock, Timeout

import gnnsec
from gnnsec.config import default_cache_dir

log = logging.getLogger(__name__)
CACHE_FORMAT = "2"  # 2: per-file sha256 in meta.json, code versions in keys
QUARANTINE = ".quarantine"


def cache_key(spec: dict[str, Any]) -> str:
    text = json.dumps({"format": CACHE_FORMAT, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def code_versions(**methods: type) -> dict[str, Any]:
    """The code version that goes into a cache key: the package version plus each method class's ``version``.

    Every registered method class carries ``version: ClassVar[int]`` (its base class defaults to 1); bump it
    when the method's behaviour changes, so a shared cache never serves an artifact built by older code.
    ``code_versions(model=GIN, attack=SubBA)`` -> ``{"gnnsec": "0.1.0", "model": "GIN@1", "attack": ...}``.
    """
    out: dict[str, Any] = {"gnnsec": gnnsec.__version__}
    for role, klass in sorted(methods.items()):
        out[role] = f"{klass.__name__}@{int(getattr(klass, 'version', 1))}"
    return out


def default_artifact_root() -> Path:
    return Path(os.environ.get("GNNSEC_ARTIFACT_DIR", default_cache_dir() / "artifacts")).expanduser()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CorruptEntry(Exception):
    """An entry's files do not match its ``meta.json`` (or it has none)."""


@dataclass
class CacheEntry:
    kind: str
    key: str
    path: Path
    size_bytes: int
    created: float
    spec: dict[str, Any]


def read_meta(folder: Path) -> dict[str, Any]:
    """``meta.json`` of an entry; raises :class:`CorruptEntry` when missing or unreadable."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError as e:
        raise CorruptEntry("no meta.json (partial entry)") from e
    except (OSError, ValueError) as e:
        raise CorruptEntry(f"unreadable meta.json: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        raise CorruptEntry("meta.json has no file list (written by an older cache format)")
    return meta


def verify_entry(folder: Path, deep: bool = True) -> dict[str, Any]:
    """Check an entry against its recorded sizes (then hashes when ``deep``); return its meta."""
    meta = read_meta(folder)
    files: dict[str, dict[str, Any]] = meta["files"]
    for name, rec in files.items():
        path = folder / name
        if not path.is_file():
            raise CorruptEntry(f"{name} is missing")
        if path.stat().st_size != rec.get("size"):
            raise CorruptEntry(f"{name} has {path.stat().st_size} bytes, recorded {rec.get('size')}")
    if deep:
        for name, rec in files.items():
            if sha256_file(folder / name) != rec.get("sha256"):
                raise CorruptEntry(f"{name} does not match its recorded sha256")
    return meta


class ArtifactCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_artifact_root()
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0

    def path(self, kind: str, spec: dict[str, Any]) -> Path:
        return self.root / kind / cache_key(spec)

    def _valid(self, final: Path) -> bool:
        """True when ``final`` holds a verified entry; quarantines it (WARNING) when it is bad."""
        if not final.exists():
            return False
        try:
            verify_entry(final)
            return True
        except CorruptEntry as e:
            self.quarantine(final, str(e))
            return False

    def get_or_create(
        self, kind: str, spec: dict[str, Any], build: Callable[[Path], None]
    ) -> tuple[Path, bool]:
        """Return (folder, was_cached). ``build(tmp_folder)`` writes the artifact's files."""
        final = self.path(kind, spec)
        if (final / "meta.json").is_file():
            try:  # the common case without the lock; a bad entry is handled under the lock below
                verify_entry(final)
                self.hits += 1
                return final, True
            except CorruptEntry:
                pass
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if self._valid(final):  # another process built it while we waited
                self.hits += 1
                return final, True
            self._remove_stale_tmp(final)
            self.misses += 1
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
            try:
                build(tmp)
                files = {
                    f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)}
                    for f in sorted(tmp.iterdir())
                    if f.is_file()
                }
                meta = {"kind": kind, "key": final.name, "created": time.time(), "spec": spec, "files": files}
                atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        log.info("cached %s artifact %s", kind, final.name)
        return final, False

    def invalidate(self, folder: Path, reason: str) -> None:
        """Quarantine an entry a reader found unusable (e.g. ``torch.load`` failed) under its lock."""
        with FileLock(str(folder) + ".lock"):
            if folder.exists():
                self.quarantine(folder, reason)

    def quarantine(self, folder: Path, reason: str) -> Path:
        """Move a bad entry aside to ``<root>/.quarantine/`` and log it at WARNING."""
        dest = self.root / QUARANTINE / f"{folder.parent.name}-{folder.name}-{time.time_ns()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(folder, dest)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
        self.rebuilt += 1
        log.warning(
            "cache entry %s/%s is corrupt (%s): moved to %s and rebuilding",
            folder.parent.name,
            folder.name,
            reason,
            dest,
        )
        return dest

    def _remove_stale_tmp(self, final: Path) -> None:
        """Called under ``final``'s lock: any temp folder of this key belongs to a builder that died."""
        for tmp in final.parent.glob(f".tmp-{final.name}-*"):
            log.warning("removing temp folder %s of a killed build", tmp)
            shutil.rmtree(tmp, ignore_errors=True)

    def _entry_dirs(self, kind: str | None = None) -> list[Path]:
        if not self.root.is_dir():
            return []
        kinds = [self.root / kind] if kind else [p for p in self.root.iterdir() if p.is_dir()]
        return sorted(
            d
            for k in kinds
            if k.is_dir() and not k.name.startswith(".")
            for d in k.iterdir()
            if d.is_dir() and not d.name.startswith(".")
        )

    def entries(self) -> list[CacheEntry]:
        """Entries with a readable ``meta.json`` (bad ones are reported by :meth:`verify`)."""
        out = []
        for folder in self._entry_dirs():
            try:
                meta = read_meta(folder)
            except CorruptEntry:
                continue
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            out.append(
                CacheEntry(
                    str(meta.get("kind", folder.parent.name)),
                    str(meta.get("key", folder.name)),
                    folder,
                    size,
                    float(meta.get("created", 0.0)),
                    dict(meta.get("spec", {})),
                )
            )
        return out

    def verify(self, repair: bool = False) -> list[tuple[Path, str]]:
        """Check every entry (sizes and hashes); return ``(folder, problem)`` for the bad ones.

        With ``repair`` bad entries are quarantined (the next trial rebuilds them) and temp folders whose
        key lock is free (their builder is gone) are removed.
        """
        bad = []
        for folder in self._entry_dirs():
            try:
                verify_entry(folder)
            except CorruptEntry as e:
                bad.append((folder, str(e)))
                if repair:
                    self.invalidate(folder, str(e))
        if repair:
            self.remove_orphan_tmp()
        return bad

    def remove_orphan_tmp(self) -> int:
        """Remove temp folders of builders that are gone (their key's lock can be taken at once)."""
        n = 0
        for kind in self._entry_dirs_parents():
            for tmp in kind.glob(".tmp-*"):
                key = tmp.name[len(".tmp-") :].split("-")[0]
                try:
                    with FileLock(str(kind / key) + ".lock", timeout=0):
                        shutil.rmtree(tmp, ignore_errors=True)
                        n += 1
                except Timeout:
                    continue  # a live build
        return n

    def _entry_dirs_parents(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def clear(self, kind: str | None = None) -> int:
        """Delete all artifacts (or one kind's), good or bad, and the quarantine; return how many entries."""
        dirs = self._entry_dirs(kind)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        if kind is None:
            shutil.rmtree(self.root / QUARANTINE, ignore_errors=True)
        self.remove_orphan_tmp()
        return len(dirs)


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
