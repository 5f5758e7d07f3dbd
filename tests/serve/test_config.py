"""Service configuration: the issue's minimal config, ${ENV} substitution, strict keys."""

from pathlib import Path

import pytest

from sealserve.errors import ConfigError
from sealserve.serve.config import BundleSource, ClassSource, load_config, parse_config

MINIMAL = """
service_title: Diabetes Risk Model Service
models:
  - name: diabetes_risk            # bundle name in the store
    store_url: file:///var/lib/sealserve/store
    ref: production                # a version or an alias
    keyring: /etc/sealserve/keyring.json
  - class_path: mypackage.model.MyModel   # an MLModel subclass
    configuration: {threshold: 0.5}
"""


def test_minimal_config_from_the_issue_parses(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(MINIMAL)
    config = load_config(path, environ={})
    bundle, custom = config.models
    assert isinstance(bundle, BundleSource)
    assert (bundle.name, bundle.ref, bundle.keyring) == ("diabetes_risk", "production", Path("/etc/sealserve/keyring.json"))
    assert isinstance(custom, ClassSource)
    assert custom.configuration == {"threshold": 0.5}
    assert config.service_title == "Diabetes Risk Model Service"


def test_environment_variables_are_substituted_with_defaults() -> None:
    raw = {"models": [{"name": "m", "store_url": "${STORE}", "keyring": "${KEYRING:-/etc/keyring.json}"}]}
    config = parse_config(raw, {"STORE": "file:///data/store"})
    source = config.models[0]
    assert isinstance(source, BundleSource)
    assert source.store_url == "file:///data/store"
    assert source.keyring == Path("/etc/keyring.json")


def test_missing_environment_variable_is_named() -> None:
    raw = {"models": [{"name": "m", "store_url": "${S3_URL}", "keyring": "/k.json"}]}
    with pytest.raises(ConfigError, match="S3_URL"):
        parse_config(raw, {})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"models": [{"name": "m", "store_url": "/s", "keyring": "/k", "refs": "x"}]}, "models.0.bundle.refs"),
        ({"servce_title": "typo", "models": [{"class_path": "a.B"}]}, "servce_title"),
        ({"models": [{"class_path": "a.B", "config": {}}]}, "models.0.class.config"),
        ({"models": []}, "models"),
    ],
)
def test_unknown_or_missing_keys_are_errors_that_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        parse_config(raw, {})


def test_substituted_values_are_not_reparsed_as_yaml() -> None:
    raw = {"service_title": "${TITLE}", "models": [{"class_path": "a.B"}]}
    config = parse_config(raw, {"TITLE": "x: [1, 2]"})
    assert config.service_title == "x: [1, 2]"
