"""The real `sealserve serve` process: readiness with a refused model, the OpenAPI contract, two servers side by side."""

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from sealserve.bundle import keyring, keys
from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, serve

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("e2e"))
    space.publish("demo", "1.0.0")
    stranger = keys.generate(keys.Algorithm.ECDSA_P256, "stranger")
    space.publish("untrusted", "1.0.0", private_key=stranger)
    return space


def test_a_refused_model_keeps_the_server_unready_with_the_reason(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, {"name": "untrusted"})
    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        from tests.support.server import wait_until

        models = lambda: client.get("/api/health/ready").json()["models"]  # noqa: E731 - they load side by side
        wait_until(lambda: models()[1]["error"] is not None and models()[0]["ready"])
        ready = client.get("/api/health/ready")
        assert ready.status_code == 503
        untrusted = next(m for m in ready.json()["models"] if m["name"] == "untrusted")
        assert untrusted["ready"] is False
        assert "signer key 'stranger' is not in the keyring" in untrusted["error"]
        assert client.get("/api/health/startup").status_code == 503
        refused = client.post("/api/models/untrusted/prediction", json=RECORD)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert client.post("/api/models/demo/prediction", json=RECORD).json()["model_version"] == "1.0.0"
        assert "Traceback" not in server.log()


def test_openapi_command_matches_what_the_server_serves(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"})
    written = tmp_path / "openapi.json"
    result = subprocess.run([SEALSERVE, "openapi", str(config), "--output", str(written)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    with serve(config, tmp_path) as server:
        served = httpx.get(f"{server.url}/openapi.json").json()
    assert json.loads(written.read_text()) == served
    assert "/api/models/demo/prediction" in served["paths"]


def test_two_servers_run_side_by_side_with_their_own_models(workspace: Workspace, tmp_path: Path) -> None:
    workspace.publish("demo", "2.0.0", alias="staging", seed=1)
    first = workspace.config(tmp_path / "a.yaml", {"name": "demo", "ref": "production"})
    second = workspace.config(tmp_path / "b.yaml", {"name": "demo", "ref": "staging"})
    with serve(first, tmp_path) as one, serve(second, tmp_path) as two:
        assert httpx.post(f"{one.url}/api/models/demo/prediction", json=RECORD).json()["model_version"] == "1.0.0"
        assert httpx.post(f"{two.url}/api/models/demo/prediction", json=RECORD).json()["model_version"] == "2.0.0"


def test_serve_with_two_workers_answers_from_both(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"})
    with serve(config, tmp_path, extra_args=("--workers", "2")) as server, server.client() as client:
        versions = {client.post("/api/models/demo/prediction", json=RECORD).json()["model_version"] for _ in range(20)}
        assert versions == {"1.0.0"}


def test_config_errors_exit_non_zero_with_the_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  - name: demo\n    store_url: ${NOT_SET_ANYWHERE}\n    keyring: /k.json\n")
    result = subprocess.run([SEALSERVE, "serve", str(config)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 1
    assert "NOT_SET_ANYWHERE" in result.stderr
    assert "Traceback" not in result.stderr


def test_keyring_is_reread_so_revocation_applies_to_the_next_load(workspace: Workspace, tmp_path: Path) -> None:
    ring_path = tmp_path / "keyring.json"
    ring_path.write_text(workspace.keyring.read_text())
    keyring.Keyring.load(ring_path).revoke("test-key").save(ring_path)
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo", "keyring": str(ring_path)})
    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        from tests.support.server import wait_until

        wait_until(lambda: client.get("/api/health/ready").json()["models"][0]["error"] is not None)
        assert "revoked" in client.get("/api/models/demo").json()["error"]
