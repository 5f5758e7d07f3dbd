"""Kubernetes and KServe run the server the way tests/fleet and tests/image ran it: probes on the paths whose answers
the drain changes, readiness noticed inside the drain window, and the ServingRuntime's arguments and mounts the
ones the image test passed to `podman run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sealserve.serve.settings import Overrides, load_settings
from tests.deploy.manifests import KSERVE_FILES, OVERLAYS, container, deployed_settings, documents, find, pod_environment
from tests.image.test_image import NAME, kserve_args

STARTUP_BUDGET = 120  # seconds a cold start may take (a big bundle's download, verification and trial) before a restart


def port_number(server: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(item["containerPort"] for item in server["ports"] if item["name"] == port))


def check_probes(server: dict[str, Any], http_port: int, drain_seconds: float) -> None:
    ready, live, startup = server["readinessProbe"], server["livenessProbe"], server["startupProbe"]
    assert ready["httpGet"]["path"] == "/api/health/ready", "readiness must be the probe a drain turns 503"
    assert live["httpGet"]["path"] == "/api/health", "liveness must not follow model readiness (a refused bundle is no reason to restart)"
    assert startup["httpGet"]["path"] == "/api/health/startup"
    for probe in (ready, live, startup):
        assert port_number(server, probe["httpGet"]["port"]) == http_port
    noticed = ready.get("periodSeconds", 10) * ready.get("failureThreshold", 3)
    assert noticed <= drain_seconds, f"readiness noticed after {noticed} s, the drain accepts connections for {drain_seconds} s only"
    assert startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= STARTUP_BUDGET


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_the_deployments_probes_agree_with_the_servers_port_and_drain(rendered: dict[str, Path], overlay: str, tmp_path: Path) -> None:
    docs = documents(rendered[overlay].read_text())
    server = container(find(docs, "Deployment", "sealserve"), "sealserve")
    settings = deployed_settings(docs, tmp_path).config
    check_probes(server, settings.server.port, settings.shutdown.drain_seconds)


def test_the_serving_runtimes_probes_agree_with_its_port_and_drain() -> None:
    runtime = yaml.safe_load(KSERVE_FILES[0].read_text())
    server = container(runtime, "kserve-container")
    environment = {**pod_environment(server), "SEALSERVE_MODEL_DIR": "/mnt/models", "SEALSERVE_MODEL_NAME": "m"}
    settings = load_settings(None, environment, Overrides()).config
    http_port = int(next(arg for arg in server["args"] if arg.startswith("--http_port=")).split("=", 1)[1])
    check_probes(server, http_port, settings.shutdown.drain_seconds)


def test_the_serving_runtime_passes_the_arguments_and_mounts_the_image_test_ran_with() -> None:
    runtime = yaml.safe_load(KSERVE_FILES[0].read_text())
    server = container(runtime, "kserve-container")
    assert server["args"] == [arg.replace(NAME, "{{.Name}}") for arg in kserve_args(NAME, 8080, 8081)]
    flags = {arg.split("=", 1)[0]: arg.split("=", 1)[1] for arg in server["args"]}
    assert set(flags) == {"--model_name", "--model_dir", "--http_port", "--grpc_port", "--host"}
    assert flags["--model_dir"] == "/mnt/models"  # the image test mounts the bundle there, read-only
    assert {int(flags["--http_port"]), int(flags["--grpc_port"])} == {item["containerPort"] for item in server["ports"]}
    keyring = pod_environment(server)["SEALSERVE_KEYRING"]
    mounts = {item["mountPath"] for item in server["volumeMounts"]}
    assert Path(keyring).parent == Path("/etc/sealserve/keyring")  # where the image test mounts the keyring
    assert str(Path(keyring).parent) in mounts
    assert "/tmp" in mounts  # the image test's --tmpfs /tmp under --read-only
    security = server["securityContext"]
    assert (security["runAsUser"], security["readOnlyRootFilesystem"], security["allowPrivilegeEscalation"]) == (10001, True, False)
    assert security["capabilities"]["drop"] == ["ALL"]
