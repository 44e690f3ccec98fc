"""The import rule of docs/ARCHITECTURE.md, checked on the source: no module imports a higher layer.

Every ``import`` / ``from ... import`` statement in ``gnnsec/`` (also those inside functions) is mapped to
its layer; an import of a higher layer fails with the file, line and both layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gnnsec"

# docs/ARCHITECTURE.md: errors/registry -> config -> data -> models -> train -> explain -> attacks -> defenses
# -> metrics/cache -> pipeline -> tracking/report -> cli -> sweeps. Longest prefix wins.
LAYERS: dict[str, int] = {
    "gnnsec": 0,  # the package root holds only __version__
    "gnnsec.errors": 0,
    "gnnsec.registry": 0,
    "gnnsec.paths": 0,
    "gnnsec.config": 1,
    "gnnsec.data": 2,
    "gnnsec.models": 3,
    "gnnsec.similarity": 3,  # tensor helpers shared by attacks and defenses (imports torch only)
    "gnnsec.train": 4,
    "gnnsec.batching": 4,
    "gnnsec.train_nodes": 4,
    "gnnsec.explain": 5,
    "gnnsec.attacks": 6,
    "gnnsec.defenses": 7,
    "gnnsec.unlearning": 7,
    "gnnsec.verify": 7,
    "gnnsec.metrics": 8,
    "gnnsec.cache": 8,
    "gnnsec.artifact_keys": 8,  # cache keys of the models a trial trains (pipeline + sweep driver)
    "gnnsec.pipeline": 9,
    "gnnsec.node_trial": 9,
    "gnnsec.pipeline_defense": 9,
    "gnnsec.pipeline_clean": 9,
    "gnnsec.tracking": 10,
    "gnnsec.report": 10,
    "gnnsec.cli": 11,
    "gnnsec.__main__": 11,
    "sweeps": 12,
}


def layer(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names if f"{target}.{a.name}" in LAYERS]
    return out


def violations(root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / "gnnsec").rglob("*.py")):
        me = module_name(path, root)
        mine = layer(me)
        assert mine is not None, f"{me} is in no layer: add it to LAYERS (and docs/ARCHITECTURE.md)"
        for line, target in imports(path, root):
            theirs = layer(target)
            if theirs is not None and theirs > mine:
                rel = path.relative_to(root)
                bad.append(f"{rel}:{line}: {me} (layer {mine}) imports {target} (layer {theirs})")
    return bad


def test_no_module_imports_a_higher_layer() -> None:
    bad = violations()
    assert not bad, "upward imports (docs/ARCHITECTURE.md, import rule):\n" + "\n".join(bad)


def test_the_checker_catches_upward_imports_even_inside_functions(tmp_path: Path) -> None:
    pkg = tmp_path / "gnnsec"
    (pkg / "attacks").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "attacks" / "__init__.py").write_text("from gnnsec.config import TrialConfig\n")  # downward: fine
    (pkg / "config.py").write_text("def f():\n    from gnnsec.attacks import ATTACKS\n    return ATTACKS\n")
    (pkg / "models.py").write_text("from . import attacks\nimport sweeps.driver\n")
    bad = violations(tmp_path)
    assert len(bad) == 3, bad
    assert any("config.py:2" in b and "gnnsec.attacks" in b for b in bad)
    assert any("models.py:1" in b for b in bad) and any("sweeps.driver" in b for b in bad)
