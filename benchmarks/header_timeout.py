"""What the request-head deadline (serve/http_protocol.py) costs over uvicorn's own httptools protocol: both protocols
driven in-process by a fake transport and a trivial ASGI app, so the numbers are the protocol's microseconds, steady
even on a busy machine (an HTTP load test there cannot resolve a microsecond).

Usage: .venv/bin/python benchmarks/header_timeout.py [--requests 4000] [--rounds 7]
Prints, per protocol, the best round's µs for a request on a new connection and for one on a kept-alive connection.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import uvloop  # noqa: E402
from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from sealserve.serve.request.http_protocol import HeaderTimeoutProtocol  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
Factory = Callable[..., HttpToolsProtocol]


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Transport(asyncio.Transport):
    """Swallows writes; enough of a transport for the protocols."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


def connect(factory: Factory, config: Config, state: ServerState) -> HttpToolsProtocol:
    transport = Transport()
    protocol = factory(config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol


async def answer(protocol: HttpToolsProtocol) -> None:
    protocol.data_received(REQUEST)
    while not protocol.cycle.response_complete:
        await asyncio.sleep(0)


async def measure(factory: Factory, config: Config, requests: int) -> tuple[float, float]:
    state = ServerState()
    started = time.perf_counter()
    for _ in range(requests):
        protocol = connect(factory, config, state)
        await answer(protocol)
        protocol.connection_lost(None)
    fresh = (time.perf_counter() - started) / requests * 1e6
    protocol = connect(factory, config, state)
    started = time.perf_counter()
    for _ in range(requests):
        await answer(protocol)
    kept = (time.perf_counter() - started) / requests * 1e6
    protocol.connection_lost(None)
    return fresh, kept


async def main(requests: int, rounds: int) -> None:
    config = Config(app, log_level="warning", access_log=False)
    config.load()
    protocols: dict[str, Factory] = {
        "uvicorn httptools": HttpToolsProtocol,
        "with head deadline": functools.partial(HeaderTimeoutProtocol, header_timeout=10.0),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in protocols}
    gc.disable()
    for _ in range(rounds):
        for name, factory in protocols.items():
            results[name].append(await measure(factory, config, requests))
            gc.collect()
    for name, runs in results.items():
        fresh, kept = min(run[0] for run in runs), min(run[1] for run in runs)
        print(f"{name:20s} new connection + request {fresh:6.2f} µs   kept-alive request {kept:6.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    uvloop.run(main(arguments.requests, arguments.rounds))
