"""The service's YAML configuration: strict keys, ${ENV} substitution, secrets never written in the file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag, ValidationError, model_validator

from sealserve.errors import ConfigError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreCredentials(Strict):
    """S3 credentials for one model's store, normally `${ENV}` references; without them the AWS default chain applies."""

    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    session_token: SecretStr | None = None


class PredictionLog(Strict):
    """Opt-in per model: every (sampled) prediction's inputs and outputs to JSON Lines, written off the request path."""

    path: Path
    max_bytes: int = Field(default=10 << 20, gt=0, description="Rotate the file past this size.")
    backups: int = Field(default=5, ge=0, description="Rotated files kept (path.1 … path.N).")
    sample: float = Field(default=1.0, gt=0, le=1, description="Share of requests logged.")
    queue: int = Field(default=10_000, gt=0, description="Records waiting for the writer; past it they are dropped and counted.")


class BundleSource(Strict):
    """A model served from a signed bundle in a store."""

    name: str
    store_url: str
    ref: str = "production"
    keyring: Path
    trusted_types: tuple[str, ...] = ()
    allow_pickle: bool = False
    store_credentials: StoreCredentials | None = None
    runtime: Literal["auto", "reference", "compiled"] = Field(
        default="auto", description="auto: the bundle's compiled form when its parity is within tolerance; compiled: require it."
    )
    prediction_log: PredictionLog | None = None


class ClassSource(Strict):
    """A model implemented by a Python class (an MLModel subclass), constructed with `configuration`.

    `qualified_name` and `create_endpoint` are rest_model_service's keys, so its YAML runs unchanged: the name,
    when given, must be the constructed model's `qualified_name`; `create_endpoint: false` loads the model but
    gives it no native prediction endpoints (404, and no paths in the OpenAPI document).
    """

    class_path: str
    qualified_name: str | None = Field(default=None, min_length=1)
    create_endpoint: bool = True
    configuration: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hidden_models_are_named(self) -> ClassSource:
        if not self.create_endpoint and self.qualified_name is None:
            raise ValueError(f"{self.class_path}: create_endpoint: false needs the model's qualified_name (the endpoints it hides)")
        return self


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "class" if "class_path" in value else "bundle"
    return "class" if isinstance(value, ClassSource) else "bundle"


ModelSource = Annotated[Annotated[BundleSource, Tag("bundle")] | Annotated[ClassSource, Tag("class")], Discriminator(_source_kind)]


class Limits(Strict):
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    max_batch_size: int = Field(default=1000, gt=0)
    body_timeout: float = Field(default=30.0, gt=0, description="Seconds a request body may take to arrive in full (408 after).")


class Batching(Strict):
    """Adaptive batching of the requests queued for one model: what is already waiting runs as one model call."""

    max_batch_size: int = Field(default=1000, gt=0, description="Most rows in one model call.")
    max_latency_ms: float = Field(default=0.0, ge=0, description="How long a batch may wait to fill; 0 takes only what is queued.")
    max_queue: int = Field(default=256, gt=0, description="Requests waiting per model before answering 503 with Retry-After.")


class Storage(Strict):
    """How the service talks to its stores: verified local cache, alias polling, start-up retry."""

    cache_dir: Path | None = None
    poll_interval: float = Field(default=30.0, ge=0, description="Seconds between alias checks; 0 turns hot reload off.")
    retry_initial: float = Field(default=1.0, gt=0, description="First retry delay (seconds) while a model is not loaded yet.")
    retry_max: float = Field(default=60.0, gt=0, description="Longest retry delay (seconds); delays double up to it.")


class Admin(Strict):
    """Admin HTTP endpoints (reload, pin); off by default and loopback-only until authentication exists."""

    enabled: bool = False


class Protocols(Strict):
    """Standard inference protocols beside the native API (docs/protocols.md); REST ones are always on."""

    v2_repository: bool = Field(default=False, description="Open Inference Protocol repository extension (index, load, unload).")
    grpc_port: int | None = Field(default=None, ge=0, le=65535, description="Serve the Open Inference Protocol over gRPC on this port.")
    grpc_host: str = Field(default="127.0.0.1", min_length=1, description="Interface the gRPC port binds; without it, server.host.")
    grpc_workers: int = Field(default=8, gt=0, description="Threads answering gRPC calls.")


class Drift(Strict):
    """Drift of served inputs against the bundle's training statistics (docs/observability.md)."""

    enabled: bool = Field(default=True, description="Keep a window of recent inputs per model and score it on request.")
    window: int = Field(default=1000, ge=10, le=1_000_000, description="Most recent rows compared per model.")
    min_rows: int = Field(default=100, ge=1, description="Rows a window needs before a feature gets a status.")
    warn: float = Field(default=0.1, gt=0, description="PSI from which a feature is `warn`.")
    alert: float = Field(default=0.25, gt=0, description="PSI from which a feature is `alert`.")

    @model_validator(mode="after")
    def _ordered(self) -> Drift:
        if self.alert <= self.warn:
            raise ValueError(f"alert ({self.alert}) must be above warn ({self.warn})")
        return self


class Observability(Strict):
    """Metrics, logs and drift; all on by default (each costs a few microseconds per request, measured in performance.md)."""

    metrics: bool = Field(default=True, description="Prometheus metrics on GET /metrics.")
    access_log: bool = Field(default=True, description="One log line per request (JSON unless log_format says text).")
    log_format: Literal["json", "text"] = "json"
    drift: Drift = Drift()


class Server(Strict):
    """Where the HTTP port listens; the environment (SEALSERVE_HOST, SEALSERVE_HTTP_PORT, SEALSERVE_WORKERS) and flags override it."""

    host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface the HTTP port binds (and gRPC, unless grpc_host says otherwise)."
    )
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    workers: int = Field(default=1, gt=0, description="Worker processes sharing the HTTP port.")


class ServiceConfig(Strict):
    service_title: str = "sealserve"
    description: str = ""
    version: str = "0.1.0"
    server: Server = Server()
    limits: Limits = Limits()
    batching: Batching = Batching()
    storage: Storage = Storage()
    admin: Admin = Admin()
    protocols: Protocols = Protocols()
    observability: Observability = Observability()
    models: list[ModelSource] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _grpc_binds_the_http_interface(cls, data: Any) -> Any:
        """Without protocols.grpc_host, gRPC listens where HTTP does (server.host): one interface unless the config says otherwise."""
        if not isinstance(data, dict):
            return data
        server, protocols = data.get("server"), data.get("protocols")
        host = server.get("host") if isinstance(server, dict) else None
        if isinstance(host, str) and (protocols is None or (isinstance(protocols, dict) and "grpc_host" not in protocols)):
            return {**data, "protocols": {**(protocols or {}), "grpc_host": host}}
        return data


def load_config(path: Path, environ: dict[str, str] | None = None) -> ServiceConfig:
    """Read, substitute ${VAR} / ${VAR:-default} in string values, and validate."""
    return parse_config(read_yaml(path), environ if environ is not None else dict(os.environ), source=str(path))


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def parse_config(raw: Any, environ: dict[str, str], source: str = "config") -> ServiceConfig:
    return validate_config(substitute(raw, environ), source)


def validate_config(data: Any, source: str = "config") -> ServiceConfig:
    """Validate an already substituted mapping; every problem is named by its key path."""
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'top level'}: {error['msg']}" for error in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def substitute(value: Any, environ: dict[str, str]) -> Any:
    if isinstance(value, str):
        return ENV_REFERENCE.sub(lambda match: _lookup(match, environ), value)
    if isinstance(value, dict):
        return {key: substitute(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, environ) for item in value]
    return value


def _lookup(match: re.Match[str], environ: dict[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    if name in environ:
        return environ[name]
    if default is not None:
        return default
    raise ConfigError(f"environment variable {name} is referenced in the config but not set")
