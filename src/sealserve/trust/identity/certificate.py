"""Signatures made with an organisation's certificate (`model_signing sign certificate`): the chain the bundle
carries is built up to a configured PEM anchor and checked as of verification time, since certificate mode has
no trusted signing time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealserve.bundle import envelope
from sealserve.errors import SignatureFormatError, TrustPolicyError, UntrustedCertificateError
from sealserve.trust.identity.signer import Signer, certificate_names, chain_facts, verify_with_certificate

Extension = TypeVar("Extension", bound=x509.ExtensionType)
MAX_CHAIN = 8  # certificates from leaf to anchor; a longer chain is refused rather than searched


def load_anchor_certificates(paths: list[Path], anchor: str) -> tuple[x509.Certificate, ...]:
    found: list[x509.Certificate] = []
    for path in paths:
        try:
            found.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except OSError as exc:
            raise TrustPolicyError(f"anchor {anchor!r}: cannot read {path}: {exc.strerror}") from None
        except ValueError:
            raise TrustPolicyError(f"anchor {anchor!r}: {path} holds no PEM certificate") from None
    return tuple(found)


def read_chain(parsed: envelope.Envelope) -> list[x509.Certificate]:
    if len(parsed.certificates) > MAX_CHAIN:
        raise SignatureFormatError(f"model.sig carries {len(parsed.certificates)} certificates; at most {MAX_CHAIN} are read")
    try:
        return [x509.load_der_x509_certificate(der) for der in parsed.certificates]
    except ValueError:
        raise SignatureFormatError("model.sig carries a certificate that is not valid DER") from None


def name_of(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


@dataclass(frozen=True)
class CertificateVerifier:
    """One certificate anchor: its PEM roots (and any intermediates the operator pins beside them)."""

    anchor: str
    roots: tuple[x509.Certificate, ...]
    method: str = "certificate"

    def verify(self, parsed: envelope.Envelope, now: datetime) -> Signer:
        certificates = read_chain(parsed)
        leaf = certificates[0]
        check_leaf(leaf)
        chain = self.build(leaf, certificates[1:], now)
        verify_with_certificate(leaf, parsed.signature, parsed.signed_message)
        sans, subjects = certificate_names(leaf)
        serials, fingerprints = chain_facts(chain)
        return Signer(
            "certificate",
            (*sans, *subjects, name_of(leaf))[0],
            issuer=leaf.issuer.rfc4514_string(),
            anchor=self.anchor,
            sans=sans,
            subjects=subjects,
            serials=serials,
            fingerprints=fingerprints,
        )

    def build(self, leaf: x509.Certificate, pool: list[x509.Certificate], now: datetime) -> list[x509.Certificate]:
        """Leaf, intermediates from the bundle, then an anchor: each signed by the next, each valid now."""
        chain = [leaf]
        current = leaf
        while len(chain) < MAX_CHAIN:
            check_time(current, now)
            root = next((root for root in self.roots if issued_by(current, root)), None)
            if root is not None:
                check_time(root, now)
                check_ca(root, len(chain) - 1)
                return [*chain, root]
            issuer = next((cert for cert in pool if cert not in chain and issued_by(current, cert)), None)
            if issuer is None:
                raise UntrustedCertificateError(
                    f"certificate chain of {name_of(leaf)!r} does not lead to anchor {self.anchor!r}: "
                    f"{name_of(current)!r} was issued by {current.issuer.rfc4514_string()!r}, which is not an anchor"
                )
            check_ca(issuer, len(chain) - 1)
            chain.append(issuer)
            current = issuer
        raise UntrustedCertificateError(f"certificate chain of {name_of(leaf)!r} is longer than {MAX_CHAIN} certificates")


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_time(certificate: x509.Certificate, now: datetime) -> None:
    if now < certificate.not_valid_before_utc:
        raise UntrustedCertificateError(
            f"certificate {name_of(certificate)!r} is not valid before {certificate.not_valid_before_utc.isoformat()}"
        )
    if now > certificate.not_valid_after_utc:
        raise UntrustedCertificateError(
            f"certificate {name_of(certificate)!r} expired at {certificate.not_valid_after_utc.isoformat()} "
            "(certificate signatures are checked at verification time: re-sign with a current certificate, or use Sigstore)"
        )


def check_ca(certificate: x509.Certificate, below: int) -> None:
    """An issuer must be a CA allowed to sign certificates, with `below` intermediates under it within its path length."""
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise UntrustedCertificateError(f"certificate {name_of(certificate)!r} issues certificates but is not a CA")
    if constraints.path_length is not None and below > constraints.path_length:
        raise UntrustedCertificateError(f"certificate {name_of(certificate)!r} allows {constraints.path_length} intermediates below it")
    usage = _extension(certificate, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise UntrustedCertificateError(f"certificate {name_of(certificate)!r} may not sign certificates (key usage)")


def check_leaf(leaf: x509.Certificate) -> None:
    """The signing certificate is an end entity allowed to sign code: EKU codeSigning and digitalSignature when present."""
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise UntrustedCertificateError(f"signing certificate {name_of(leaf)!r} is a CA certificate, not an end entity")
    usage = _extension(leaf, x509.ExtendedKeyUsage)
    if usage is not None and ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise UntrustedCertificateError(
            f"signing certificate {name_of(leaf)!r} is not allowed to sign code (no codeSigning extended key usage)"
        )
    key_usage = _extension(leaf, x509.KeyUsage)
    if key_usage is not None and not key_usage.digital_signature:
        raise UntrustedCertificateError(f"signing certificate {name_of(leaf)!r} is not allowed to make signatures (key usage)")


def _extension(certificate: x509.Certificate, kind: type[Extension]) -> Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
