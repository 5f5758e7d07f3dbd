"""sealserve: sign, store and serve scikit-learn models; verify every byte before anything is deserialized."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealserve.model import MLModel, MLModelException, MLModelSchemaValidationException

if TYPE_CHECKING:
    from sealserve.bundle.keyring import Keyring
    from sealserve.packing.build import pack
    from sealserve.trust.verify import verify_bundle

__all__ = ["Keyring", "MLModel", "MLModelException", "MLModelSchemaValidationException", "pack", "verify_bundle"]


def __getattr__(name: str) -> Any:
    """Import pack-time machinery (pandas, skops) only when used, so the server and CLI start fast."""
    if name == "pack":
        from sealserve.packing.build import pack

        return pack
    if name == "verify_bundle":
        from sealserve.trust.verify import verify_bundle

        return verify_bundle
    if name == "Keyring":
        from sealserve.bundle.keyring import Keyring

        return Keyring
    raise AttributeError(f"module 'sealserve' has no attribute {name!r}")
