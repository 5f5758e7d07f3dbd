"""The prod overlay with authentication on, as its pods run it: the ConfigMap's service YAML through the server's own
loader with the Deployment's mounts and environment and the example Secrets' keys (test values in place of their
placeholders), then `sealserve serve` itself with an API key made as docs/deploy.md says: the probes and /metrics
answer without credentials, everything else needs an API key or an HS256 token signed with the mounted secret."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Any

import jwt
import pytest
import yaml

from sealserve.serve.auth.credentials import Authenticator
from sealserve.serve.settings import Overrides, load_settings
from tests.deploy.manifests import EXAMPLES, container, documents, entrypoint, find
from tests.deploy.pod import LocalPod
from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, free_port, serve

JWT_SECRET = secrets.token_urlsafe(48)  # what `sealserve auth secret` prints
MODEL = "diabetes_risk"
RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


@pytest.fixture(scope="module")
def prod(rendered: dict[str, Path]) -> list[dict[str, Any]]:
    return documents(rendered["prod"].read_text())


def supplied_secrets(keyring: bytes) -> dict[str, dict[str, bytes]]:
    """The Secrets the operator creates, shaped like the examples (same names and keys), with test values."""
    values = {("sealserve-keyring", "keyring.json"): keyring, ("sealserve-auth", "jwt-secret"): JWT_SECRET.encode() + b"\n"}
    supplied: dict[str, dict[str, bytes]] = {}
    for doc in documents(EXAMPLES.read_text()):
        name = doc["metadata"]["name"]
        if name != "sealserve-s3":  # optional: the AWS chain applies without it
            supplied[name] = {key: values[(name, key)] for key in doc["stringData"]}
    return supplied


def as_deployed(prod: list[dict[str, Any]], root: Path, keyring: bytes) -> tuple[Path, dict[str, str]]:
    """The server container's volumes as local folders: the service YAML (its paths made local) and the environment."""
    deployment = find(prod, "Deployment", "sealserve")
    server = container(deployment, "sealserve")
    pod = LocalPod(root, prod, supplied=supplied_secrets(keyring))
    pod.mount(deployment["spec"]["template"]["spec"], server)
    assert entrypoint() == ["sealserve", "serve"]
    (config,) = (Path(pod.path(arg)) for arg in server["args"])
    config.write_text(pod.path(config.read_text()))
    return config, pod.environment(server)


def token(secret: str, scope: str) -> str:
    now = int(time.time())
    claims = {"sub": "batch-job", "iss": "sealserve", "aud": "sealserve", "iat": now, "exp": now + 300, "scope": scope}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_prod_service_yaml_loads_with_auth_on_and_the_secret_file_mounted_read_only(prod: list[dict[str, Any]], tmp_path: Path) -> None:
    shipped = yaml.safe_load(find(prod, "ConfigMap", "sealserve-config")["data"]["service.yaml"])
    config, env = as_deployed(prod, tmp_path, b'{"keys": []}')
    auth = load_settings(config, env, Overrides()).config.auth
    assert auth.enabled
    assert auth.api_keys, "API key entries (hashes) in the service YAML"
    assert auth.jwt is not None
    assert auth.jwt.secret is None, "the HS256 secret comes from a file, not from the YAML or the environment"
    assert auth.public == ("metrics",)
    # The file the YAML names lies in a read-only mount of the sealserve-auth Secret, and holds what the Secret holds.
    secret_file = PurePosixPath(shipped["auth"]["jwt"]["secret_file"])
    deployment = find(prod, "Deployment", "sealserve")
    mounts = [item for item in container(deployment, "sealserve")["volumeMounts"] if secret_file.is_relative_to(item["mountPath"])]
    assert len(mounts) == 1, f"{secret_file} lies in no volume the server container mounts"
    mount = mounts[0]
    (volume,) = (item for item in deployment["spec"]["template"]["spec"]["volumes"] if item["name"] == mount["name"])
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "sealserve-auth"
    assert "optional" not in volume["secret"], "without the Secret the pod waits rather than start without its key"
    assert Authenticator.from_config(auth).secret == JWT_SECRET.encode()
    assert not [item for item in container(deployment, "sealserve").get("env", []) if "valueFrom" in item]


def test_prod_overlay_serves_with_credentials_only(prod: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    workspace = Workspace.create(tmp_path / "workspace")
    workspace.publish(MODEL, "1.0.0")
    config, env = as_deployed(prod, tmp_path / "pod", workspace.keyring.read_bytes())
    # docs/deploy.md: `sealserve auth api-key` prints the key on stdout and its entry on stderr; the entry replaces the placeholder.
    made = subprocess.run(
        [SEALSERVE, "auth", "api-key", "--name", "batch-scoring", "--scope", "predict", "--scope", "read"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = made.stdout.strip()
    entries = yaml.safe_load(made.stderr.split("\n", 1)[1])
    data = yaml.safe_load(config.read_text())
    assert [entry["name"] for entry in data["auth"]["api_keys"]] == [entry["name"] for entry in entries]
    data["auth"]["api_keys"] = entries
    config.write_text(yaml.safe_dump(data))
    # The bundle comes from a folder instead of S3 (the YAML's model is the template, as under KServe): no network.
    bundle = workspace.root / "store" / MODEL / "1.0.0"
    extra = ("--grpc-port", str(free_port()), "--model-dir", str(bundle))
    with serve(config, tmp_path, env=env, extra_args=extra) as running, running.client() as client:
        predict = f"/api/models/{MODEL}/prediction"
        probes = [client.get(path).status_code for path in ("/api/health", "/api/health/ready", "/api/health/startup")]
        metrics = client.get("/metrics")
        docs = client.get("/openapi.json")
        anonymous = client.post(predict, json=RECORD)
        with_key = client.post(predict, json=RECORD, headers={"Authorization": f"Bearer {key}"})
        with_token = client.post(predict, json=RECORD, headers={"Authorization": f"Bearer {token(JWT_SECRET, 'predict')}"})
        forged = client.post(predict, json=RECORD, headers={"Authorization": f"Bearer {token(secrets.token_urlsafe(48), 'predict')}"})
        without_read = client.get(f"/api/models/{MODEL}", headers={"Authorization": f"Bearer {token(JWT_SECRET, 'predict')}"})
        log = running.log()
    assert probes == [200, 200, 200]
    assert metrics.status_code == 200
    assert "sealserve_model_info" in metrics.text
    assert docs.status_code == 401
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert with_key.status_code == 200, with_key.text
    assert with_key.json()["model_version"] == "1.0.0"
    assert with_token.status_code == 200, with_token.text
    assert forged.status_code == 401
    assert without_read.status_code == 403
    assert JWT_SECRET not in log
    assert key not in log
