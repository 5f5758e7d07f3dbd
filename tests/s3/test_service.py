"""The real `sealserve serve` process with models in SeaweedFS: hot reload, tampering, rollback, outages, the cache."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.store import open_store
from tests.s3.helpers import RECORD, Signer, write_config
from tests.s3.seaweed import BUCKET, Weed
from tests.support.server import SEALSERVE, serve, wait_until

KEY_ENV, SECRET_ENV = "S3_TEST_ACCESS_KEY", "S3_TEST_SECRET_KEY"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return Signer.create(tmp_path_factory.mktemp("service-signer"))


@pytest.fixture(scope="module")
def bundles(signer: Signer) -> dict[str, Path]:
    return {version: signer.bundle("demo", version, seed=index) for index, version in enumerate(("1.0.0", "2.0.0", "3.0.0"))}


def config_for(weed: Weed, prefix: str, signer: Signer, path: Path, *, cache: Path | None = None, admin: bool = False) -> Path:
    """Credentials come from the config (`${ENV}`), the way the seed passed MinIO keys to its service."""
    model = {
        "name": "demo",
        "store_url": weed.url(prefix),
        "ref": "production",
        "keyring": str(signer.keyring),
        "store_credentials": {"access_key_id": f"${{{KEY_ENV}}}", "secret_access_key": f"${{{SECRET_ENV}}}"},
    }
    storage: dict[str, Any] = {"poll_interval": 0.3, "retry_initial": 0.2, "retry_max": 1.0}
    if cache is not None:
        storage["cache_dir"] = str(cache)
    return write_config(path, [model], storage=storage, admin={"enabled": admin})


def server_env(weed: Weed) -> dict[str, str]:
    # The AWS chain holds a wrong secret: only the config's credentials can work.
    return {KEY_ENV: weed.access_key, SECRET_ENV: weed.secret_key, "AWS_SECRET_ACCESS_KEY": "wrong-on-purpose"}


def predict(client: httpx.Client) -> tuple[int, str | None]:
    response = client.post("/api/models/demo/prediction", json=RECORD)
    return response.status_code, response.json().get("model_version") if response.status_code == 200 else None


def model_detail(client: httpx.Client) -> dict[str, Any]:
    """Through the test's client: polled, a call to httpx.get would build a TLS context each time (~45 ms of CPU)."""
    detail: dict[str, Any] = client.get("/api/models/demo").json()
    return detail


def serving(client: httpx.Client, version: str) -> bool:
    return model_detail(client).get("version") == version


def health(client: httpx.Client, probe: str = "ready") -> httpx.Response:
    return client.get(f"/api/health/{probe}")


@dataclass
class LoadTest:
    """A few client threads predicting in a loop, bounded in requests and time; records every answer."""

    url: str
    threads: int = 3
    max_requests: int = 4000
    max_seconds: float = 60.0
    results: list[list[tuple[int, str | None]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> LoadTest:
        for _ in range(self.threads):
            answers: list[tuple[int, str | None]] = []
            self.results.append(answers)
            worker = threading.Thread(target=self._run, args=(answers,), daemon=True)
            self._workers.append(worker)
            worker.start()
        return self

    def _run(self, answers: list[tuple[int, str | None]]) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set() and len(answers) < self.max_requests and time.monotonic() < deadline:
                try:
                    answers.append(predict(client))
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    answers.append((0, None))

    def count(self, version: str | None = None) -> int:
        return sum(1 for answers in self.results for _, seen in list(answers) if version is None or seen == version)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)


def test_promote_during_load_switches_with_zero_failed_requests(
    running_weed: Weed, signer: Signer, bundles: dict[str, Path], prefix: str, tmp_path: Path
) -> None:
    store = open_store(running_weed.url(prefix))
    store.push(bundles["1.0.0"])
    store.push(bundles["2.0.0"])
    store.promote("demo", "1.0.0", "production")
    config = config_for(running_weed, prefix, signer, tmp_path / "service.yaml")
    with serve(config, tmp_path, env=server_env(running_weed)) as server:
        with LoadTest(server.url) as load:
            wait_until(lambda: load.count("1.0.0") >= 30, timeout=30)
            store.promote("demo", "2.0.0", "production")
            wait_until(lambda: load.count("2.0.0") >= 30, timeout=30)
        assert load.errors == []
        statuses = {status for answers in load.results for status, _ in answers}
        assert statuses == {200}, "a request failed during the swap"
        for answers in load.results:
            versions = [version for _, version in answers]
            switched = versions.index("2.0.0")
            assert set(versions[:switched]) == {"1.0.0"}
            assert set(versions[switched:]) == {"2.0.0"}, "a client saw the old version after the new one"
        with server.client() as client:
            assert model_detail(client)["error"] is None
        assert "version 2.0.0 loaded from store" in server.log()


def test_tampered_object_refused_old_model_keeps_serving_and_rollback_needs_a_pin(
    running_weed: Weed, signer: Signer, bundles: dict[str, Path], prefix: str, tmp_path: Path
) -> None:
    store = open_store(running_weed.url(prefix))
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        store.push(bundles[version])
    store.promote("demo", "2.0.0", "production")
    # Someone with write access to the bucket swaps the model bytes of 3.0.0 (the signature object stays).
    running_weed.client().put_object(Bucket=BUCKET, Key=f"{prefix}/demo/3.0.0/model.skops", Body=os.urandom(4096))
    config = config_for(running_weed, prefix, signer, tmp_path / "service.yaml", admin=True)
    with serve(config, tmp_path, env=server_env(running_weed)) as server, server.client() as client:
        assert serving(client, "2.0.0")
        store.promote("demo", "3.0.0", "production")
        wait_until(lambda: model_detail(client)["error"] is not None, timeout=20)
        detail = model_detail(client)
        assert "SHA-256 mismatch for model.skops" in detail["error"]
        assert "still serving 2.0.0" in detail["error"]
        assert detail["version"] == "2.0.0"
        assert health(client).status_code == 200
        assert predict(client) == (200, "2.0.0")
        assert "SHA-256 mismatch for model.skops" in server.log()

        # An alias moved back to an older version is refused (rollback protection)…
        store.promote("demo", "1.0.0", "production")
        wait_until(lambda: "older than 2.0.0" in (model_detail(client)["error"] or ""), timeout=20)
        assert predict(client) == (200, "2.0.0")
        # …unless an admin pins that version explicitly (CLI → admin endpoint → registry.pin).
        pinned = run_cli("admin", "pin", "demo", "1.0.0", "--url", server.url)
        assert pinned.returncode == 0, pinned.stderr
        assert "serving 1.0.0" in pinned.stdout
        assert "pinned 1.0.0" in pinned.stdout
        assert predict(client) == (200, "1.0.0")
        missing = run_cli("admin", "pin", "demo", "9.9.9", "--url", server.url)
        assert missing.returncode == 1
        assert "cannot pin 9.9.9" in missing.stderr
        assert predict(client) == (200, "1.0.0")
        # Back to following the alias; 2.0.0 is the newest served, so the alias must name it (or newer) again.
        store.promote("demo", "2.0.0", "production")
        unpinned = run_cli("admin", "unpin", "demo", "--url", server.url)
        assert unpinned.returncode == 0, unpinned.stderr
        assert predict(client) == (200, "2.0.0")
        reloaded = run_cli("admin", "reload", "demo", "--url", server.url)
        assert reloaded.returncode == 0, reloaded.stderr
        assert "serving 2.0.0" in reloaded.stdout
        assert "Traceback" not in server.log()


def test_storage_outage_keeps_serving_then_reload_resumes(
    running_weed: Weed, signer: Signer, bundles: dict[str, Path], prefix: str, tmp_path: Path
) -> None:
    store = open_store(running_weed.url(prefix))
    store.push(bundles["1.0.0"])
    store.promote("demo", "1.0.0", "production")
    config = config_for(running_weed, prefix, signer, tmp_path / "service.yaml")
    with serve(config, tmp_path, env=server_env(running_weed)) as server, server.client() as client:
        running_weed.stop(kill=True)
        wait_until(lambda: health(client).json()["storage"]["status"] == "degraded", timeout=20)
        ready = health(client)
        assert ready.status_code == 200, "degraded storage must not make the service un-ready"
        store_state = ready.json()["storage"]["stores"][0]
        assert store_state["status"] == "degraded"
        assert "cannot reach" in store_state["error"]
        assert store_state["since"] is not None
        answers = [predict(client) for _ in range(50)]
        assert set(answers) == {(200, "1.0.0")}
        assert model_detail(client)["ready"] is True

        running_weed.start()
        wait_until(lambda: health(client).json()["storage"]["status"] == "ok", timeout=20)
        store.push(bundles["2.0.0"])
        store.promote("demo", "2.0.0", "production")
        wait_until(lambda: serving(client, "2.0.0"), timeout=20)
        assert predict(client) == (200, "2.0.0")
        assert "storage degraded, serving continues" in server.log()
        assert "storage reachable again" in server.log()


def test_start_with_storage_down_uses_the_reverified_cache_and_retries_without_it(
    running_weed: Weed, signer: Signer, bundles: dict[str, Path], prefix: str, tmp_path: Path
) -> None:
    store = open_store(running_weed.url(prefix))
    store.push(bundles["1.0.0"])
    store.promote("demo", "1.0.0", "production")
    cache = tmp_path / "cache"
    cached = config_for(running_weed, prefix, signer, tmp_path / "cached.yaml", cache=cache)
    uncached = config_for(running_weed, prefix, signer, tmp_path / "uncached.yaml")
    # A first run (Python API: the registry the server uses) fills the cache.
    environ = {**os.environ, **server_env(running_weed)}
    first = load_config(cached, environ)
    registry = ModelRegistry(list(first.models), cache_dir=first.storage.cache_dir)
    registry.load_all()
    assert registry.get("demo").origin == "store"
    assert (cache.stat().st_mode & 0o777) == 0o700
    entries = list((cache / "demo").glob("sha256-*"))
    assert len(entries) == 1

    running_weed.stop()
    with serve(cached, tmp_path, env=server_env(running_weed)) as warm, warm.client() as client:
        report = health(client).json()
        assert report["storage"]["status"] == "degraded"
        assert report["storage"]["stores"][0]["served_from"] == "cache"
        assert predict(client) == (200, "1.0.0")
        assert "serving cached 1.0.0 after re-verifying it" in warm.log()

    # The cache is never trusted blindly: a changed byte is refused, and without the store nothing is served.
    model_file = entries[0] / "model.skops"
    changed = bytearray(model_file.read_bytes())
    changed[len(changed) // 2] ^= 0xFF
    model_file.write_bytes(bytes(changed))
    tampered_app = create_app(load_config(cached, environ))
    cold_app = create_app(load_config(uncached, environ))
    with TestClient(tampered_app) as tampered, TestClient(cold_app) as cold:
        for client in (tampered, cold):
            wait_until(lambda client=client: client.get("/api/health/startup").json()["models"][0]["error"] is not None, timeout=20)  # type: ignore[misc]
            assert client.get("/api/health/startup").status_code == 503
            assert client.get("/api/health/ready").status_code == 503
            assert client.post("/api/models/demo/prediction", json=RECORD).status_code == 503
        assert "SHA-256 mismatch for model.skops" in tampered.get("/api/health/startup").json()["models"][0]["error"]
        assert "cannot reach" in cold.get("/api/health/startup").json()["models"][0]["error"]
        # Start-up retries with backoff until the store is back; then both verify and serve from it.
        running_weed.start()
        for client in (tampered, cold):
            wait_until(lambda client=client: client.get("/api/health/startup").status_code == 200, timeout=30)  # type: ignore[misc]
            assert client.post("/api/models/demo/prediction", json=RECORD).json()["model_version"] == "1.0.0"
        assert tampered_app.state.registry.get("demo").origin == "store"
    # The entry that failed re-verification was dropped and replaced by the verified copy from the store.
    assert model_file.read_bytes() == (bundles["1.0.0"] / "model.skops").read_bytes()
    assert len(list((cache / "demo").glob("sha256-*"))) == 1


def test_admin_endpoints_are_off_by_default_and_loopback_only(running_weed: Weed, signer: Signer, prefix: str, tmp_path: Path) -> None:
    environ = {**os.environ, **server_env(running_weed)}
    enabled = load_config(config_for(running_weed, prefix, signer, tmp_path / "on.yaml", admin=True), environ)
    disabled = load_config(config_for(running_weed, prefix, signer, tmp_path / "off.yaml"), environ)
    # TestClient's peer is "testclient", not a loopback address: refused before anything runs.
    with TestClient(create_app(enabled)) as client:
        refused = client.post("/api/admin/models/demo/reload")
        assert refused.status_code == 403
        assert "loopback" in refused.json()["error"]["message"]
    with TestClient(create_app(disabled)) as client:
        assert client.post("/api/admin/models/demo/reload").status_code == 404


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEALSERVE, *args], capture_output=True, text=True, check=False, timeout=120)
