"""`sealserve serve`'s one settings loader: the YAML file, then SEALSERVE_* environment variables, then flags.

The flags include KServe's (`--model_name`, `--model_dir`, `--http_port`, `--grpc_port`), so a ServingRuntime
can start the server with no YAML at all; every layer goes through the same strict validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from sealserve.errors import ConfigError
from sealserve.serve.config import Server, ServiceConfig, read_yaml, substitute, validate_config
from sealserve.store.directory import directory_url

# With --workers N, where the parent tells every worker of the private folder they share (lifecycle/fanout.py) and of
# the folder prometheus_client's multiprocess mode writes to (observability/metrics.py): defined here, the parent
# sets them without importing the worker's modules.
RUNTIME_ENV = "SEALSERVE_WORKERS_DIR"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

ENVIRONMENT = {
    "host": "SEALSERVE_HOST",
    "http_port": "SEALSERVE_HTTP_PORT",
    "grpc_port": "SEALSERVE_GRPC_PORT",
    "workers": "SEALSERVE_WORKERS",
    "model_name": "SEALSERVE_MODEL_NAME",
    "model_dir": "SEALSERVE_MODEL_DIR",
    "keyring": "SEALSERVE_KEYRING",
    "tls_cert": "SEALSERVE_TLS_CERT",
    "tls_key": "SEALSERVE_TLS_KEY",
    "drain_seconds": "SEALSERVE_DRAIN_SECONDS",
    "shutdown_timeout": "SEALSERVE_SHUTDOWN_TIMEOUT",
}
INTEGERS = ("http_port", "grpc_port", "workers")
NUMBERS = ("drain_seconds", "shutdown_timeout")


@dataclass(frozen=True)
class Overrides:
    """Settings given outside the YAML file, by the environment or by flags; None means "not given here"."""

    host: str | None = None
    http_port: int | None = None
    grpc_port: int | None = None
    workers: int | None = None
    model_name: str | None = None
    model_dir: str | None = None
    keyring: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    drain_seconds: float | None = None
    shutdown_timeout: float | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Overrides:
        given: dict[str, Any] = {}
        for setting, variable in ENVIRONMENT.items():
            value = environ.get(variable, "").strip()
            if not value:
                continue
            if setting in INTEGERS:
                try:
                    given[setting] = int(value)
                except ValueError:
                    raise ConfigError(f"environment variable {variable} must be a whole number, not {value!r}") from None
            elif setting in NUMBERS:
                try:
                    given[setting] = float(value)
                except ValueError:
                    raise ConfigError(f"environment variable {variable} must be a number of seconds, not {value!r}") from None
            else:
                given[setting] = value
        return cls(**given)

    def over(self, lower: Overrides) -> Overrides:
        """This layer on top of `lower`: each setting given here wins."""
        return replace(lower, **{item.name: value for item in fields(self) if (value := getattr(self, item.name)) is not None})

    def to_json(self) -> str:
        return json.dumps({key: value for key, value in asdict(self).items() if value is not None})

    @classmethod
    def from_json(cls, text: str) -> Overrides:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Settings:
    """The validated configuration, and what the environment and flags changed in it."""

    config: ServiceConfig
    given: Overrides


def load_settings(path: Path | None, environ: Mapping[str, str], flags: Overrides) -> Settings:
    """YAML (when given; `${VAR}` substituted) ← environment ← flags, validated once as a whole."""
    raw = read_yaml(path) if path is not None else {}
    data = substitute(raw if raw is not None else {}, dict(environ))
    given = flags.over(Overrides.from_environment(environ))
    source = str(path) if path is not None else "flags and environment"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings")
    return Settings(validate_config(apply(data, given, source), source), given)


def apply(data: dict[str, Any], given: Overrides, source: str) -> dict[str, Any]:
    """The configuration mapping with the given settings written into it at their YAML keys."""
    result = dict(data)
    server = dict(_section(result, "server", source))
    for key, value in (("host", given.host), ("port", given.http_port), ("workers", given.workers)):
        if value is not None:
            server[key] = value
    if given.tls_cert is not None or given.tls_key is not None:
        tls = dict(server.get("tls") or {})
        tls.update({key: value for key, value in (("certfile", given.tls_cert), ("keyfile", given.tls_key)) if value is not None})
        server["tls"] = tls
    result["server"] = server
    if given.drain_seconds is not None or given.shutdown_timeout is not None:
        shutdown = dict(_section(result, "shutdown", source))
        for key, number in (("drain_seconds", given.drain_seconds), ("timeout", given.shutdown_timeout)):
            if number is not None:
                shutdown[key] = number
        result["shutdown"] = shutdown
    if given.grpc_port is not None:  # a port named outside the file binds the HTTP interface, like KServe's
        protocols = dict(_section(result, "protocols", source))
        protocols["grpc_port"] = given.grpc_port
        protocols["grpc_host"] = server.get("host", Server().host)
        result["protocols"] = protocols
    if given.model_dir is not None:
        result["models"] = [_directory_model(result.get("models"), Path(given.model_dir), given, source, "trust_policy" in result)]
    elif given.model_name is not None or given.keyring is not None:
        raise ConfigError(
            "--model_name and --keyring (SEALSERVE_MODEL_NAME, SEALSERVE_KEYRING) describe the --model_dir model; give --model_dir"
        )
    return result


def _directory_model(models: Any, folder: Path, given: Overrides, source: str, policy: bool = False) -> dict[str, Any]:
    """The one bundle model served from --model_dir: the YAML's single bundle model (if any) supplies the other keys."""
    listed = models if isinstance(models, list) else []
    if len(listed) > 1 or (listed and (not isinstance(listed[0], dict) or "class_path" in listed[0])):
        raise ConfigError(f"{source}: --model_dir serves one bundle model, so the config may list at most one bundle model as its template")
    model = dict(listed[0]) if listed else {}
    model["store_url"] = directory_url(folder)
    if given.model_name is not None:
        model["name"] = given.model_name
    if given.keyring is not None:
        model["keyring"] = given.keyring
    for key, hint in (("name", "--model_name or SEALSERVE_MODEL_NAME"), ("keyring", "--keyring or SEALSERVE_KEYRING")):
        if key == "keyring" and (policy or "trust_policy" in model):
            continue  # a trust policy names its own keyring
        if key not in model:
            raise ConfigError(f"the --model_dir model needs a {key}: {hint}, or a bundle model in the config")
    return model


def _section(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: {key} must be a mapping")
    return section
