"""The dev overlay as minikube runs it, here: its publish Job fills a real S3 store, then `sealserve serve`
starts from the dev ConfigMap's service YAML with the Deployment's environment, and answers predictions."""

from __future__ import annotations

import base64
import configparser
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.manifests import container, documents, entrypoint, find, render
from tests.deploy.pod import LocalPod
from tests.s3.seaweed import Weed
from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, free_port, serve

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


@pytest.fixture(scope="module")
def dev() -> list[dict[str, Any]]:
    return documents(render("dev"))


@pytest.fixture(scope="module")
def store(dev: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """SeaweedFS with the dev overlay's own keys: the server and the Job use the Secret's credentials file."""
    credentials = configparser.ConfigParser()
    credentials.read_string(base64.b64decode(find(dev, "Secret", "sealserve-s3")["data"]["credentials"]).decode())
    weed = Weed(
        tmp_path_factory.mktemp("seaweedfs"),
        access_key=credentials["default"]["aws_access_key_id"],
        secret_key=credentials["default"]["aws_secret_access_key"],
    )
    weed.start()
    try:
        yield weed
    finally:
        weed.stop()


@pytest.fixture
def clean_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what the manifests give: no developer AWS variables, files or instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


def in_cluster(env: dict[str, str], store: Weed) -> dict[str, str]:
    """The pod's environment, with the Service's in-cluster address replaced by the local SeaweedFS."""
    assert env["AWS_ENDPOINT_URL_S3"] == "http://seaweedfs:8333"
    return {**env, "AWS_ENDPOINT_URL_S3": store.endpoint}


def run_job(dev: list[dict[str, Any]], store: Weed, bundle: Path, root: Path) -> None:
    """Each container of the publish Job, in order, with its command and environment."""
    job = find(dev, "Job", "sealserve-publish")
    spec = job["spec"]["template"]["spec"]
    for step in [*spec["initContainers"], *spec["containers"]]:
        pod = LocalPod(root / step["name"], dev, supplied={"sealserve-example-bundle": {"bundle.zip": bundle.read_bytes()}})
        pod.mount(spec, step)
        executables = {"python": sys.executable, "sealserve": SEALSERVE}
        argv = [executables.get(step["command"][0], step["command"][0]), *(pod.path(part) for part in step["command"][1:])]
        result = subprocess.run(
            argv, env={**os.environ, **in_cluster(pod.environment(step), store)}, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{step['name']}: {result.stdout}{result.stderr}"


@pytest.mark.usefixtures("clean_aws")
def test_dev_overlay_publishes_then_serves_its_configmap(dev: list[dict[str, Any]], store: Weed, tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path)
    run_job(dev, store, workspace.publish("diabetes_risk", "1.0.0"), tmp_path / "job")

    deployment = find(dev, "Deployment", "sealserve")
    server = container(deployment, "sealserve")
    pod = LocalPod(tmp_path / "pod", dev, supplied={"sealserve-keyring": {"keyring.json": workspace.keyring.read_bytes()}})
    pod.mount(deployment["spec"]["template"]["spec"], server)
    assert entrypoint() == ["sealserve", "serve"]
    (config,) = (Path(pod.path(arg)) for arg in server["args"])
    config.write_text(pod.path(config.read_text()))  # the ConfigMap's YAML with its absolute paths in local folders
    env = in_cluster(pod.environment(server), store)
    with serve(config, tmp_path, env=env, extra_args=("--grpc-port", str(free_port()))) as running:
        answer = httpx.post(f"{running.url}/api/models/diabetes_risk/prediction", json=RECORD, timeout=10)
        ready = httpx.get(f"{running.url}/api/health/ready", timeout=10).json()
        log = running.log()
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1.0.0"
    assert ready["storage"]["stores"][0]["store"] == "s3://sealserve/store"
    assert log.count(f"S3 endpoint {store.endpoint}") == 1
    assert any(path.is_dir() for path in Path(pod.path("/var/cache/sealserve")).iterdir())
