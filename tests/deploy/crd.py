"""Validate custom resources against a CustomResourceDefinition's OpenAPI v3 schema, rejecting unknown fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

PRESERVE = "x-kubernetes-preserve-unknown-fields"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `additionalProperties: false` on every object that lists its properties, as the API server prunes them."""
    result = {key: _strict_value(key, value) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result and not result.get(PRESERVE):
        result["additionalProperties"] = False
    return result


def _strict_value(key: str, value: Any) -> Any:
    if key == "properties" and isinstance(value, dict):
        return {name: strict(item) for name, item in value.items()}
    if key in ("items", "additionalProperties") and isinstance(value, dict):
        return strict(value)
    if key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
        return [strict(item) if isinstance(item, dict) else item for item in value]
    return value


def validator(crd_file: Path) -> dict[tuple[str, str], jsonschema.Validator]:
    """One validator per (apiVersion, kind) the CRD serves."""
    crd = yaml.safe_load(crd_file.read_text())
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    found: dict[tuple[str, str], jsonschema.Validator] = {}
    for version in crd["spec"]["versions"]:
        if version.get("served"):
            schema = strict(version["schema"]["openAPIV3Schema"])
            found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return found


def problems(document: dict[str, Any], validators: dict[tuple[str, str], jsonschema.Validator]) -> list[str]:
    """Every schema violation in `document`, as 'path: message'; an unserved kind or version is one problem."""
    chosen = validators.get((document.get("apiVersion", ""), document.get("kind", "")))
    if chosen is None:
        return [f"no vendored CRD serves {document.get('apiVersion')} {document.get('kind')}"]
    return [f"{'.'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}" for error in chosen.iter_errors(document)]
