"""The OpenAPI contract of a config, computed without serving: bundles are verified, never deserialized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealserve.bundle import files
from sealserve.serve.app import create_app
from sealserve.serve.config import ClassSource, load_config
from sealserve.serve.lifecycle.loading import construct_class_model, fetch_verified
from sealserve.serve.web.openapi import ModelDescription, build_openapi


def openapi_for_config(path: Path) -> dict[str, Any]:
    config = load_config(path)
    descriptions = []
    for source in config.models:
        if isinstance(source, ClassSource):
            model = construct_class_model(source)
            descriptions.append(ModelDescription.of_model(model.qualified_name, model))
            continue
        verified = fetch_verified(source, files.BundleLimits(), {})
        verified.discard()
        descriptions.append(ModelDescription.of_metadata(verified.metadata))
    return build_openapi(create_app(config), descriptions)
