"""Offline validation of deploy/: kustomize renders, Kubernetes 1.32 schemas (strict), KServe's CRD schemas,
checkov and hadolint. Any warning is a failure; suppressed checks live in deploy/validate/*.yaml with reasons."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import crd
from tests.deploy.manifests import DEPLOY, EXAMPLES, KSERVE_FILES, OVERLAYS, VALIDATE, documents, tool

KUBERNETES_VERSION = "1.32.0"
KSERVE_GROUP = "serving.kserve.io/"
VENDORED_CRDS = {
    "serving.kserve.io_clusterservingruntimes.yaml": "1ce0a2e5b3d7c05192f7c817eff4d614a80cb432",
    "serving.kserve.io_inferenceservices.yaml": "1e37d05b7a741eb40b9eb01c378dc9dc80eab3d9",
}


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout, cwd=DEPLOY.parent)


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_overlay_renders_into_namespaced_objects(rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay].read_text())
    kinds = {doc["kind"] for doc in docs}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert all(doc["metadata"].get("namespace") == "sealserve" for doc in docs if doc["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_kubernetes_validate_strict_passes_with_no_warning(rendered: dict[str, Path], overlay: str) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(rendered[overlay]), str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr
    expected = len(documents(rendered[overlay].read_text())) + len(documents(EXAMPLES.read_text()))
    assert result.stdout.count(" passed for resource ") == expected


def test_vendored_kserve_crds_are_the_upstream_files() -> None:
    for name, blob in VENDORED_CRDS.items():
        data = (VALIDATE / "kserve" / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name


def test_kserve_resources_match_kserves_crd_schemas_with_unknown_fields_rejected() -> None:
    validators = {}
    for name in VENDORED_CRDS:
        validators.update(crd.validator(VALIDATE / "kserve" / name))
    for path in KSERVE_FILES:
        for document in documents(path.read_text()):
            assert document["apiVersion"].startswith(KSERVE_GROUP)
            assert crd.problems(document, validators) == [], path.name
    runtime = yaml.safe_load(KSERVE_FILES[0].read_text())
    runtime["spec"]["containers"][0]["argz"] = ["typo"]
    assert crd.problems(runtime, validators) == ["spec.containers.0: Additional properties are not allowed ('argz' was unexpected)"]


def test_checkov_dev_overlay_passes_with_its_documented_skips(rendered: dict[str, Path]) -> None:
    config = VALIDATE / "checkov-dev.yaml"
    result = run(tool("checkov"), "--config-file", str(config), "--framework", "kubernetes,dockerfile", "-f", str(rendered["dev"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout
    assert "Passed checks: " in result.stdout


def test_checkov_prod_kserve_and_dockerfile_pass_with_one_documented_skip(rendered: dict[str, Path]) -> None:
    config = VALIDATE / "checkov.yaml"
    assert yaml.safe_load(config.read_text())["skip-check"] == ["CKV_DOCKER_7"]  # the base image: test_manifests checks its digest
    files = [rendered["prod"], *KSERVE_FILES, EXAMPLES, DEPLOY / "Dockerfile"]
    result = run(tool("checkov"), "--config-file", str(config), "--framework", "kubernetes,dockerfile", *(f"-f{path}" for path in files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Failed checks: 0") == 2, result.stdout  # the kubernetes and the dockerfile scans


def test_hadolint_passes_at_warning_level() -> None:
    result = run(tool("hadolint"), "--config", str(VALIDATE / "hadolint.yaml"), str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
