"""Sigstore keyless signatures, verified offline against a pinned trusted root with sigstore-python's own checks:
the Fulcio chain at the log's integrated time, the leaf's SCT, the inclusion proof and its signed checkpoint, the
signed entry timestamp, and the log entry's agreement with the envelope. No network is used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, ClientTrustConfig, InvalidBundle, TrustedRoot
from sigstore.verify import Verifier as SigstoreLibraryVerifier

from sealserve.bundle import envelope
from sealserve.errors import BadSignatureError, SignatureFormatError, TransparencyLogError, TrustPolicyError
from sealserve.trust.identity.signer import Signer, certificate_names, chain_facts, oidc_issuer


class IdentityCheckedByPolicy:
    """sigstore-python's identity hook; the trust policy's rules match issuer and identity after verification."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def load_trusted_root(path: Path, anchor: str) -> TrustedRoot:
    """A trusted_root.json, or a client trust config (model_signing's --trust_config) holding one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TrustPolicyError(f"anchor {anchor!r}: cannot read {path}: {exc.strerror}") from None
    try:
        document = json.loads(text)
        if isinstance(document, dict) and "trustedRoot" in document:
            return ClientTrustConfig.from_json(text).trusted_root
        return TrustedRoot.from_file(str(path))
    except (ValueError, SigstoreError) as exc:
        raise TrustPolicyError(f"anchor {anchor!r}: {path} is not a Sigstore trusted root ({str(exc).splitlines()[0]})") from None


def short(exc: Exception) -> str:
    """sigstore-python's message without the dumps it appends (proof hashes, pydantic's detail): its first clause."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": expected ")[0][:300]


def explain(bundle: Bundle, message: str) -> str:
    """sigstore-python reports a chain it cannot build at the log's time in one way; say which of the two causes it was.

    Only the wording depends on the (not yet trusted) integrated time: the bundle is refused either way.
    """
    if not message.startswith("failed to build timestamp certificate chain"):
        return message
    leaf = bundle.signing_certificate
    integrated = bundle.log_entry._inner.integrated_time
    when = datetime.fromtimestamp(int(integrated), tz=UTC) if integrated else None
    if when is not None and not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        return (
            f"the signing certificate was valid from {leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()}, "
            f"but the log integrated the entry at {when.isoformat()}"
        )
    issuer = leaf.issuer.rfc4514_string()
    return f"the signing certificate (issued by {issuer!r}) does not chain to a certificate authority of the trusted root"


@dataclass(frozen=True)
class SigstoreVerifier:
    """One Sigstore instance, public-good or private, pinned by its trusted root."""

    anchor: str
    trusted_root: TrustedRoot
    method: str = "sigstore"

    def verify(self, parsed: envelope.Envelope, now: datetime) -> Signer:
        try:
            bundle = Bundle.from_json(parsed.raw)
        except InvalidBundle as exc:
            if "inclusionProof" in str(exc) or "inclusion proof" in str(exc):
                raise TransparencyLogError("Sigstore log entry has no inclusion proof with a signed checkpoint") from None
            raise TransparencyLogError(f"Sigstore bundle is refused: {short(exc)}") from None
        except (ValueError, SigstoreError) as exc:
            raise SignatureFormatError(f"model.sig is not a Sigstore bundle sigstore-python reads ({short(exc)})") from None
        try:
            verifier = SigstoreLibraryVerifier(trusted_root=self.trusted_root)
            payload_type, payload = verifier.verify_dsse(bundle, IdentityCheckedByPolicy())
        except SigstoreError as exc:
            message = short(exc)
            if "signature" in message.lower() and "dsse" in message.lower():
                raise BadSignatureError(f"signature does not verify with the Sigstore certificate: {message}") from None
            raise TransparencyLogError(f"Sigstore verification against anchor {self.anchor!r} failed: {explain(bundle, message)}") from None
        if payload_type != envelope.PAYLOAD_TYPE or payload != parsed.payload:
            raise SignatureFormatError("the Sigstore verifier and model.sig's parser disagree on the signed payload")
        leaf = bundle.signing_certificate
        sans, subjects = certificate_names(leaf)
        serials, fingerprints = chain_facts([leaf])
        integrated = bundle.log_entry._inner.integrated_time
        return Signer(
            "sigstore",
            (*sans, *subjects, "(no identity)")[0],
            issuer=oidc_issuer(leaf),
            anchor=self.anchor,
            sans=sans,
            subjects=subjects,
            serials=serials,
            fingerprints=fingerprints,
            signed_at=datetime.fromtimestamp(int(integrated), tz=UTC) if integrated else None,
        )
