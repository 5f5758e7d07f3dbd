"""Standard inference protocols over the one data plane: KServe V1, Open Inference Protocol V2 (REST and gRPC)
and Seldon. One thin adapter module per protocol: decode, call `DataPlane.infer`, encode."""

from __future__ import annotations

import asyncio
from importlib import metadata

from fastapi import APIRouter
from starlette.responses import Response

from sealserve.serve.auth.credentials import Authenticator
from sealserve.serve.auth.grpc_gate import GrpcGate
from sealserve.serve.config import ServiceConfig
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.observability.access_log import AccessLines
from sealserve.serve.request.dataplane import DataPlane
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.protocols import kserve_v1, seldon, v2_rest
from sealserve.serve.request.protocols import v2_tensors as tensors
from sealserve.serve.request.protocols.errors import render_error
from sealserve.serve.request.protocols.rest import error_response
from sealserve.serve.request.protocols.v2_grpc import GrpcServer, InferenceService

__all__ = ["StandardProtocols", "render_for_path"]
SELDON_PREFIXES = ("/seldon/", "/api/v1.0/", "/health/ping", "/health/status")


def render_for_path(path: str, failure: ServingError) -> Response:
    """An error answered before any route ran (authentication), in the error shape of the API the path belongs to."""
    if path.startswith(("/v1/", "/v2")):
        return error_response(failure)
    if path.startswith(SELDON_PREFIXES):
        return seldon.error(failure)
    return render_error(failure)


class StandardProtocols:
    """The protocol endpoints of one app: REST routers to include, and the gRPC server its lifespan runs."""

    def __init__(
        self,
        registry: ModelRegistry,
        dataplane: DataPlane,
        config: ServiceConfig,
        authenticator: Authenticator | None = None,
        lines: AccessLines | None = None,
    ) -> None:
        settings = config.protocols
        self.registry, self.dataplane, self.limits, self.repository = registry, dataplane, config.limits, settings.v2_repository
        extensions = ("binary_tensor_data", "model_repository") if settings.v2_repository else ("binary_tensor_data",)
        self.server = tensors.ServerInfo("sealserve", _version(), extensions)
        self.grpc: GrpcServer | None = None
        if settings.grpc_port is not None:
            gate = GrpcGate(authenticator) if authenticator is not None else None
            service = InferenceService(registry, dataplane, config.limits, self.server, gate, lines)
            self.grpc = GrpcServer(service, settings.grpc_host, settings.grpc_port, settings.grpc_workers, config.limits, config.server.tls)

    def routers(self, hot: list[HotRoute]) -> list[APIRouter]:
        """The REST routers; their inference routes are also added to `hot` (see hot_routes.py)."""
        return [
            kserve_v1.build_router(self.registry, self.dataplane, self.limits, hot),
            v2_rest.build_router(self.registry, self.dataplane, self.limits, self.server, self.repository, hot),
            seldon.build_router(self.registry, self.dataplane, self.limits, hot),
        ]

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port once started (useful with port 0)."""
        return self.grpc.port if self.grpc is not None else None

    def start(self) -> None:
        if self.grpc is not None:
            self.grpc.start()

    async def stop(self) -> None:
        if self.grpc is not None:
            await asyncio.to_thread(self.grpc.stop)


def _version() -> str:
    try:
        return metadata.version("sealserve")
    except metadata.PackageNotFoundError:
        return "unknown"
