"""The service's YAML configuration: strict keys, ${ENV} substitution, secrets never written in the file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag, ValidationError, model_validator

from sealserve.errors import ConfigError
from sealserve.runtime.explain.settings import Explain
from sealserve.serve.model_options import Candidate, Events, PredictionLog

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreCredentials(Strict):
    """S3 credentials for one model's store, normally `${ENV}` references; without them the AWS default chain applies."""

    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    session_token: SecretStr | None = None


class BundleSource(Strict):
    """A model served from a signed bundle in a store."""

    name: str
    store_url: str
    ref: str = "production"
    keyring: Path | None = Field(default=None, description="Trusted keys: any of them may sign this model (or trust_policy).")
    trust_policy: Path | None = Field(default=None, description="trust.yaml: who (keys, certificates, Sigstore) may sign which models.")
    trusted_types: tuple[str, ...] = ()
    allow_pickle: bool = False
    store_credentials: StoreCredentials | None = None
    runtime: Literal["auto", "reference", "compiled"] = Field(
        default="auto", description="auto: the bundle's compiled form when its parity is within tolerance; compiled: require it."
    )
    prediction_log: PredictionLog | None = None
    events: Events | None = None
    candidate: Candidate | None = None
    trial_prediction: bool = Field(
        default=True,
        description="Before the model goes live, load it and predict on records built from its statistics in a child process "
        "(docs/security.md): a crash or hang there leaves this model unready, not the server down.",
    )
    trial_timeout: float = Field(default=60.0, gt=0, description="Seconds the trial prediction may take before it is killed.")
    trial_memory_mb: int = Field(
        default=4096, ge=256, description="Memory the trial prediction's child may allocate (RLIMIT_DATA); past it the trial fails."
    )

    @model_validator(mode="after")
    def _one_trust_source(self) -> BundleSource:
        if (self.keyring is None) == (self.trust_policy is None):
            raise ValueError(f"model {self.name!r} needs a keyring or a trust_policy, not both (a trust policy names its keyring)")
        return self


class ClassSource(Strict):
    """A model implemented by a Python class (an MLModel subclass), constructed with `configuration`.

    `qualified_name` and `create_endpoint` are rest_model_service's keys, so its YAML runs unchanged: the name,
    when given, must be the constructed model's `qualified_name`; `create_endpoint: false` loads the model but
    gives it no native prediction endpoints (404, and no paths in the OpenAPI document)."""

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


class RequestLimits(Strict):
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    max_batch_size: int = Field(default=1000, gt=0)
    body_timeout: float = Field(default=30.0, gt=0, description="Seconds a request body may take to arrive in full (408 after).")
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds from a connection's opening, or a later request's first byte, to its complete headers (408 after).",
    )


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
    """Admin HTTP endpoints (reload, pin); off by default. With auth on they need the admin scope; without, a loopback client."""

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


class Tracing(Strict):
    """OpenTelemetry traces over OTLP, on only with an endpoint; the standard OTEL_* variables override each key."""

    endpoint: str | None = Field(default=None, description="OTLP collector, e.g. http://collector:4318 (OTEL_EXPORTER_OTLP_ENDPOINT).")
    protocol: Literal["http/protobuf", "grpc"] = Field(default="http/protobuf", description="OTEL_EXPORTER_OTLP_PROTOCOL.")
    service_name: str = Field(default="sealserve", min_length=1, description="OTEL_SERVICE_NAME.")
    sampler: Literal[
        "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"
    ] = Field(default="parentbased_always_on", description="OTEL_TRACES_SAMPLER.")
    sampler_arg: float | None = Field(default=None, ge=0, le=1, description="OTEL_TRACES_SAMPLER_ARG: the ratio of the ratio samplers.")
    resource_attributes: dict[str, str] = Field(default_factory=dict, description="Added to every span (OTEL_RESOURCE_ATTRIBUTES).")


class Observability(Strict):
    """Metrics, logs and drift; all on by default (each costs a few microseconds per request, measured in performance.md)."""

    metrics: bool = Field(default=True, description="Prometheus metrics on GET /metrics.")
    access_log: bool = Field(default=True, description="One log line per request (JSON unless log_format says text).")
    log_format: Literal["json", "text"] = "json"
    drift: Drift = Drift()
    tracing: Tracing = Tracing()


SCOPE_PATTERN = r"^(read|admin|(predict|explain)(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?)$"
Scope = Annotated[str, Field(pattern=SCOPE_PATTERN)]
HS256_MIN_SECRET = 32  # bytes: RFC 7518 3.2 asks for a key at least as long as the hash output


class ApiKey(Strict):
    """A client key, stored as the hex SHA-256 of the key: keys are 256-bit random, so a fast hash is enough."""

    name: str = Field(min_length=1, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    scopes: tuple[Scope, ...] = Field(min_length=1)


class User(Strict):
    """A username/password client of the token endpoint; only an argon2id or bcrypt hash of the password is stored."""

    username: str = Field(min_length=1, max_length=128)
    password_hash: SecretStr
    scopes: tuple[Scope, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_hash(self) -> User:
        if not self.password_hash.get_secret_value().startswith(("$argon2id$", "$2b$", "$2a$", "$2y$")):
            raise ValueError(f"user {self.username!r}: password_hash must be an argon2id or bcrypt hash (sealserve auth hash-password)")
        return self


class Jwt(Strict):
    """Bearer tokens: HS256 with a shared secret, and/or RS256, ES256, EdDSA keys from a JWKS file or URL."""

    secret: SecretStr | None = Field(default=None, description="HS256 secret (normally ${ENV}); at least 32 bytes.")
    secret_file: Path | None = Field(default=None, description="File holding the HS256 secret (a mounted Secret).")
    jwks_file: Path | None = Field(default=None, description="JWKS of the public keys tokens may be signed with; re-read when it changes.")
    jwks_url: str | None = Field(default=None, pattern=r"^https?://", description="An identity provider's JWKS, cached.")
    jwks_cache_seconds: float = Field(default=300.0, gt=0, description="How long a fetched JWKS is trusted before it is fetched again.")
    issuer: str | None = Field(default="sealserve", description="Required `iss`; null accepts any.")
    audience: str | None = Field(default="sealserve", description="Required `aud`; null accepts tokens without one.")
    leeway: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat (seconds).")
    token_ttl: int = Field(default=900, ge=30, le=86400, description="Lifetime of tokens the token endpoint issues (seconds).")

    @model_validator(mode="after")
    def _one_key_source(self) -> Jwt:
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("give secret or secret_file, not both")
        if self.secret is None and self.secret_file is None and self.jwks_file is None and self.jwks_url is None:
            raise ValueError("jwt needs secret, secret_file, jwks_file or jwks_url")
        if self.secret is not None and len(self.secret.get_secret_value().encode()) < HS256_MIN_SECRET:
            raise ValueError(f"secret is shorter than {HS256_MIN_SECRET} bytes (`sealserve auth secret` prints a good one)")
        return self


class LoginLimit(Strict):
    """Failed logins on the token endpoint allowed per window, per username and per client address (then 429)."""

    per_user: int = Field(default=5, gt=0)
    per_client: int = Field(default=20, gt=0)
    window: float = Field(default=300.0, gt=0, description="Seconds a failure counts against its user and client.")
    concurrent_hashes: int = Field(default=2, gt=0, description="Password checks running at once (each argon2id check holds 64 MiB).")


class Auth(Strict):
    """Who may call what (docs/security.md): API keys, JWT bearer tokens, and a token endpoint for users."""

    enabled: bool = False
    api_keys: tuple[ApiKey, ...] = ()
    jwt: Jwt | None = None
    users: tuple[User, ...] = ()
    public: tuple[Literal["docs", "metrics"], ...] = Field(
        default=("docs", "metrics"), description="Served without credentials: the API docs (/docs, /openapi.json), /metrics."
    )
    login_limit: LoginLimit = LoginLimit()

    @model_validator(mode="after")
    def _coherent(self) -> Auth:
        if self.users and (self.jwt is None or (self.jwt.secret is None and self.jwt.secret_file is None)):
            raise ValueError("users log in for HS256 tokens: jwt.secret or jwt.secret_file is needed")
        if self.enabled and not (self.api_keys or self.jwt or self.users):
            raise ValueError("auth is enabled but no api_keys, jwt or users are configured: nobody could call the service")
        for kind, names in (("api key", [key.name for key in self.api_keys]), ("user", [user.username for user in self.users])):
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be unique: {', '.join(repeated)}")
        return self


class Tls(Strict):
    """HTTPS and gRPC over TLS, for deployments without an ingress terminating it."""

    certfile: Path
    keyfile: Path


class Server(Strict):
    """Where the HTTP port listens; the environment (SEALSERVE_HOST, SEALSERVE_HTTP_PORT, SEALSERVE_WORKERS) and flags override it."""

    host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface the HTTP port binds (and gRPC, unless grpc_host says otherwise)."
    )
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    workers: int = Field(default=1, gt=0, description="Worker processes sharing the HTTP port.")
    tls: Tls | None = Field(default=None, description="Certificate and key: HTTPS, and gRPC over TLS.")


class Shutdown(Strict):
    """A graceful stop on SIGTERM or SIGINT (docs/deploy.md): readiness off at once, new connections accepted for
    `drain_seconds` (while load balancers notice), then in-flight work finished and logs flushed within `timeout`."""

    drain_seconds: float = Field(default=5.0, ge=0, le=300, description="Seconds readiness reports 503 while new connections are accepted.")
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds after the drain for requests in flight and flushes; then the rest is cancelled."
    )


class ServiceConfig(Strict):
    service_title: str = "sealserve"
    description: str = ""
    version: str = "0.1.0"
    server: Server = Server()
    limits: RequestLimits = RequestLimits()
    batching: Batching = Batching()
    storage: Storage = Storage()
    admin: Admin = Admin()
    auth: Auth = Auth()
    protocols: Protocols = Protocols()
    observability: Observability = Observability()
    shutdown: Shutdown = Shutdown()
    explain: Explain = Explain()
    trust_policy: Path | None = Field(default=None, description="trust.yaml for every bundle model that names neither keyring nor its own.")
    models: list[ModelSource] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _policy_reaches_models(cls, data: Any) -> Any:
        """A top-level trust_policy applies to each bundle model without its own; one that sets keyring is a config error."""
        if not isinstance(data, dict) or not data.get("trust_policy") or not isinstance(data.get("models"), list):
            return data
        bundles = [m for m in data["models"] if isinstance(m, dict) and "class_path" not in m and "trust_policy" not in m]
        for model in (m for m in bundles if "keyring" in m):
            raise ValueError(f"model {model.get('name')!r} sets keyring, and the top-level trust_policy applies to it: remove one")
        return {**data, "models": [{**m, "trust_policy": data["trust_policy"]} if m in bundles else m for m in data["models"]]}

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
