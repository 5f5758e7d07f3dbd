"""Load generators: wrk for HTTP (a Lua script POSTs one fixed body), a threaded Python loop for gRPC,
and a bounded loop of large batch requests. Every run is bounded in time; failures are counted, not hidden."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Measure:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    detail: str = ""  # what the errors were (wrk: non-2xx and socket errors by kind)


def lua_script(path: Path, body: bytes) -> Path:
    # json.dumps of the text is also a valid Lua string literal (ASCII, \" and \\ escapes).
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\nwrk.headers["Content-Type"] = "application/json"\n')
    return path


def _milliseconds(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not found:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(found.group(1)) * UNITS[found.group(2)]


def parse_wrk(output: str) -> Measure:
    def number(pattern: str) -> str | None:
        found = re.search(pattern, output)
        return found.group(1) if found else None

    rps = number(r"Requests/sec:\s+([\d.]+)")
    if rps is None:
        raise ValueError(f"wrk printed no Requests/sec:\n{output}")
    p50, p99 = number(r"\n\s+50%\s+(\S+)"), number(r"\n\s+99%\s+(\S+)")
    non_2xx = int(number(r"Non-2xx or 3xx responses:\s+(\d+)") or 0)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    kinds = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True)) if socket else {}
    errors = non_2xx + sum(kinds.values())
    detail = ", ".join([f"{non_2xx} non-2xx"] * bool(non_2xx) + [f"{n} {kind}" for kind, n in kinds.items() if n])
    return Measure(
        rps=float(rps),
        p50_ms=_milliseconds(p50) if p50 else float("nan"),
        p99_ms=_milliseconds(p99) if p99 else float("nan"),
        requests=int(number(r"(\d+) requests in") or 0),
        errors=errors,
        detail=detail,
    )


def wrk(binary: str, url: str, script: Path, connections: int, seconds: float, cpus: set[int] | None = None) -> Measure:
    """wrk's figures for `seconds` of POSTs; `cpus`: the CPUs wrk may run on (all by default)."""
    threads = 1 if connections == 1 else 2
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    if cpus is not None:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout)


def grpc_load(target: str, request: bytes, concurrency: int, seconds: float) -> Measure:
    """`concurrency` threads calling ModelInfer back to back on one channel for `seconds` (pre-serialized request)."""
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(MODEL_INFER)  # bytes in, bytes out: no client-side (de)serialization
        start = time.perf_counter()
        deadline = start + seconds

        def worker() -> None:
            mine: list[float] = []
            failed: Counter[str] = Counter()
            while (sent := time.perf_counter()) < deadline:
                try:
                    call(request, timeout=10)
                except grpc.RpcError as exc:
                    failed[exc.code().name if isinstance(exc, grpc.Call) else "error"] += 1
                mine.append(time.perf_counter() - sent)
            with lock:
                latencies.extend(mine)
                codes.update(failed)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 15)
        elapsed = time.perf_counter() - start
    errors, detail = codes.total(), ", ".join(f"{n} {code}" for code, n in codes.items())
    if len(latencies) < 2:
        return Measure(0.0, float("nan"), float("nan"), len(latencies), errors, detail)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Measure(len(latencies) / elapsed, cuts[49] * 1e3, cuts[98] * 1e3, len(latencies), errors, detail)


def http_batch(url: str, body: bytes, records: int, count: int, headers: dict[str, str] | None = None) -> float:
    """Records per second over `count` sequential batch requests (after one warm-up request)."""
    with httpx.Client(timeout=120, headers=headers or {"Content-Type": "application/json"}) as client:
        client.post(url, content=body).raise_for_status()
        start = time.perf_counter()
        for _ in range(count):
            client.post(url, content=body).raise_for_status()
        return records * count / (time.perf_counter() - start)


def grpc_batch(target: str, request: bytes, records: int, count: int) -> float:
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(MODEL_INFER)
        call(request, timeout=120)
        start = time.perf_counter()
        for _ in range(count):
            call(request, timeout=120)
        return records * count / (time.perf_counter() - start)


def grpc_call(target: str, request: bytes, timeout: float = 10) -> bytes:
    with grpc.insecure_channel(target) as channel:
        return bytes(channel.unary_unary(MODEL_INFER)(request, timeout=timeout))


async def asgi_posts(app: Any, path: str, body: bytes, count: int, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """`count` JSON POSTs driven straight through an ASGI app (no sockets, no HTTP parsing), each with a fresh scope
    and state as uvicorn gives them. Every answer must be a 200."""
    base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: Counter[int] = Counter()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    for _ in range(count):
        await app({**base, "state": {}}, receive, send)
    assert set(statuses) == {200}, dict(statuses)


async def asgi_cpu_per_request(
    app: Any, path: str, body: bytes, count: int, headers: Sequence[tuple[bytes, bytes]] = (), warmup: int = 200
) -> float:
    """CPU seconds per JSON POST driven straight through an ASGI app (`asgi_posts`), after `warmup` requests; the
    process's CPU time, so other processes on the machine do not count."""
    await asgi_posts(app, path, body, warmup, headers)
    started = time.process_time()
    await asgi_posts(app, path, body, count, headers)
    return (time.process_time() - started) / count
