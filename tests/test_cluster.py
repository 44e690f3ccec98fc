"""The Ray cluster launcher configs validate against Ray's own schema and keep the sweep's invariants."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "cluster" / "cluster.yaml", ROOT / "cluster" / "local.yaml"]

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
    head = "\n".join(raw["head_setup_commands"] + raw["head_start_ray_commands"])
    assert "postgresql" in head and "createdb" in head
    assert (
        "mlflow server" in head
        and "--backend-store-uri postgresql+psycopg2://" in head
        and "--host 127.0.0.1" in head
    )
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in head and "RAY_ADDRESS=auto" in head
    assert any("ray start --head" in c for c in raw["head_start_ray_commands"])
    assert any("--address=$RAY_HEAD_IP" in c for c in raw["worker_start_ray_commands"])


def test_aws_cluster_has_cpu_head_and_gpu_workers() -> None:
    raw = yaml.safe_load(CONFIGS[0].read_text())
    assert raw["provider"]["type"] == "aws"
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["node_config"]["InstanceType"].startswith(("m", "c", "r"))
    workers = [t for name, t in types.items() if name != raw["head_node_type"]]
    assert workers and all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers)
