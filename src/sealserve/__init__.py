"""sealserve: sign, store and serve scikit-learn models; verify every byte before anything is deserialized."""

from sealserve.bundle import Keyring, pack, verify_bundle
from sealserve.model import MLModel, MLModelException, MLModelSchemaValidationException

__all__ = ["Keyring", "MLModel", "MLModelException", "MLModelSchemaValidationException", "pack", "verify_bundle"]
