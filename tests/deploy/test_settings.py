"""The layered settings loader (YAML ← SEALSERVE_* environment ← flags) and the directory source it can add."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sealserve.errors import ConfigError, NotFoundError, StoreError
from sealserve.serve.config import BundleSource
from sealserve.serve.settings import Overrides, load_settings
from sealserve.store import DirectoryStore, open_store

YAML = {
    "server": {"host": "0.0.0.0", "port": 8080},
    "protocols": {"grpc_port": 8081},
    "models": [{"name": "demo", "store_url": "file:///srv/store", "keyring": "/etc/keyring.json", "trusted_types": ["a.B"]}],
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = write(tmp_path, YAML)
    assert load_settings(config, {}, Overrides()).config.server.port == 8080
    environ = {"SEALSERVE_HTTP_PORT": "9000", "SEALSERVE_HOST": "127.0.0.2"}
    from_env = load_settings(config, environ, Overrides()).config
    assert (from_env.server.host, from_env.server.port) == ("127.0.0.2", 9000)
    from_flags = load_settings(config, environ, Overrides(http_port=9100, workers=3)).config
    assert (from_flags.server.host, from_flags.server.port, from_flags.server.workers) == ("127.0.0.2", 9100, 3)


def test_grpc_listens_where_http_does_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, YAML), {}, Overrides()).config.protocols.grpc_host == "0.0.0.0"
    local = load_settings(write(tmp_path, YAML), {}, Overrides(host="127.0.0.1")).config.protocols
    assert (local.grpc_host, local.grpc_port) == ("127.0.0.1", 8081)
    pinned = {**YAML, "protocols": {"grpc_port": 8081, "grpc_host": "10.0.0.1"}}
    assert load_settings(write(tmp_path, pinned), {}, Overrides(host="127.0.0.1")).config.protocols.grpc_host == "10.0.0.1"
    # A port given outside the file binds the HTTP interface, as `--grpc-port` always has.
    flagged = load_settings(write(tmp_path, pinned), {}, Overrides(host="127.0.0.1", grpc_port=9001)).config.protocols
    assert (flagged.grpc_host, flagged.grpc_port) == ("127.0.0.1", 9001)


def test_kserve_flags_alone_make_a_directory_model(tmp_path: Path) -> None:
    flags = Overrides(model_name="diabetes-risk", model_dir=str(tmp_path / "models"), http_port=8080, grpc_port=8081)
    settings = load_settings(None, {"SEALSERVE_KEYRING": "/etc/sealserve/keyring/keyring.json"}, flags)
    (model,) = settings.config.models
    assert isinstance(model, BundleSource)
    assert (model.name, model.store_url, model.keyring) == (
        "diabetes-risk",
        f"dir://{(tmp_path / 'models').resolve()}",
        Path("/etc/sealserve/keyring/keyring.json"),
    )
    assert settings.config.protocols.grpc_port == 8081
    assert settings.given.keyring == "/etc/sealserve/keyring/keyring.json"


def test_the_yaml_bundle_model_is_the_template_for_the_directory_model(tmp_path: Path) -> None:
    config = write(tmp_path, YAML)
    (model,) = load_settings(config, {}, Overrides(model_dir="/mnt/models", model_name="other")).config.models
    assert isinstance(model, BundleSource)
    assert (model.name, model.store_url, model.trusted_types, model.keyring) == (
        "other",
        "dir:///mnt/models",
        ("a.B",),
        Path("/etc/keyring.json"),
    )


@pytest.mark.parametrize(
    ("data", "environ", "flags", "message"),
    [
        (None, {}, Overrides(model_dir="/mnt/models"), "needs a name"),
        (None, {}, Overrides(model_dir="/mnt/models", model_name="m"), "needs a keyring"),
        (None, {"SEALSERVE_MODEL_NAME": "m"}, Overrides(), "give --model_dir"),
        ({"models": [{"class_path": "a.B"}]}, {}, Overrides(model_dir="/m", model_name="m", keyring="/k"), "at most one bundle"),
        (YAML, {"SEALSERVE_HTTP_PORT": "eighty"}, Overrides(), "SEALSERVE_HTTP_PORT must be a whole number"),
        (YAML, {"SEALSERVE_DRAIN_SECONDS": "five"}, Overrides(), "SEALSERVE_DRAIN_SECONDS must be a number of seconds"),
        (YAML, {"SEALSERVE_SHUTDOWN_TIMEOUT": "0"}, Overrides(), "shutdown.timeout"),
        ({**YAML, "shutdown": {"drain_seconds": -1}}, {}, Overrides(), "shutdown.drain_seconds"),
        (YAML, {}, Overrides(http_port=70000), "server.port"),
        ({**YAML, "server": {"prot": 1}}, {}, Overrides(), "server.prot"),
        (None, {}, Overrides(), "models"),
    ],
)
def test_every_layer_is_validated_and_errors_name_the_setting(
    tmp_path: Path, data: object, environ: dict[str, str], flags: Overrides, message: str
) -> None:
    config = write(tmp_path, data) if data is not None else None
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ, flags)


def test_overrides_travel_to_worker_processes_unchanged() -> None:
    flags = Overrides(host="0.0.0.0", http_port=8080, model_dir="/mnt/models")
    assert Overrides.from_json(flags.to_json()) == flags


def test_directory_store_answers_only_for_the_bundle_it_holds(tmp_path: Path) -> None:
    (tmp_path / "sealserve.json").write_text('{"name": "demo", "version": "1.2.0"}')
    store = open_store(f"dir://{tmp_path}")
    assert isinstance(store, DirectoryStore)
    assert store.resolve("demo", "production") == "1.2.0"
    assert store.resolve("demo", "1.2.0") == "1.2.0"
    assert store.aliases("demo") == {}
    with pytest.raises(NotFoundError, match=r"holds version 1\.2\.0, not 1\.0\.0"):
        store.resolve("demo", "1.0.0")
    with pytest.raises(NotFoundError, match="holds a bundle named 'demo', not 'other'"):
        store.resolve("other", "production")
    with pytest.raises(StoreError, match="read-only"):
        store.push(tmp_path)
    with pytest.raises(NotFoundError, match="no bundle in"):
        open_store(f"dir://{tmp_path / 'empty'}").resolve("demo", "production")
    with pytest.raises(StoreError, match="dir:///absolute/path"):
        open_store("dir://host/models")


def test_the_drain_settings_come_from_the_yaml_and_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, {**YAML, "shutdown": {"drain_seconds": 10, "timeout": 60}})
    assert load_settings(config, {}, Overrides()).config.shutdown.model_dump() == {"drain_seconds": 10.0, "timeout": 60.0}
    environ = {"SEALSERVE_DRAIN_SECONDS": "0", "SEALSERVE_SHUTDOWN_TIMEOUT": "2.5"}
    assert load_settings(config, environ, Overrides()).config.shutdown.model_dump() == {"drain_seconds": 0.0, "timeout": 2.5}
    assert load_settings(write(tmp_path, YAML), {}, Overrides()).config.shutdown.model_dump() == {"drain_seconds": 5.0, "timeout": 30.0}
