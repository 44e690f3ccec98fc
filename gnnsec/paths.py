"""Names that become paths (sweep names, tuner studies, experiment and sub-sweep names read back from MLflow).

A name is one path component of letters, digits, ``.``, ``_`` and ``-`` (``/`` only where a caller allows
nesting, e.g. MLflow's ``gnnsec/<sweep>``), never ``..`` or absolute, so nothing derived from it can
write outside the run folder it is joined to. :func:`inside` checks a final path against its root.
Lowest layer beside ``errors``: anything may use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from gnnsec.errors import ConfigError

_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=,+-]{0,127}")
VALID = "letters, digits and . _ - = , + (at most 128, not starting with . or -), no '..' or path separators"


def safe_name(value: object, field: str, nested: bool = False) -> str:
    """``value`` when it is a safe path component (or ``a/b`` components with ``nested``); else ConfigError."""
    text = str(value)
    parts = text.split("/") if nested else [text]
    if not text or any(p in ("", ".", "..") or not _COMPONENT.fullmatch(p) for p in parts):
        raise ConfigError(field, value, VALID + (" ('/' separates parts)" if nested else ""))
    return text


def inside(root: Path, path: Path, field: str) -> Path:
    """``path`` resolved, when it lies under ``root`` (resolved); else ConfigError naming the field."""
    root_r, path_r = Path(root).expanduser().resolve(), Path(path).expanduser().resolve()
    if path_r != root_r and root_r not in path_r.parents:
        raise ConfigError(field, str(path), f"a path inside {root_r}")
    return path_r


def slug(value: object) -> str:
    """A safe file-name form of any text (for names read back from a store): unsafe characters become ``_``."""
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "_", str(value)).lstrip(".-") or "_"
    return text[:128]
