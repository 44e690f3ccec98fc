"""The Ray cluster launcher configs validate against Ray's own schema and keep the sweep's invariants:
token authentication, no secret on a command line, no kill by name, `sweeps` importable when `ray submit`
copies sweeps/full.py alone (the real `ray up` + `ray submit` run is tests/test_cluster_launcher.py)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "cluster" / "cluster.yaml", ROOT / "cluster" / "local.yaml"]
HEAD_SH = ROOT / "cluster" / "head.sh"

jsonschema = pytest.importorskip("jsonschema")


def _prepared(path: Path) -> dict:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_against_ray_schema(path: Path) -> None:
    from ray.autoscaler._private.util import validate_config

    config = _prepared(path)
    validate_config(config)  # ray/autoscaler/ray-schema.json + launcher checks
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_schema_rejects_a_broken_copy(path: Path) -> None:
    from ray.autoscaler._private.util import validate_config

    config = _prepared(path)
    broken = copy.deepcopy(config)
    broken["setup_commands"] = "pip install gnnsec"  # must be a list
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)
    broken = copy.deepcopy(config)
    broken["no_such_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_sweep_invariants(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    setup = "\n".join(raw["setup_commands"])
    # torch pinned to the one allowed version, installed before the project
    assert setup.index("pip install torch==2.13.0") < setup.index("pip install -e")
    # trials share the artifact cache and Ray Tune storage through the shared mount
    for var in (
        "GNNSEC_ARTIFACT_DIR=/mnt/shared/",
        "GNNSEC_RUN_DIR=/mnt/shared/",
        "GNNSEC_DATA_MIRROR=/mnt/shared/",
    ):
        assert var in setup
    assert "mount" in setup
    head_setup, head_start = raw["head_setup_commands"], raw["head_start_ray_commands"]
    assert any("apt-get install -y postgresql" in c for c in head_setup)
    assert "bash ~/gnnsec/cluster/head.sh db" in head_setup  # PostgreSQL started, role + database
    assert "bash ~/gnnsec/cluster/head.sh mlflow 127.0.0.1:5000 /mnt/shared/mlartifacts" in head_start
    env = "\n".join(head_setup)
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in env and "RAY_ADDRESS=auto" in env
    assert any("ray start --head" in c for c in head_start)
    assert any("--address=$RAY_HEAD_IP" in c for c in raw["worker_start_ray_commands"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_ray_token_auth_on_every_node_and_the_driver(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the same token on every node
    assert "chmod 600 ~/.ray/auth_token" in raw["setup_commands"]
    starts = [
        c for c in raw["head_start_ray_commands"] + raw["worker_start_ray_commands"] if "ray start" in c
    ]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in c for c in starts)
    # the driver (`ray submit` runs it in a login shell) reads the same environment file
    assert any("'export RAY_AUTH_MODE=token'" in c and "> ~/.gnnsec_env" in c for c in raw["setup_commands"])


@pytest.mark.parametrize("path", [*CONFIGS, HEAD_SH], ids=lambda p: p.name)
def test_no_secret_on_a_command_line_and_no_kill_by_name(path: Path) -> None:
    text = path.read_text()
    assert "pkill" not in text and "killall" not in text
    assert ".mlflow_db_password" not in text and "PASSWORD '$(" not in text
    assert "mlflow:$" not in text  # no password in the backend store URI
    if path == HEAD_SH:
        assert 'DB_URI="postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow"' in text  # libpq reads ~/.pgpass
        assert "umask 077" in text and 'chmod 600 "$HOME/.pgpass"' in text
        # the only line naming the password feeds it to psql on stdin via the printf builtin
        lines = [line for line in text.splitlines() if "PASSWORD" in line]
        assert lines == ["    \"ALTER ROLE mlflow WITH LOGIN PASSWORD '$pw';\" |"]
        # PostgreSQL is started (and waited for) before the role is created, and before MLflow starts
        db, mlflow = text.index("cmd_db() {"), text.index("cmd_mlflow() {")
        assert text.index("start_postgres", db) < text.index("ALTER ROLE", db)
        assert text.index("start_postgres", mlflow) < text.index('mlflow" server', mlflow)
        assert 'kill -TERM -- "-$pid"' in text and "$PIDFILE" in text  # stopped by its recorded pid


def test_sweeps_ship_with_the_installed_project() -> None:
    """`ray submit` copies sweeps/full.py alone to the head: `sweeps` must come from the installed project."""
    import tomllib
    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    assert "sweeps" in packages and "gnnsec" in packages
    assert not any(p.startswith("tests") for p in packages)


@pytest.mark.parametrize("script", ["full.py", "tune_gcleaner.py"])
def test_a_script_copied_alone_names_what_is_missing(tmp_path: Path, script: str) -> None:
    copy_ = tmp_path / script
    copy_.write_text((ROOT / "sweeps" / script).read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -S: no site-packages, i.e. a machine where the project is not installed
    out = subprocess.run(
        [sys.executable, "-S", str(copy_), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "cannot import 'sweeps'" in out.stderr and "pip install -e" in out.stderr, out.stderr


def test_full_py_copied_alone_runs_from_the_installed_project(tmp_path: Path) -> None:
    copy_ = tmp_path / "full.py"  # where `ray submit` puts it: ~/full.py
    copy_.write_text((ROOT / "sweeps" / "full.py").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # stands in for `pip install -e <checkout>`
    out = subprocess.run(
        [sys.executable, str(copy_), "--preset", "smoke", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "preset smoke: 8 trials" in out.stdout


def test_aws_cluster_has_cpu_head_and_gpu_workers() -> None:
    raw = yaml.safe_load(CONFIGS[0].read_text())
    assert raw["provider"]["type"] == "aws"
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["node_config"]["InstanceType"].startswith(("m", "c", "r"))
    workers = [t for name, t in types.items() if name != raw["head_node_type"]]
    assert workers and all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers)
