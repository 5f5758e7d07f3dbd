"""`sealserve serve --workers 2`: admin and repository actions reach every worker, and every connection has TCP_NODELAY.

Each check sends 40 requests, each on a new connection, so the kernel hands them to both workers: one worker
left behind shows up as a second version in the answers.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealserve.bundle import keys
from sealserve.serve.settings import RUNTIME_ENV
from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, RunningServer, serve, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects worker processes through /proc")

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
WORKERS = ("--workers", "2")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("workers"))
    space.publish("demo", "1.0.0")
    space.publish("demo", "1.1.0", seed=1)  # production → 1.1.0
    stranger = keys.generate(keys.Algorithm.ECDSA_P256, "stranger")
    space.publish("demo", "1.2.0", alias=None, private_key=stranger, seed=2)  # signed by a key no keyring trusts
    space.publish("moving", "1.0.0")
    space.publish("moving", "1.1.0", alias=None, seed=1)
    return space


@pytest.fixture(scope="module")
def read_only_server(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Two workers serving demo with the default loop, for the tests that only read (health checks, predictions,
    scrapes); the metrics test is the only one that sends predictions to it, so its counts are its own."""
    logs = tmp_path_factory.mktemp("read-only-server")
    with two_workers(workspace.config(logs / "service.yaml", {"name": "demo"}), logs) as server:
        yield server


@contextmanager
def two_workers(config: Path, log_dir: Path, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """The real CLI with two workers, once both finished starting (each loads its models before accepting)."""
    with serve(config, log_dir, env=env, extra_args=WORKERS) as server:
        wait_until(lambda: server.log().count("Application startup complete") >= 2, timeout=60)
        yield server


def versions(server: RunningServer, name: str = "demo", count: int = 40) -> list[str | int]:
    """The version answering each of `count` requests, each on a new connection (its status when not 200)."""
    answers: list[str | int] = []
    with server.fresh_client() as fresh:
        for _ in range(count):
            response = fresh.post(f"/api/models/{name}/prediction", json=RECORD)
            answers.append(response.json()["model_version"] if response.status_code == 200 else response.status_code)
    return answers


def admin(*args: str, server: RunningServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEALSERVE, "admin", *args, "--url", server.url], capture_output=True, text=True, check=False, timeout=120)


def runtime_folder(worker_pid: int) -> Path:
    """The workers' shared folder, as the serve command passed it to the worker."""
    environ = Path(f"/proc/{worker_pid}/environ").read_bytes().split(b"\0")
    value = next(item.split(b"=", 1)[1] for item in environ if item.startswith(RUNTIME_ENV.encode() + b"="))
    return Path(value.decode())


def test_pin_and_unpin_apply_to_every_worker(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, admin={"enabled": True})
    with two_workers(config, tmp_path) as server:
        assert set(versions(server)) == {"1.1.0"}

        pinned = admin("pin", "demo", "1.0.0", server=server)
        assert pinned.returncode == 0, pinned.stderr
        assert "demo: serving 1.0.0" in pinned.stdout
        assert set(versions(server)) == {"1.0.0"}

        unpinned = httpx.delete(f"{server.url}/api/admin/models/demo/pin", timeout=120)
        assert unpinned.status_code == 200, unpinned.text
        workers = unpinned.json()["workers"]
        assert len({worker["pid"] for worker in workers}) == 2
        assert all(worker["version"] == "1.1.0" and worker["pinned"] is None for worker in workers)
        assert set(versions(server)) == {"1.1.0"}


def test_a_pin_that_fails_verification_is_an_error_and_every_worker_keeps_its_version(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, admin={"enabled": True})
    with two_workers(config, tmp_path) as server:
        assert httpx.put(f"{server.url}/api/admin/models/demo/pin", json={"version": "1.0.0"}, timeout=120).status_code == 200

        refused = httpx.put(f"{server.url}/api/admin/models/demo/pin", json={"version": "1.2.0"}, timeout=120)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "pin_failed"
        assert len(error["details"]) == 2
        for worker in error["details"]:
            assert worker["applied"] is True
            assert worker["ok"] is False
            assert worker["version"] == "1.0.0"
            assert worker["pinned"] == "1.0.0"
            assert "stranger" in worker["error"]
            assert f"worker {worker['pid']}" in error["message"]
        assert set(versions(server)) == {"1.0.0"}

        cli = admin("pin", "demo", "1.2.0", server=server)
        assert cli.returncode == 1
        assert "not take effect on every worker" in cli.stderr
        assert "Traceback" not in cli.stderr
        assert set(versions(server)) == {"1.0.0"}


def test_a_replaced_worker_keeps_the_pin(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, admin={"enabled": True})
    with two_workers(config, tmp_path) as server:
        pinned = httpx.put(f"{server.url}/api/admin/models/demo/pin", json={"version": "1.0.0"}, timeout=120)
        assert pinned.status_code == 200, pinned.text
        before = {worker["pid"] for worker in pinned.json()["workers"]}
        acks = runtime_folder(max(before)) / "workers"
        os.kill(min(before), signal.SIGKILL)  # uvicorn's supervisor starts a replacement

        def replacement() -> dict[str, Any] | None:
            for path in acks.glob("*.json"):
                ack = json.loads(path.read_text())
                if ack["pid"] not in before and ack["generation"] is not None:
                    return ack
            return None

        wait_until(replacement, timeout=60)
        ack = replacement()
        assert ack is not None
        assert ack["models"]["demo"]["version"] == "1.0.0"
        assert ack["models"]["demo"]["pinned"] == "1.0.0"
        assert set(versions(server)) == {"1.0.0"}

        # the replacement takes part in the next action
        unpinned = httpx.delete(f"{server.url}/api/admin/models/demo/pin", timeout=120)
        assert unpinned.status_code == 200, unpinned.text
        assert {worker["pid"] for worker in unpinned.json()["workers"]} == (before - {min(before)}) | {ack["pid"]}
        assert set(versions(server)) == {"1.1.0"}


def test_reload_applies_to_every_worker(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "moving"}, admin={"enabled": True}, storage={"poll_interval": 0})
    workspace.store.promote("moving", "1.0.0", "production")
    with two_workers(config, tmp_path) as server:
        assert set(versions(server, "moving")) == {"1.0.0"}
        workspace.store.promote("moving", "1.1.0", "production")  # hot reload is off: nothing moves by itself

        reloaded = admin("reload", "moving", server=server)
        assert reloaded.returncode == 0, reloaded.stderr
        assert "moving: serving 1.1.0" in reloaded.stdout
        assert set(versions(server, "moving")) == {"1.1.0"}


def test_repository_unload_and_load_apply_to_every_worker(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(
        tmp_path / "service.yaml", {"name": "moving"}, protocols={"v2_repository": True}, storage={"poll_interval": 0}
    )
    workspace.store.promote("moving", "1.0.0", "production")
    with two_workers(config, tmp_path) as server:
        assert set(versions(server, "moving")) == {"1.0.0"}

        unloaded = httpx.post(f"{server.url}/v2/repository/models/moving/unload", timeout=120)
        assert unloaded.status_code == 200, unloaded.text
        assert set(versions(server, "moving")) == {503}

        workspace.store.promote("moving", "1.1.0", "production")
        loaded = httpx.post(f"{server.url}/v2/repository/models/moving/load", timeout=120)
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {"name": "moving", "version": "1.1.0"}
        assert set(versions(server, "moving")) == {"1.1.0"}


# -- TCP_NODELAY on the connections the workers accept --------------------------------------------------------

PIDFD_GETFD = 438  # the same number on every Linux architecture (the generic syscall table)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _server_side_nodelay(worker_pids: list[int], client: socket.socket) -> int | None:
    """TCP_NODELAY of the worker's end of `client`'s connection, read from a copy of the worker's descriptor."""
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in worker_pids:
        pidfd = os.pidfd_open(pid)
        try:
            for name in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                        continue
                except OSError:
                    continue
                copy = libc.syscall(PIDFD_GETFD, pidfd, int(name), 0)
                if copy < 0:
                    pytest.skip(f"pidfd_getfd refused: {os.strerror(ctypes.get_errno())}")
                with socket.socket(fileno=copy) as theirs:
                    if theirs.family != socket.AF_INET or theirs.type != socket.SOCK_STREAM:
                        continue
                    try:
                        peer = theirs.getpeername()
                    except OSError:
                        continue  # the listening socket
                    if peer == client.getsockname():
                        return theirs.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            os.close(pidfd)
    return None


@contextmanager
def loop_server(loop: str, workspace: Workspace, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The module's read-only server for uvloop (the default); a server of the test's own with uvloop shadowed."""
    if loop == "uvloop":
        yield request.getfixturevalue("read_only_server")
        return
    shadow = tmp_path / "no-uvloop" / "uvloop"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('uvloop shadowed by the test')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))}
    with two_workers(workspace.config(tmp_path / "service.yaml", {"name": "demo"}), tmp_path, env=env) as server:
        yield server


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_every_connection_a_worker_accepts_has_tcp_nodelay(
    workspace: Workspace, tmp_path: Path, loop: str, request: pytest.FixtureRequest
) -> None:
    """Read on the server's side of each connection, so no latency is measured. uvloop sets TCP_NODELAY itself;
    asyncio's loop (uvicorn's choice without uvloop, forced here by shadowing uvloop) only on a listener bound as TCP."""
    with loop_server(loop, workspace, tmp_path, request) as server:
        workers = _children(server.process.pid)
        using_uvloop = {pid: "uvloop/loop" in Path(f"/proc/{pid}/maps").read_text() for pid in workers}
        assert len(workers) >= 2
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(10):
            with socket.create_connection((host, int(port)), timeout=10) as client:
                client.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                assert client.recv(65536).startswith(b"HTTP/1.1 200")  # accepted and answered; kept open
                assert _server_side_nodelay(workers, client) == 1
        assert any(using_uvloop.values()) is (loop == "uvloop")


def test_the_metrics_of_both_workers_add_up(read_only_server: RunningServer) -> None:
    server = read_only_server
    assert set(versions(server, count=40)) == {"1.1.0"}
    metrics = runtime_folder(max(_children(server.process.pid))) / "metrics"
    writers = {path.name for path in metrics.glob("counter_*.db")}
    assert len(writers) >= 2, writers  # both workers answered and wrote their own counts
    totals = set()
    with server.fresh_client() as fresh:
        for _ in range(10):  # each scrape, on a new connection, is answered by either worker: every one sums both
            text = fresh.get("/metrics").text
            totals.add(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("sealserve_requests_total{")))
    assert totals == {40.0}
