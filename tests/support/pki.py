"""A private PKI made in the test: CAs, intermediates and signing leaves with chosen SANs, usages and validity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """`name.pem` (the certificate) and `name.key` (a PKCS#8 private key, as openssl writes it)."""
        folder.mkdir(parents=True, exist_ok=True)
        certificate, key = folder / f"{name}.pem", folder / f"{name}.key"
        certificate.write_bytes(self.pem())
        key.write_bytes(self.key_pem())
        return certificate, key


def _builder(
    subject: x509.Name, issuer: Issued | None, key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer_key = (issuer.key if issuer else key).public_key()
    return builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key), critical=False)


def name(common_name: str, organisation: str = "Bank Example") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    common_name: str, issuer: Issued | None = None, *, not_before: datetime = NOW - YEAR, not_after: datetime = NOW + 5 * YEAR
) -> Issued:
    """A root (self-signed) or an intermediate (signed by `issuer`) that may issue certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name(common_name), issuer, key, not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
        x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
    )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def make_leaf(
    issuer: Issued,
    common_name: str = "model release",
    *,
    emails: Sequence[str] = (),
    uris: Sequence[str] = (),
    code_signing: bool | None = True,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + YEAR,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """A signing certificate; `code_signing=None` leaves the EKU extension out, `False` names only serverAuth."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name(common_name), issuer, key, not_before, not_after)
    builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
    if code_signing is not None:
        usage = ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    general = [x509.RFC822Name(email) for email in emails] + [x509.UniformResourceIdentifier(uri) for uri in uris]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)
