"""Start several uvicorn workers on one socket, sharing the private folder through which admin actions reach them all."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealserve.bundle.files import private_directory
from sealserve.serve.config import Server, ServiceConfig
from sealserve.serve.observability.access_log import configure_logging
from sealserve.serve.request.http_protocol import http_protocol
from sealserve.serve.settings import MULTIPROCESS_ENV, RUNTIME_ENV, Overrides, load_settings
from sealserve.serve.shutdown import DrainingServer, in_flight_seconds
from sealserve.serve.workers import DrainingWorkers
from sealserve.trust.policy.catalog import collection_paused

if TYPE_CHECKING:
    from fastapi import FastAPI

CONFIG_ENV = "SEALSERVE_CONFIG"
FLAGS_ENV = "SEALSERVE_FLAGS"


def serve_workers(config: Path | None, flags: Overrides, service: ServiceConfig) -> None:
    """The workers share a private folder (0700) for admin actions every one of them must apply; it lasts as long as the server.

    Each worker runs the same settings loader on the same YAML, environment and flags, so all of them serve one configuration.
    """
    runtime = private_directory("sealserve-workers-")
    os.environ[CONFIG_ENV] = str(config.resolve()) if config is not None else ""
    os.environ[FLAGS_ENV] = flags.to_json()
    os.environ[RUNTIME_ENV] = str(runtime)
    metrics = runtime / "metrics"  # every worker writes its metric files here; /metrics adds them up (metrics.py)
    metrics.mkdir(mode=0o700)
    os.environ[MULTIPROCESS_ENV] = str(metrics)
    try:
        _run_supervisor(service)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def worker_app() -> FastAPI:
    """One worker's app, loaded before it accepts connections (no worker answers unloaded)."""
    with collection_paused():
        from sealserve.serve.app import create_app  # in the worker: the supervising parent never builds an app

    path = os.environ.get(CONFIG_ENV)
    settings = load_settings(Path(path) if path else None, os.environ, Overrides.from_json(os.environ.get(FLAGS_ENV) or "{}"))
    configure_logging(settings.config.observability.log_format)
    return create_app(settings.config, load_before_serving=True, workers_dir=Path(os.environ[RUNTIME_ENV]))


def tls_options(server: Server) -> dict[str, Any]:
    """uvicorn's HTTPS settings from server.tls (none without it)."""
    if server.tls is None:
        return {}
    return {"ssl_certfile": str(server.tls.certfile), "ssl_keyfile": str(server.tls.keyfile)}


def uvicorn_options(config: ServiceConfig) -> dict[str, Any]:
    """uvicorn's settings from the service config: HTTPS, the HTTP protocol that cuts off slow request heads, and how
    long requests in flight may take once a drain closes the listener."""
    return {
        "http": http_protocol(config.limits.header_timeout),
        "timeout_graceful_shutdown": in_flight_seconds(config.shutdown),
        **tls_options(config.server),
    }


def serve_one(app: FastAPI, service: ServiceConfig) -> None:
    """One process serving `app` on server.host:server.port, draining on SIGTERM and SIGINT (shutdown.py)."""
    import uvicorn

    server = service.server
    options = uvicorn_options(service)
    config = uvicorn.Config(app, host=server.host, port=server.port, log_level="info", access_log=False, **options)
    DrainingServer(config, service.shutdown).run()


def _run_supervisor(service: ServiceConfig) -> None:
    """uvicorn.run's multi-worker path, with a listening socket that says it is TCP.

    uvicorn binds the shared socket with proto 0; accepted sockets inherit it, and asyncio's loop only sets
    TCP_NODELAY on sockets whose proto is IPPROTO_TCP, so with --workers every response could wait on the
    client's delayed ACK (uvicorn issue 3149; uvloop sets it regardless). The same descriptor, re-wrapped
    with IPPROTO_TCP, fixes that for either loop.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server = service.server
    config = uvicorn.Config(
        "sealserve.serve.launch:worker_app",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        log_level="info",
        access_log=False,
        **uvicorn_options(service),
    )
    bound = config.bind_socket()
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    listener.set_inheritable(True)
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases take the worker entry point
        draining = DrainingServer(config, service.shutdown).run
        supervisor = Multiprocess(config, target=draining, sockets=[listener])  # type: ignore[call-arg,unused-ignore]
    else:
        supervisor = DrainingWorkers(config, [listener], service.shutdown)
    try:
        supervisor.run()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
