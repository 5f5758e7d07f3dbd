"""Run the real `sealserve serve` CLI on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SEALSERVE = str(Path(sys.executable).with_name("sealserve"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def fresh_client(self) -> httpx.Client:
        """A client that opens a new connection for every request, so the kernel hands them to any of the workers;
        one client instead of a call to httpx.post per request, which builds a TLS context each time (~45 ms of CPU)."""
        return httpx.Client(base_url=self.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def wait_until(condition: object, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll `condition()` until it is truthy or the deadline passes (no fixed sleeps as synchronization)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


@contextmanager
def serve(
    config: Path,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    ready: bool = True,
    extra_args: tuple[str, ...] = (),
    ca: Path | None = None,
    new_session: bool = False,
) -> Iterator[RunningServer]:
    """Start the server; with `ready`, wait until /api/health/ready is 200 (or the process dies). With `ca`, the
    server speaks HTTPS with a certificate that CA file vouches for; with `new_session`, it leads a process group of its
    own (which a test can signal whole, as a terminal's Ctrl-C does)."""
    port = free_port()
    argv = [SEALSERVE, "serve", str(config), "--host", "127.0.0.1", "--port", str(port), *extra_args]
    with launch(argv, port, log_dir, env=env, ready=ready, ca=ca, new_session=new_session) as server:
        yield server


@contextmanager
def launch(
    argv: list[str],
    port: int,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    ready: bool = True,
    ca: Path | None = None,
    new_session: bool = False,
) -> Iterator[RunningServer]:
    """Run a server command that listens on 127.0.0.1:`port`; wait for its health (or readiness), stop it after."""
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        # no drain window unless a test asks for one: each server stops at once after its test (SIGTERM below)
        environment = {**os.environ, "SEALSERVE_DRAIN_SECONDS": "0", **(env or {})}
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=new_session)
    server = RunningServer(process, f"{'https' if ca else 'http'}://127.0.0.1:{port}", log_path)
    try:
        # One client for every poll: each httpx.get would build a new TLS context (~45 ms of CPU), so polling every 50 ms
        # would take a core from the starting server.
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        with httpx.Client(timeout=1, verify=verify) as probe:

            def answering() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
                try:
                    response = probe.get(f"{server.url}/api/health/{'ready' if ready else ''}".rstrip("/"))
                except httpx.TransportError:
                    return False
                return response.status_code == 200

            wait_until(answering, timeout=60)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
