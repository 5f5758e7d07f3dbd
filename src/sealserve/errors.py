"""Every failure sealserve reports on purpose is one of these types, so callers can tell them apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class SealserveError(Exception):
    """Base class: the message is safe to show to a user (no secrets, no internals)."""


class BundleFormatError(SealserveError):
    """The bundle is not well formed: unreadable archive, bad metadata, bad paths."""


class NewerFormatError(BundleFormatError):
    """The bundle is written in a format major this sealserve does not read yet."""


class UnsafePathError(BundleFormatError):
    """An archive or folder entry is absolute, escapes the bundle, or is a link."""


class BundleTooLargeError(BundleFormatError):
    """The bundle exceeds a configured size or file-count cap."""


class VerificationError(SealserveError):
    """Base class for refusals during verification."""


class SignatureFormatError(VerificationError):
    """model.sig is missing or is not a DSSE envelope in a Sigstore bundle."""


class UnknownKeyError(VerificationError):
    """The signer's key is not in the server's keyring."""


class RevokedKeyError(VerificationError):
    """The signer's key is revoked in the keyring."""


class KeyNotValidError(VerificationError):
    """The signer's key is outside its not-before/expiry window."""


class BadSignatureError(VerificationError):
    """The signature does not verify with the keyring's key."""


class UntrustedCertificateError(VerificationError):
    """A signing certificate does not chain to a configured anchor, is outside its validity or may not sign code."""


class TransparencyLogError(VerificationError):
    """A Sigstore signature's log entry, inclusion proof, checkpoint, SCT or certificate chain does not verify."""


class SignerNotGrantedError(VerificationError):
    """A verified signer is not one the trust policy accepts for this model name."""


class RevokedSignerError(RevokedKeyError):
    """The trust policy revokes this key id, certificate or identity."""


class DigestMismatchError(VerificationError):
    """A file's SHA-256 differs from the signed manifest."""


class MissingFileError(VerificationError):
    """A file named in the signed manifest is absent."""


class ExtraFileError(VerificationError):
    """A file is present that the signed manifest does not name."""


class IdentityMismatchError(VerificationError):
    """The signed name or version is not the one requested."""


class RollbackError(VerificationError):
    """A store alias points at a version older than one already served."""


class UnsafeModelError(SealserveError):
    """The model file needs types or globals outside the allow-list, or pickle was not allowed."""


class KeyringError(SealserveError):
    """The keyring or a key file is malformed, or a keyring operation is not allowed."""


class TrustPolicyError(KeyringError):
    """The trust policy file (trust.yaml) or an anchor it names is malformed or unreadable."""


class StoreError(SealserveError):
    """A store operation failed."""


class NotFoundError(StoreError):
    """The model, version or alias does not exist in the store."""


class VersionExistsError(StoreError):
    """The version already exists with different content; versions are immutable."""


class ConfigError(SealserveError):
    """The service configuration is invalid."""


class TrialPredictionError(SealserveError):
    """The model crashed, failed or hung in its trial prediction (a child process) before going live."""


def first_problem(exc: ValidationError) -> str:
    """pydantic's first error as "at LOCATION: message" (the top level when it has none), for a one-line refusal."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"at {where or 'top level'}: {first['msg']}"
