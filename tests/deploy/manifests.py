"""The shipped deployment files, rendered and read as the cluster would see them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sealserve.serve.settings import Overrides, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
KSERVE_FILES = (DEPLOY / "kserve" / "clusterservingruntime.yaml", DEPLOY / "kserve" / "inferenceservice.yaml")
EXAMPLES = DEPLOY / "kubernetes" / "examples" / "secrets.example.yaml"  # the Secrets the manifests reference, placeholders only
VALIDATE = DEPLOY / "validate"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A validation tool from the project's environments (`make setup` installs them); never one from PATH."""
    for folder in (BIN, ROOT / ".tools" / name / "bin"):
        if (folder / name).is_file():
            return str(folder / name)
    raise FileNotFoundError(f"{name} is not installed; run `make setup` (deploy group, and .tools/checkov for checkov)")


def render(overlay: str) -> str:
    """`kubectl kustomize` of one overlay (or `base`), as text."""
    folder = DEPLOY / "kubernetes" / ("base" if overlay == "base" else f"overlays/{overlay}")
    result = subprocess.run([tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one document of `kind` whose name is `name` (or, for generated objects, `name-<hash>`)."""
    pattern = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
    found = [doc for doc in docs if doc["kind"] == kind and pattern.fullmatch(doc["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_owner["spec"]["template"]["spec"] if "template" in pod_owner["spec"] else pod_owner["spec"]
    return next(item for item in spec["containers"] if item["name"] == name)


def entrypoint() -> list[str]:
    """The image's exec-form ENTRYPOINT, read from the Dockerfile."""
    line = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("ENTRYPOINT "))
    command = json.loads(line.removeprefix("ENTRYPOINT "))
    assert isinstance(command, list)
    return [str(part) for part in command]


def pod_environment(server: dict[str, Any]) -> dict[str, str]:
    """The variables a pod template gives the container; a value from a Secret or ConfigMap becomes a test value."""
    return {item["name"]: item["value"] if "value" in item else f"test-{item['name'].lower()}" for item in server.get("env", [])}


def deployed_settings(docs: list[dict[str, Any]], folder: Path) -> Settings:
    """The settings the Deployment's server runs with: its ConfigMap's service YAML under its environment."""
    config = folder / "service.yaml"
    config.write_text(find(docs, "ConfigMap", "sealserve-config")["data"]["service.yaml"])
    return load_settings(config, pod_environment(container(find(docs, "Deployment", "sealserve"), "sealserve")), Overrides())
