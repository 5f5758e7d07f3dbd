"""The ClusterServingRuntime's container, started here as KServe starts it: the image's entrypoint, the runtime's
flags with `{{.Name}}` filled in, and /mnt/models holding what the storage initializer downloads (a bundle's
version folder). A signed bundle serves KServe V1 and V2; a tampered one keeps the server unready."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import KSERVE_FILES, container, entrypoint
from tests.deploy.pod import LocalPod
from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, RunningServer, free_port, launch, wait_until
from tests.support.tamper import flip_byte

NAME = "diabetes-risk"
RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("kserve"))
    space.publish(NAME, "1.0.0")
    return space


@pytest.fixture(scope="module")
def runtime() -> dict[str, Any]:
    document = yaml.safe_load(KSERVE_FILES[0].read_text())
    assert document["kind"] == "ClusterServingRuntime"
    return dict(document)


@contextmanager
def kserve_container(runtime: dict[str, Any], model_dir: Path, workspace: Workspace, root: Path) -> Iterator[RunningServer]:
    """Start the runtime's kserve-container on loopback ports; the flags are the runtime's but for host and ports."""
    spec = runtime["spec"]
    pod = LocalPod(root, [], supplied={"sealserve-keyring": {"keyring.json": workspace.keyring.read_bytes()}})
    serving = container(runtime, "kserve-container")
    pod.mount(spec, serving)
    pod.mounts["/mnt/models"] = model_dir  # KServe's storage initializer fills this folder
    port = free_port()
    local = {"--http_port": str(port), "--grpc_port": str(free_port()), "--host": "127.0.0.1"}
    args = []
    for arg in serving["args"]:
        flag, _, value = arg.partition("=")
        args.append(f"{flag}={local.get(flag, pod.path(value.replace('{{.Name}}', NAME)))}")
    command = [SEALSERVE if part == "sealserve" else part for part in entrypoint()]
    with launch([*command, *args], port, root, env=pod.environment(serving), ready=False) as server:
        yield server


def model_dir(workspace: Workspace, root: Path) -> Path:
    """What KServe's storage initializer leaves in /mnt/models for storageUri s3://…/store/diabetes-risk/1.0.0."""
    target = root / "mnt-models"
    shutil.copytree(workspace.root / "store" / NAME / "1.0.0", target)
    return target


def test_signed_bundle_in_mnt_models_serves_kserve_v1_and_v2(runtime: dict[str, Any], workspace: Workspace, tmp_path: Path) -> None:
    with kserve_container(runtime, model_dir(workspace, tmp_path), workspace, tmp_path) as server, server.client() as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=60)
        v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": [RECORD]})
        v2 = client.get(f"/v2/models/{NAME}/ready")
        state = client.get(f"/api/models/{NAME}").json()
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == ["large"]  # class 1, decoded to the label its bundle declares
    assert v2.status_code == 200
    assert state["version"] == "1.0.0"
    assert state["signer"] == "test-key"


def test_tampered_bundle_in_mnt_models_stays_unready_and_serves_nothing(
    runtime: dict[str, Any], workspace: Workspace, tmp_path: Path
) -> None:
    folder = model_dir(workspace, tmp_path)
    flip_byte(folder / "model.skops")
    with kserve_container(runtime, folder, workspace, tmp_path) as server, server.client() as client:
        wait_until(lambda: client.get("/api/health/ready").json()["models"][0]["error"] is not None, timeout=60)
        ready = client.get("/api/health/ready")
        v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": [RECORD]})
    assert ready.status_code == 503
    assert ready.json()["models"][0]["error"] == "SHA-256 mismatch for model.skops"
    assert v1.status_code == 503
    assert "Traceback" not in server.log()
