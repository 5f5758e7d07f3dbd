"""Which API each URL path belongs to: the one table that routing, error rendering, the access log and auth read."""

from __future__ import annotations

import re
from enum import Enum


class Protocol(str, Enum):
    """The API a request came in by; its value names it in access lines, metrics and the prediction log."""

    NATIVE = "native"
    KSERVE_V1 = "kserve_v1"
    V2_REST = "v2_rest"
    V2_GRPC = "v2_grpc"
    SELDON = "seldon"


NATIVE_MODELS = "/api/models"
NATIVE_HEALTH = "/api/health"
ADMIN = "/api/admin"
KSERVE_V1_MODELS = "/v1/models"
V2 = "/v2"
V2_REPOSITORY = "/v2/repository"
SELDON_SINGLE = "/api/v1.0"
SELDON_DEPLOYMENT = "/seldon"
SELDON_HEALTH = ("/health/ping", "/health/status")
# Explanations: under their protocol's prefix (so the table below names their protocol), told apart by their ending
NATIVE_EXPLANATION, NATIVE_EXPLANATIONS, KSERVE_V1_EXPLAIN = "/explanation", "/explanations", ":explain"
EXPLANATION_ENDINGS = (NATIVE_EXPLANATION, NATIVE_EXPLANATIONS, KSERVE_V1_EXPLAIN)

# First match wins; a path under none of these prefixes is the native API's (or a page's).
PROTOCOL_PREFIXES: tuple[tuple[str, Protocol], ...] = (
    (NATIVE_MODELS + "/", Protocol.NATIVE),
    ("/v1/", Protocol.KSERVE_V1),
    (V2, Protocol.V2_REST),
    (SELDON_DEPLOYMENT + "/", Protocol.SELDON),
    (SELDON_SINGLE + "/", Protocol.SELDON),
    *((path, Protocol.SELDON) for path in SELDON_HEALTH),
)

PROBE_PATHS = frozenset(
    {NATIVE_HEALTH, f"{NATIVE_HEALTH}/ready", f"{NATIVE_HEALTH}/startup", f"{V2}/health/live", f"{V2}/health/ready", *SELDON_HEALTH}
)
PROBE_PATTERN = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$")
ADMIN_PREFIXES = (ADMIN + "/", V2_REPOSITORY + "/")


def protocol_of_path(path: str) -> Protocol | None:
    """The standard protocol or native API a path belongs to; None for probes of the native API, pages and docs."""
    for prefix, protocol in PROTOCOL_PREFIXES:
        if path.startswith(prefix):
            return protocol
    return None


def is_probe(path: str) -> bool:
    return path in PROBE_PATHS or PROBE_PATTERN.match(path) is not None


def is_explanation(path: str) -> bool:
    """An explanation request (native or KServe V1): a POST to one of these is an explanation, not a prediction."""
    return path.startswith((NATIVE_MODELS + "/", KSERVE_V1_MODELS + "/")) and path.endswith(EXPLANATION_ENDINGS)


def is_admin(path: str) -> bool:
    return path.startswith(ADMIN_PREFIXES)
