"""Signing keys: the three algorithms round-trip, key files are private and never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealserve.bundle import keys
from sealserve.errors import KeyringError

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


@pytest.mark.parametrize("algorithm", [keys.Algorithm.ECDSA_P256, keys.Algorithm.ED25519])
def test_asymmetric_signatures_verify_only_the_signed_message(algorithm: keys.Algorithm) -> None:
    key = keys.generate(algorithm)
    assert key.public_key is not None
    signature = key.sign(MESSAGE)
    assert keys.verify_signature(key.public_key, signature, MESSAGE)
    assert not keys.verify_signature(key.public_key, signature, MESSAGE + b" ")
    assert not keys.verify_signature(keys.generate(algorithm).public_key, signature, MESSAGE)  # type: ignore[arg-type]
    assert keys.algorithm_of(key.public_key) is algorithm


def test_hmac_signatures_verify_only_with_the_same_secret() -> None:
    key = keys.generate(keys.Algorithm.HMAC_SHA256, "shared")
    assert key.secret is not None
    assert len(key.secret) == 32
    signature = key.sign(MESSAGE)
    assert keys.verify_hmac(key.secret, signature, MESSAGE)
    assert not keys.verify_hmac(b"another secret", signature, MESSAGE)
    assert not keys.verify_hmac(key.secret, signature, MESSAGE + b" ")
    assert key.hint == "shared"  # no public key: the hint is the kid


def test_default_kid_and_hint_come_from_the_public_key() -> None:
    key = keys.generate(keys.Algorithm.ECDSA_P256)
    assert key.public_key is not None
    assert key.hint == keys.fingerprint(key.public_key)
    assert key.kid == key.hint[:16]
    assert keys.generate(keys.Algorithm.ED25519, "named").kid == "named"


@pytest.mark.parametrize("algorithm", list(keys.Algorithm))
def test_private_key_files_round_trip_kid_algorithm_and_signing(algorithm: keys.Algorithm, tmp_path: Path) -> None:
    key = keys.generate(algorithm, f"kid-{algorithm.value}")
    path = tmp_path / "key.pem"
    keys.write_private_key(key, path)
    loaded = keys.read_private_key(path)
    assert (loaded.kid, loaded.algorithm) == (key.kid, algorithm)
    if algorithm is keys.Algorithm.HMAC_SHA256:
        assert loaded.secret == key.secret
    else:
        assert key.public_key is not None
        assert keys.verify_signature(key.public_key, loaded.sign(MESSAGE), MESSAGE)


def test_private_key_file_is_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        keys.write_private_key(keys.generate(keys.Algorithm.ECDSA_P256), tmp_path / "key.pem")
        keys.write_private_key(keys.generate(keys.Algorithm.HMAC_SHA256), tmp_path / "hmac.pem")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "hmac.pem").stat().st_mode) == 0o600


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    keys.write_private_key(keys.generate(keys.Algorithm.ECDSA_P256, "first"), path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keys.write_private_key(keys.generate(keys.Algorithm.ECDSA_P256, "second"), path)
    assert path.read_bytes() == before


def test_encrypted_key_needs_the_password_which_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keys.PASSWORD_ENV, raising=False)
    path = tmp_path / "key.pem"
    keys.write_private_key(keys.generate(keys.Algorithm.ECDSA_P256, "locked"), path, password=b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    with pytest.raises(KeyringError, match="not a usable PEM private key"):
        keys.read_private_key(path)
    with pytest.raises(KeyringError, match="not a usable PEM private key"):
        keys.read_private_key(path, password=b"wrong")
    monkeypatch.setenv(keys.PASSWORD_ENV, "correct horse")
    assert keys.read_private_key(path).kid == "locked"


def test_a_plain_pkcs8_pem_from_openssl_is_accepted_with_a_derived_kid(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "openssl.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    loaded = keys.read_private_key(path)
    assert loaded.kid == keys.default_kid(private.public_key())
    assert loaded.algorithm is keys.Algorithm.ECDSA_P256


def test_unsupported_private_keys_are_refused(tmp_path: Path) -> None:
    rsa_path = tmp_path / "rsa.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_path.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(KeyringError, match="unsupported"):
        keys.read_private_key(rsa_path)
    with pytest.raises(KeyringError, match="cannot read private key"):
        keys.read_private_key(tmp_path / "missing.pem")


def test_only_p256_and_ed25519_public_keys_are_supported() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KeyringError, match="unsupported public key"):
        keys.load_public_key(pem)
    with pytest.raises(KeyringError, match="not a valid PEM"):
        keys.load_public_key("-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----\n")


def test_hmac_key_file_without_its_kid_is_refused(tmp_path: Path) -> None:
    key = keys.generate(keys.Algorithm.HMAC_SHA256, "shared")
    path = tmp_path / "hmac.pem"
    path.write_bytes(keys.dump_private_key(key).split(b"\n", 2)[2])  # drop the sealserve-kid / -alg header lines
    with pytest.raises(KeyringError, match="no sealserve-kid"):
        keys.read_private_key(path)


def test_algorithm_names_map_between_cli_and_keyring() -> None:
    assert [algorithm.jwa for algorithm in keys.Algorithm] == ["ES256", "EdDSA", "HS256"]
    assert keys.Algorithm.from_jwa("EdDSA") is keys.Algorithm.ED25519
    with pytest.raises(KeyringError, match="unknown key algorithm 'RS256'"):
        keys.Algorithm.from_jwa("RS256")
