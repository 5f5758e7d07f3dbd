"""Bundle format, signing, keyring and verification."""

from sealserve.bundle.keyring import KeyEntry, Keyring, KeyStatus
from sealserve.bundle.keys import Algorithm, SigningKey
from sealserve.bundle.metadata import BundleMetadata, Feature, FeatureKind, ModelFormat
from sealserve.bundle.pack import pack, sign_folder
from sealserve.bundle.verify import VerifiedBundle, verify_bundle

__all__ = [
    "Algorithm",
    "BundleMetadata",
    "Feature",
    "FeatureKind",
    "KeyEntry",
    "KeyStatus",
    "Keyring",
    "ModelFormat",
    "SigningKey",
    "VerifiedBundle",
    "pack",
    "sign_folder",
    "verify_bundle",
]
