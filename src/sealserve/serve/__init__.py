"""The prediction service: config, registry, protocols, health.

The names below are imported on first use, so a process that needs one module (the trial runner imports
`sealserve.serve.lifecycle.trial_child`) does not import the web application with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealserve.serve.app import create_app
    from sealserve.serve.config import ServiceConfig, load_config
    from sealserve.serve.lifecycle.registry import ModelRegistry

__all__ = ["ModelRegistry", "ServiceConfig", "create_app", "load_config"]

_HOMES = {"create_app": "app", "ServiceConfig": "config", "load_config": "config", "ModelRegistry": "lifecycle.registry"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
