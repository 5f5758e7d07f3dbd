"""What the manifests promise, read back: every ConfigMap's service YAML is a config the server accepts (auth on in
prod only), the hardening is the same wherever the server runs, Secrets are mounted read-only and shipped only as
placeholders, and each overlay has its replica and image policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, EXAMPLES, KSERVE_FILES, OVERLAYS, container, deployed_settings, documents, entrypoint, find

PLACEHOLDER = re.compile(r"REPLACE_WITH_[A-Z0-9_]+")
SECRET_LIKE = re.compile(r"[A-Za-z0-9+/=_-]{16,}")  # a key, token, password or hash: long, in a base64 or hex alphabet
READ_ONLY_FOR_OWNER_AND_GROUP = 0o440


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod template in `docs` (Deployments, Jobs, ServingRuntimes), by kind/name."""
    specs = []
    for doc in docs:
        spec = doc.get("spec", {})
        template = spec.get("template", {}).get("spec") if "template" in spec else spec if "containers" in spec else None
        if template is not None:
            specs.append((f"{doc['kind']}/{doc['metadata']['name']}", template))
    return specs


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_each_configmaps_service_yaml_is_accepted_by_the_server(rendered: dict[str, Path], overlay: str, tmp_path: Path) -> None:
    docs = documents(rendered[overlay].read_text())
    deployment = find(docs, "Deployment", "sealserve")
    server = container(deployment, "sealserve")
    settings = deployed_settings(docs, tmp_path)
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    assert (settings.config.server.host, settings.config.server.port) == ("0.0.0.0", ports["http"])
    assert (settings.config.protocols.grpc_host, settings.config.protocols.grpc_port) == ("0.0.0.0", ports["grpc"])
    assert settings.config.storage.cache_dir == Path("/var/cache/sealserve")
    # Auth is on in production only (tests/deploy/test_prod_auth.py runs it); dev and the base serve without credentials.
    assert settings.config.auth.enabled is (overlay == "prod")
    if settings.config.auth.enabled:
        auth = settings.config.auth
        assert auth.api_keys or auth.jwt is not None or auth.users, "auth is on, so some way to authenticate is configured"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        # Prometheus finds the pods by these annotations, which carry no credential: /metrics must then be public.
        assert annotations["prometheus.io/scrape"] == "true"
        assert (annotations["prometheus.io/path"], int(annotations["prometheus.io/port"])) == ("/metrics", ports["http"])
        assert auth.public == ("metrics",)


def test_the_example_secrets_hold_placeholders_only() -> None:
    docs = documents(EXAMPLES.read_text())
    assert {doc["metadata"]["name"] for doc in docs} == {"sealserve-keyring", "sealserve-s3", "sealserve-auth"}
    for doc in docs:
        assert doc["kind"] == "Secret"
        assert "data" not in doc, "stringData only: nothing hidden in base64"
        for key, value in doc["stringData"].items():
            remaining = PLACEHOLDER.sub("", value)
            looks_secret = [token for token in SECRET_LIKE.findall(remaining) if re.search(r"\d", token) and re.search(r"[A-Za-z]", token)]
            assert looks_secret == [], f"{doc['metadata']['name']}/{key} holds something that is not a REPLACE_WITH_ placeholder"
            assert "PRIVATE KEY" not in value
    auth = find(docs, "Secret", "sealserve-auth")["stringData"]
    assert set(auth) == {"jwt-secret"}
    assert PLACEHOLDER.fullmatch(auth["jwt-secret"])


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_secrets_are_referenced_and_mounted_read_only(rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay].read_text())
    if overlay == "prod":
        assert [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"] == [], "prod ships no Secret, it references them"
    runtime = yaml.safe_load(KSERVE_FILES[0].read_text())
    for owner, spec in pod_specs([*docs, runtime]):
        secrets = {volume["name"]: volume["secret"] for volume in spec.get("volumes", []) if "secret" in volume}
        for item in [*spec.get("initContainers", []), *spec["containers"]]:
            for mount in item.get("volumeMounts", []):
                if mount["name"] in secrets:
                    assert mount.get("readOnly") is True, f"{owner} {item['name']} mounts Secret {mount['name']} writable"
    deployment = find(docs, "Deployment", "sealserve")
    pod = deployment["spec"]["template"]["spec"]
    # The server's Secret files: readable by root and the pod's fsGroup (the server's group), by nobody else, written by none.
    assert pod["securityContext"]["fsGroup"] == container(deployment, "sealserve")["securityContext"]["runAsGroup"]
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["defaultMode"] == READ_ONLY_FOR_OWNER_AND_GROUP, volume["name"]


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
    assert bases == ["${BASE_IMAGE}", "${BASE_IMAGE}"]  # both stages on one base, replaceable where it cannot be pulled
    defaults = [line.removeprefix("ARG BASE_IMAGE=") for line in lines if line.startswith("ARG BASE_IMAGE=")]
    assert len(defaults) == 1
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", defaults[0])  # what CKV_DOCKER_7 cannot see
    assert [line for line in lines if line.startswith("USER ")] == ["USER 10001:10001"]
    assert entrypoint() == ["sealserve", "serve"]
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in lines)
    assert "uv sync --locked" in (DEPLOY / "Dockerfile").read_text()
