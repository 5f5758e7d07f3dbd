"""Signing keys: generation, the private key file format, and the three signature algorithms."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sealserve.errors import KeyringError

HMAC_PEM_LABEL = "SEALSERVE HMAC SECRET"
PASSWORD_ENV = "SEALSERVE_KEY_PASSWORD"  # noqa: S105
MIN_HMAC_SECRET_BYTES = 32


class Algorithm(str, Enum):
    """Signature algorithms; the value is the CLI name, `jwa` the keyring name."""

    ECDSA_P256 = "ecdsa-p256"
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"

    @property
    def jwa(self) -> str:
        return {"ecdsa-p256": "ES256", "ed25519": "EdDSA", "hmac-sha256": "HS256"}[self.value]

    @classmethod
    def from_jwa(cls, name: str) -> Algorithm:
        for algorithm in cls:
            if algorithm.jwa == name:
                return algorithm
        raise KeyringError(f"unknown key algorithm {name!r} (expected ES256, EdDSA or HS256)")


PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: PublicKey) -> str:
    """SHA-256 of the PEM public key, hex; model_signing records the same value as the key hint."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def load_public_key(pem: bytes | str) -> PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyringError("public key is not a valid PEM SubjectPublicKeyInfo") from None
    return check_supported(key)


def check_supported(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise KeyringError("unsupported public key: use ECDSA P-256 or Ed25519")


def algorithm_of(key: PublicKey) -> Algorithm:
    return Algorithm.ED25519 if isinstance(key, ed25519.Ed25519PublicKey) else Algorithm.ECDSA_P256


def verify_signature(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def verify_hmac(secret: bytes, signature: bytes, message: bytes) -> bool:
    return hmac.compare_digest(hmac_sha256(secret, message), signature)


def check_hmac_secret(secret: bytes, where: str) -> bytes:
    """An empty or short secret would verify signatures anyone can compute (HMAC with the empty key)."""
    if len(secret) < MIN_HMAC_SECRET_BYTES:
        raise KeyringError(f"{where}: HMAC secret is {len(secret)} bytes; at least {MIN_HMAC_SECRET_BYTES} are required (keygen writes 32)")
    return secret


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its key id; HMAC keys hold a shared secret instead."""

    kid: str
    algorithm: Algorithm
    private_key: PrivateKey | None = None
    secret: bytes | None = None

    @property
    def public_key(self) -> PublicKey | None:
        return None if self.private_key is None else self.private_key.public_key()

    @property
    def hint(self) -> str:
        """The value written as the Sigstore bundle's public key hint."""
        public = self.public_key
        return self.kid if public is None else fingerprint(public)

    def sign(self, message: bytes) -> bytes:
        if self.secret is not None:
            return hmac_sha256(self.secret, message)
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(message)
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))
        raise KeyringError("signing key holds neither a private key nor a secret")


def generate(algorithm: Algorithm, kid: str | None = None) -> SigningKey:
    if algorithm is Algorithm.HMAC_SHA256:
        return SigningKey(kid or f"hmac-{secrets.token_hex(8)}", algorithm, secret=secrets.token_bytes(32))
    private: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algorithm is Algorithm.ED25519 else ec.generate_private_key(ec.SECP256R1())
    )
    return SigningKey(kid or default_kid(private.public_key()), algorithm, private_key=private)


def default_kid(key: PublicKey) -> str:
    return fingerprint(key)[:16]


def dump_private_key(key: SigningKey, password: bytes | None = None) -> bytes:
    """PEM body with `sealserve-kid`/`sealserve-alg` header lines (PEM readers skip text before BEGIN)."""
    header = f"sealserve-kid: {key.kid}\nsealserve-alg: {key.algorithm.value}\n".encode()
    if key.secret is not None:
        body = base64.encodebytes(key.secret).decode()
        return header + f"-----BEGIN {HMAC_PEM_LABEL}-----\n{body}-----END {HMAC_PEM_LABEL}-----\n".encode()
    assert key.private_key is not None
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return header + key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def write_private_key(key: SigningKey, path: Path, password: bytes | None = None) -> None:
    """Create the key file readable by its owner only; never overwrite an existing key."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(dump_private_key(key, password))


def read_private_key(path: Path, password: bytes | None = None) -> SigningKey:
    """Read a sealserve key file or a plain PKCS#8 PEM (as made by openssl); password from env if unset."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyringError(f"cannot read private key {path}: {exc.strerror}") from None
    headers = _header_lines(data)
    if password is None and os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV].encode()
    if f"-----BEGIN {HMAC_PEM_LABEL}-----".encode() in data:
        body = data.split(f"-----BEGIN {HMAC_PEM_LABEL}-----".encode())[1].split(b"-----END")[0]
        kid = headers.get("sealserve-kid")
        if not kid:
            raise KeyringError(f"{path}: HMAC key file has no sealserve-kid line")
        try:
            secret = base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error:
            raise KeyringError(f"{path}: HMAC key file does not hold base64") from None
        return SigningKey(kid, Algorithm.HMAC_SHA256, secret=check_hmac_secret(secret, str(path)))
    try:
        private = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"{path}: not a usable PEM private key ({exc})") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyringError(f"{path}: unsupported key type; use ECDSA P-256 or Ed25519")
    public = check_supported(private.public_key())
    return SigningKey(headers.get("sealserve-kid") or default_kid(public), algorithm_of(public), private_key=private)


def _header_lines(data: bytes) -> dict[str, str]:
    preamble = data.split(b"-----BEGIN", 1)[0].decode("utf-8", "replace")
    pairs = (line.split(":", 1) for line in preamble.splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}
