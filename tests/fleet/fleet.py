"""Three `sealserve serve` processes on loopback ports behind HAProxy (deploy/haproxy/haproxy.cfg), one S3 store.

Replicas are plain processes so a test can SIGTERM, kill -9 and restart them in a second; each keeps its port and its
own cache folder across restarts. `Load` sends bounded traffic through the balancer and records every answer.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.s3.helpers import RECORD
from tests.support.server import SEALSERVE, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
POLL = 1.0  # storage.poll_interval of every replica: a promote reaches all of them within POLL + 1 s
DRAIN = 1.0  # shutdown.drain_seconds: covers HAProxy's inter x fall below (0.2 s x 2)
CHECKS = "default-server inter 200ms fall 2 rise 1"
PACE = 0.01  # seconds each load connection waits between requests: the replicas share two cores with the load
PREDICT = "/api/models/demo/prediction"


@dataclass
class Answer:
    """One request through the balancer (or to one replica): when, what came back, from whom."""

    sent: float
    done: float
    status: int  # 0: no HTTP answer at all
    version: str | None
    served_by: str | None
    error: str | None = None


def predict_once(client: httpx.Client, name: str | None = None) -> Answer:
    """A prediction; `name` is the replica's when the client talks to one directly (no X-Served-By then)."""
    sent = time.monotonic()
    try:
        response = client.post(PREDICT, json=RECORD)
    except httpx.HTTPError as exc:
        return Answer(sent, time.monotonic(), 0, None, None, repr(exc))
    version = response.headers.get("x-model-version")
    if response.status_code == 200 and response.json().get("model_version") != version:
        return Answer(sent, time.monotonic(), response.status_code, version, None, "version header and body disagree")
    return Answer(sent, time.monotonic(), response.status_code, version, response.headers.get("x-served-by", name))


@dataclass
class Replica:
    """One server process with a fixed port and cache folder; `start` again after it stopped is a restart."""

    name: str
    config: Path
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def start(self, *, ready: bool = True) -> None:
        assert not self.running()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            argv = [SEALSERVE, "serve", str(self.config), "--host", "127.0.0.1", "--port", str(self.port)]
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if ready:
            self.wait_ready()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/api/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self.ready, timeout=timeout, interval=0.05)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait for the drain to end; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def detail(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.url}/api/models/demo", timeout=5).json()
        return answer

    def health(self) -> dict[str, Any]:
        """The readiness report: models, storage."""
        answer: dict[str, Any] = httpx.get(f"{self.url}/api/health/ready", timeout=5).json()
        return answer

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Balancer:
    """HAProxy running the shipped example config with this fleet's addresses and faster health checks."""

    root: Path
    replicas: list[Replica]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.root / "haproxy.sock"

    def config(self) -> str:
        text = HAPROXY_CFG.read_text()
        text = re.sub(r"(?m)^    bind :8080$", f"    bind 127.0.0.1:{self.port}", text)
        text = re.sub(r"(?m)^    default-server .*$", f"    {CHECKS}", text)
        text = re.sub(r"(?m)^    server .*\n", "", text)
        text = text.rstrip("\n") + "\n" + "".join(f"    server {r.name} 127.0.0.1:{r.port} check\n" for r in self.replicas)
        text = text.replace("global\n", f"global\n    stats socket {self.socket_path} mode 600 level admin\n", 1)
        assert f"127.0.0.1:{self.port}" in text, "deploy/haproxy/haproxy.cfg no longer has the `bind :8080` this test replaces"
        assert CHECKS in text, "deploy/haproxy/haproxy.cfg no longer has the `default-server` line this test replaces"
        return text

    def start(self) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise RuntimeError("haproxy is not installed: `make setup` installs Debian's haproxy")
        path = self.root / "haproxy.cfg"
        path.write_text(self.config())
        checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with (self.root / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_until(lambda: self.socket_path.exists() and all(self.up().values()), timeout=20)

    def up(self) -> dict[str, bool]:
        """Each replica's state as HAProxy's health checks see it (the runtime API's `show stat`)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {row["svname"]: row["status"].startswith("UP") for row in rows if row["svname"] in {r.name for r in self.replicas}}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def log(self) -> str:
        path = self.root / "haproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Load:
    """`connections` clients predicting in a loop through `url`, each on its own kept-alive connection; bounded in
    time (`seconds`) and stopped early on exit. Every answer is kept in order, per client."""

    url: str
    connections: int = 8
    seconds: float = 20.0
    name: str | None = None  # the replica's, for a load sent to one replica directly
    answers: list[list[Answer]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.connections):
            mine: list[Answer] = []
            self.answers.append(mine)
            thread = threading.Thread(target=self._run, args=(mine,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def _run(self, mine: list[Answer]) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.wait(PACE) and time.monotonic() < deadline:
                mine.append(predict_once(client, self.name))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def all(self) -> list[Answer]:
        return sorted((answer for mine in self.answers for answer in list(mine)), key=lambda answer: answer.sent)

    def count(self) -> int:
        return sum(len(mine) for mine in self.answers)

    def failures(self) -> list[Answer]:
        return [answer for answer in self.all() if answer.status != 200 or answer.error is not None]

    def wait_for(self, more: int, timeout: float = 30) -> None:
        """Until `more` answers beyond the current count have come back."""
        target = self.count() + more
        wait_until(lambda: self.count() >= target, timeout=timeout)


def older_after_newer(answers: list[Answer], order: list[str]) -> list[str]:
    """Answers of an older version sent after the same replica had answered a newer one: empty when there are none."""
    rank = {version: index for index, version in enumerate(order)}
    first_done: dict[tuple[str, int], float] = {}
    for answer in answers:
        if answer.version is not None and answer.served_by is not None:
            key = (answer.served_by, rank[answer.version])
            first_done[key] = min(first_done.get(key, answer.done), answer.done)
    found = []
    for answer in answers:
        if answer.version is None or answer.served_by is None:
            continue
        newer = [done for (replica, level), done in first_done.items() if replica == answer.served_by and level > rank[answer.version]]
        if newer and min(newer) < answer.sent:
            found.append(f"{answer.served_by} answered {answer.version} {answer.sent - min(newer):.3f} s after it answered a newer one")
    return found
