"""What the manifests promise, read back: every ConfigMap's service YAML is a config the server accepts, the
hardening is the same wherever the server runs, and each overlay has its replica and image policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sealserve.serve.settings import Overrides, load_settings
from tests.deploy.manifests import DEPLOY, KSERVE_FILES, OVERLAYS, container, documents, entrypoint, find


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_each_configmaps_service_yaml_is_accepted_by_the_server(rendered: dict[str, Path], overlay: str, tmp_path: Path) -> None:
    docs = documents(rendered[overlay].read_text())
    config = tmp_path / "service.yaml"
    config.write_text(find(docs, "ConfigMap", "sealserve-config")["data"]["service.yaml"])
    settings = load_settings(config, {}, Overrides())
    deployment = find(docs, "Deployment", "sealserve")
    ports = {port["name"]: port["containerPort"] for port in container(deployment, "sealserve")["ports"]}
    assert (settings.config.server.host, settings.config.server.port) == ("0.0.0.0", ports["http"])
    assert (settings.config.protocols.grpc_host, settings.config.protocols.grpc_port) == ("0.0.0.0", ports["grpc"])
    assert settings.config.storage.cache_dir == Path("/var/cache/sealserve")


def test_the_serving_runtime_runs_as_hardened_as_the_deployment(rendered: dict[str, Path]) -> None:
    deployment = container(find(documents(rendered["prod"].read_text()), "Deployment", "sealserve"), "sealserve")
    runtime = container(yaml.safe_load(KSERVE_FILES[0].read_text()), "kserve-container")
    assert runtime["securityContext"] == deployment["securityContext"]
    assert deployment["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert runtime[probe]["httpGet"]["path"] == deployment[probe]["httpGet"]["path"]
    assert {port["name"]: port["containerPort"] for port in runtime["ports"]} == {"http1": 8080, "h2c": 8081}
    assert {"--http_port=8080", "--grpc_port=8081", "--model_dir=/mnt/models", "--model_name={{.Name}}"} <= set(runtime["args"])


def test_overlays_differ_only_where_they_should(rendered: dict[str, Path]) -> None:
    dev, prod = (documents(rendered[name].read_text()) for name in ("dev", "prod"))
    assert find(dev, "Deployment", "sealserve")["spec"]["replicas"] == 1
    assert not [doc for doc in dev if doc["kind"] == "HorizontalPodAutoscaler"]
    assert "replicas" not in find(prod, "Deployment", "sealserve")["spec"]
    assert find(prod, "HorizontalPodAutoscaler", "sealserve")["spec"]["minReplicas"] >= 2
    assert "@sha256:" in container(find(prod, "Deployment", "sealserve"), "sealserve")["image"]
    strategy = find(prod, "Deployment", "sealserve")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_the_dockerfile_keeps_the_image_promises() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(bases) == 2
    assert all(re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base) for base in bases)
    assert [line for line in lines if line.startswith("USER ")] == ["USER 10001:10001"]
    assert entrypoint() == ["sealserve", "serve"]
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in lines)
    assert "uv sync --locked" in (DEPLOY / "Dockerfile").read_text()
