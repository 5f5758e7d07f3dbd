"""Who signed a bundle, as a verifier established it, and the facts about a certificate that policies match on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from sealserve.bundle import envelope
from sealserve.errors import BadSignatureError, UntrustedCertificateError

OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # Fulcio: the token's issuer, DER UTF8String
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # Fulcio's older, raw-string form
MAX_LABEL = 128


@dataclass(frozen=True)
class Signer:
    """A verified signer: the method, the identity (kid, certificate SAN/subject, workload identity) and its issuer."""

    method: str  # key, certificate or sigstore
    identity: str
    issuer: str = ""  # certificate: the leaf's issuer DN; sigstore: the OIDC issuer; key: none
    anchor: str = ""  # the anchor it chains to (keys: "keyring")
    sans: tuple[str, ...] = ()  # certificate SAN emails, URIs, DNS names: what `san`/`identity` rules match
    subjects: tuple[str, ...] = ()  # the subject DN (RFC 4514) and its CN: what `subject` rules match
    serials: tuple[str, ...] = ()  # the verified chain's serials (hex) and SHA-256 fingerprints, for `revoked:`
    fingerprints: tuple[str, ...] = ()
    signed_at: datetime | None = None  # trusted signing time: the log's integrated time (Sigstore only)
    kid: str = ""
    alg: str = ""  # the keyring key's algorithm (ES256, EdDSA, HS256)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.kid,) if self.method == "key" else (*self.sans, *self.subjects)

    @property
    def label(self) -> str:
        """A bounded, printable name for logs, the listing and the model-info metric."""
        text = self.kid if self.method == "key" else f"{self.method}:{self.identity}"
        return "".join(char if char.isprintable() else "?" for char in text)[:MAX_LABEL]

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"method": self.method, "identity": self.identity}
        if self.issuer:
            found["issuer"] = self.issuer
        if self.anchor:
            found["anchor"] = self.anchor
        if self.signed_at is not None:
            found["signed_at"] = self.signed_at.isoformat()
        return found


@dataclass(frozen=True)
class Provenance:
    """What the model detail, the web page and `verify --json` report: the signer, the bundle digest, the rule."""

    signer: Signer
    digest: str
    rule: str = field(default="")

    def describe(self) -> dict[str, Any]:
        return {**self.signer.describe(), "digest": f"sha256:{self.digest}", "rule": self.rule}


class Verifier(Protocol):
    """One way to trust a signer: it checks the signature over the envelope and says who made it, or raises."""

    @property
    def method(self) -> str: ...

    def verify(self, parsed: envelope.Envelope, now: datetime) -> Signer: ...


def certificate_names(certificate: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The SAN emails, URIs and DNS names; and the subject's RFC 4514 string with its CN."""
    sans: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            sans.extend(str(value) for value in san.get_values_for_type(kind))
    subjects = [certificate.subject.rfc4514_string()]
    subjects.extend(str(attribute.value) for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return tuple(dict.fromkeys(name for name in sans if name)), tuple(dict.fromkeys(name for name in subjects if name))


def oidc_issuer(certificate: x509.Certificate) -> str:
    """The OIDC issuer Fulcio wrote into the leaf, or "" when it carries none."""
    for oid in (OIDC_ISSUER_V2, OIDC_ISSUER_V1):
        try:
            raw = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
        if oid == OIDC_ISSUER_V2 and len(value) >= 2 and value[0] == 0x0C:  # UTF8String, short or long form length
            value = value[2:] if value[1] < 0x80 else value[2 + (value[1] & 0x7F) :]
        return value.decode("utf-8", "replace")
    return ""


def chain_facts(chain: list[x509.Certificate]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Serials (hex, lower case) and SHA-256 fingerprints of every certificate of a verified chain."""
    return (
        tuple(format(cert.serial_number, "x") for cert in chain),
        tuple(cert.fingerprint(hashes.SHA256()).hex() for cert in chain),
    )


def verify_with_certificate(certificate: x509.Certificate, signature: bytes, message: bytes) -> None:
    """The DSSE signature with the leaf's key: ECDSA with the curve's hash (as model_signing signs), or Ed25519."""
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size)
            if digest is None:
                raise UntrustedCertificateError(f"signing certificate uses the unsupported curve {key.curve.name}")
            key.verify(signature, message, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            raise UntrustedCertificateError("signing certificate's key is neither ECDSA nor Ed25519")
    except InvalidSignature:
        raise BadSignatureError(f"signature does not verify with the certificate of {certificate.subject.rfc4514_string()!r}") from None
