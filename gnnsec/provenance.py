"""Provenance of tracked results: the code's git commit, package versions, interpreter and host.

Written by :mod:`gnnsec.tracking` as tags on every run (``gnnsec.git_commit``, ``gnnsec.version``,
``gnnsec.packages``, ``gnnsec.driver_host``, ``gnnsec.python``) and read back by the report.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

PACKAGES = ("torch", "torch_geometric", "scikit-learn", "numpy", "pandas", "mlflow", "ray", "optuna")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout gnnsec is imported from (``unknown`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        )
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict[str, str]:
    from gnnsec import __version__

    return {
        "gnnsec.version": __version__,
        "gnnsec.git_commit": git_commit(),
        "gnnsec.driver_host": platform.node(),
        "gnnsec.python": platform.python_version(),
        "gnnsec.packages": package_versions(),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> str:
    """``torch=2.13.0 torch_geometric=2.8.1 ...``: the driver's versions of the libraries results depend on."""
    from importlib import metadata

    out = []
    for name in names:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return " ".join(out)
