"""Authentication for gRPC: one gate every RPC passes (`v2_grpc.guarded`), reading the `authorization` or `x-api-key`
metadata; the health RPCs stay open like the HTTP probes."""

from __future__ import annotations

from typing import Any

from sealserve.serve.auth.credentials import Authenticator, log_failure
from sealserve.serve.auth.principal import AuthenticationFailed, Forbidden
from sealserve.serve.request.principal import PREDICT, READ, Principal

RPC_SCOPES = {
    "ServerLive": None,
    "ServerReady": None,
    "ModelReady": None,
    "ServerMetadata": READ,
    "ModelMetadata": READ,
    "ModelInfer": PREDICT,
}


class GrpcGate:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def admit(self, rpc: str, metadata: Any, peer: str) -> Principal | None:
        """The caller of `rpc` (None for the open ones); raises 401/403 errors the RPC answers as UNAUTHENTICATED / PERMISSION_DENIED."""
        needed = RPC_SCOPES.get(rpc, READ)
        if needed is None:
            return None
        sent = {key: value for key, value in metadata if key in ("authorization", "x-api-key") and isinstance(value, str)}
        try:
            principal = self.authenticator.require(sent.get("authorization"), sent.get("x-api-key"))
        except AuthenticationFailed as failure:
            log_failure(failure, "grpc", peer)
            raise
        if needed == PREDICT and not principal.may_predict_some_model():
            raise Forbidden(principal, PREDICT, "predictions")
        if needed == READ and not principal.may(READ):
            raise Forbidden(principal, READ, rpc)
        return principal
