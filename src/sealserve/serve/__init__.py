"""The prediction service: config, registry, protocols, health."""

from sealserve.serve.app import create_app
from sealserve.serve.config import ServiceConfig, load_config
from sealserve.serve.registry import ModelRegistry

__all__ = ["ModelRegistry", "ServiceConfig", "create_app", "load_config"]
