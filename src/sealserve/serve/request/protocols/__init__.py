"""Standard inference protocols over the one data plane: KServe V1, Open Inference Protocol V2 (REST and gRPC)
and Seldon. One thin adapter module per protocol: decode, call `DataPlane.infer`, encode."""

from __future__ import annotations

import asyncio
from importlib import metadata

from fastapi import APIRouter

from sealserve.serve.config import ServiceConfig
from sealserve.serve.lifecycle.actions import AdminActions
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.request.dataplane import DataPlane
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.protocols import kserve_v1, seldon, v2_rest
from sealserve.serve.request.protocols import v2_tensors as tensors
from sealserve.serve.request.protocols.v2_grpc import GrpcServer, InferenceService, LineSink, RpcGate, RpcTracing

__all__ = ["StandardProtocols"]


class StandardProtocols:
    """The protocol endpoints of one app: REST routers to include, and the gRPC server its lifespan runs."""

    def __init__(
        self,
        registry: ModelRegistry,
        dataplane: DataPlane,
        config: ServiceConfig,
        gate: RpcGate | None = None,
        lines: LineSink | None = None,
        actions: AdminActions | None = None,
        tracing: RpcTracing | None = None,
    ) -> None:
        settings = config.protocols
        self.registry, self.dataplane, self.limits = registry, dataplane, config.limits
        self.repository = actions if settings.v2_repository else None
        extensions = ("binary_tensor_data", "model_repository") if settings.v2_repository else ("binary_tensor_data",)
        self.server = tensors.ServerInfo("sealserve", _version(), extensions)
        self.grpc: GrpcServer | None = None
        if settings.grpc_port is not None:
            service = InferenceService(registry, dataplane, config.limits, self.server, gate, lines, tracing)
            self.grpc = GrpcServer(service, settings.grpc_host, settings.grpc_port, settings.grpc_workers, config.limits, config.server.tls)

    def routers(self, hot: list[HotRoute]) -> list[APIRouter]:
        """The REST routers; their inference routes are also added to `hot` (see hot_routes.py)."""
        return [
            kserve_v1.build_router(self.registry, self.dataplane, self.limits, hot),
            v2_rest.build_router(self.registry, self.dataplane, self.limits, self.server, self.repository, hot),
            seldon.build_router(self.registry, self.dataplane, self.limits, hot),
        ]

    @property
    def grpc_answered(self) -> int:
        """gRPC calls answered so far (any status)."""
        return self.grpc.service.answered if self.grpc is not None else 0

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port once started (useful with port 0)."""
        return self.grpc.port if self.grpc is not None else None

    def start(self) -> None:
        if self.grpc is not None:
            self.grpc.start()

    def stop_accepting(self, grace: float) -> None:
        """The gRPC port refuses new calls; those in flight have `grace` seconds."""
        if self.grpc is not None:
            self.grpc.stop_accepting(grace)

    async def stop(self, grace: float = 5.0) -> None:
        if self.grpc is not None:
            await asyncio.to_thread(self.grpc.stop, grace)


def _version() -> str:
    try:
        return metadata.version("sealserve")
    except metadata.PackageNotFoundError:
        return "unknown"
