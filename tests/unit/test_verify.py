"""Verification: every way a bundle can differ from what the keyring's signer signed is refused, with its own error."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealserve.bundle import envelope, files, keys
from sealserve.bundle.keyring import Keyring, entry_for
from sealserve.errors import (
    BadSignatureError,
    BundleFormatError,
    DigestMismatchError,
    ExtraFileError,
    IdentityMismatchError,
    KeyNotValidError,
    MissingFileError,
    RevokedKeyError,
    SignatureFormatError,
    UnknownKeyError,
    UnsafePathError,
)
from sealserve.packing.build import sign_folder
from sealserve.trust.verify import verify_bundle
from tests.support.tamper import flip_byte


@pytest.fixture(params=["folder", "zip"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every refusal must hold for a bundle folder and for the same bundle as one .zip archive."""
    return str(request.param)


def shipped(folder: Path, transport: str) -> Path:
    if transport == "folder":
        return folder
    archive = folder.with_suffix(".zip")
    files.write_zip(folder, archive)
    return archive


def test_a_good_bundle_verifies_into_a_private_copy(
    packed_bundle: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, transport: str, tmp_path: Path
) -> None:
    source = shipped(shutil.copytree(packed_bundle, tmp_path / "b"), transport)
    verified = verify_bundle(source, trusted_keyring, name="risk", version="1.0.0")
    try:
        assert (verified.metadata.name, verified.metadata.version) == ("risk", "1.0.0")
        assert verified.signer.kid == signing_key.kid
        assert verified.digest == envelope.root_digest(verified.file_digests)
        assert verified.path != source
        assert not verified.path.is_relative_to(tmp_path)
        assert stat.S_IMODE(verified.path.stat().st_mode) == 0o700
        assert verified.model_path.read_bytes() == (packed_bundle / "model.skops").read_bytes()
    finally:
        verified.discard()
    assert not verified.path.exists()


def test_a_changed_model_byte_is_refused_naming_the_file(bundle_copy: Path, trusted_keyring: Keyring, transport: str) -> None:
    flip_byte(bundle_copy / "model.skops")
    with pytest.raises(DigestMismatchError, match=r"SHA-256 mismatch for model\.skops"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_changed_metadata_is_refused_naming_the_file(bundle_copy: Path, trusted_keyring: Keyring, transport: str) -> None:
    metadata = bundle_copy / "sealserve.json"
    metadata.write_text(metadata.read_text().replace('"version": "1.0.0"', '"version": "9.0.0"'))
    with pytest.raises(DigestMismatchError, match=r"SHA-256 mismatch for sealserve\.json"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_missing_file_is_refused_naming_it(bundle_copy: Path, trusted_keyring: Keyring, transport: str) -> None:
    (bundle_copy / "reports" / "profile.html").unlink()
    with pytest.raises(MissingFileError, match=r"signed file missing from bundle: reports/profile\.html"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


@pytest.mark.parametrize("extra", ["extra.txt", "reports/injected.html", ".git/config", ".gitattributes"])
def test_an_extra_file_is_refused_naming_it_even_where_model_signing_ignores_paths(
    bundle_copy: Path, trusted_keyring: Keyring, transport: str, extra: str
) -> None:
    (bundle_copy / extra).parent.mkdir(exist_ok=True)
    (bundle_copy / extra).write_text("not signed")
    with pytest.raises(ExtraFileError, match=f"file not covered by the signature: {extra}"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_bundle_without_a_signature_is_refused(bundle_copy: Path, trusted_keyring: Keyring, transport: str) -> None:
    (bundle_copy / "model.sig").unlink()
    with pytest.raises(SignatureFormatError, match=r"bundle has no model\.sig"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_garbage_signature_file_is_refused(bundle_copy: Path, trusted_keyring: Keyring) -> None:
    (bundle_copy / "model.sig").write_text('{"mediaType": "text/plain"}')
    with pytest.raises(SignatureFormatError, match=r"model\.sig"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_a_signer_outside_the_keyring_is_refused_naming_the_key(bundle_copy: Path, trusted_keyring: Keyring, transport: str) -> None:
    sign_folder(bundle_copy, keys.generate(keys.Algorithm.ECDSA_P256, "stranger"), subject="risk")
    with pytest.raises(UnknownKeyError, match="signer key 'stranger' is not in the keyring"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_bundle_never_brings_its_own_trust(bundle_copy: Path, trusted_keyring: Keyring) -> None:
    """A stranger ships their public key and a keyring inside the bundle and signs it all: still unknown."""
    stranger = keys.generate(keys.Algorithm.ECDSA_P256, "stranger")
    (bundle_copy / "keyring.json").write_text(json.dumps(Keyring().add(entry_for(stranger)).model_dump(mode="json", exclude_none=True)))
    sign_folder(bundle_copy, stranger, subject="risk")
    with pytest.raises(UnknownKeyError, match="'stranger'"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_the_key_is_checked_before_the_files(bundle_copy: Path, trusted_keyring: Keyring) -> None:
    sign_folder(bundle_copy, keys.generate(keys.Algorithm.ECDSA_P256, "stranger"), subject="risk")
    flip_byte(bundle_copy / "model.skops")
    (bundle_copy / "extra.txt").write_text("x")
    with pytest.raises(UnknownKeyError):
        verify_bundle(bundle_copy, trusted_keyring)


def test_a_revoked_key_refuses_even_bundles_signed_before_the_revocation(
    packed_bundle: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, transport: str, tmp_path: Path
) -> None:
    source = shipped(shutil.copytree(packed_bundle, tmp_path / "b"), transport)
    with pytest.raises(RevokedKeyError, match=f"key '{signing_key.kid}' is revoked"):
        verify_bundle(source, trusted_keyring.revoke(signing_key.kid))


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"expires": datetime(2020, 1, 1, tzinfo=UTC)}, "expired at 2020-01-01"),
        ({"not_before": datetime(2100, 1, 1, tzinfo=UTC)}, "is not valid before 2100-01-01"),
    ],
)
def test_a_key_outside_its_validity_window_is_refused(
    packed_bundle: Path, signing_key: keys.SigningKey, window: dict[str, datetime], message: str
) -> None:
    entry = entry_for(signing_key).model_copy(update={"not_before": None, **window})
    with pytest.raises(KeyNotValidError, match=f"key '{signing_key.kid}' {message}"):
        verify_bundle(packed_bundle, Keyring(keys=[entry]))


def test_validity_is_judged_at_the_time_of_verification(packed_bundle: Path, signing_key: keys.SigningKey) -> None:
    expires = datetime(2031, 1, 1, tzinfo=UTC)
    ring = Keyring(keys=[entry_for(signing_key, expires=expires).model_copy(update={"not_before": None})])
    verify_bundle(packed_bundle, ring, now=expires - timedelta(seconds=1)).discard()
    with pytest.raises(KeyNotValidError):
        verify_bundle(packed_bundle, ring, now=expires)


def test_a_damaged_signature_is_refused_naming_the_key(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, transport: str
) -> None:
    document = json.loads((bundle_copy / "model.sig").read_text())
    signature = bytearray(base64.b64decode(document["dsseEnvelope"]["signatures"][0]["sig"]))
    signature[-1] ^= 0x01
    document["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(signature)).decode()
    (bundle_copy / "model.sig").write_text(json.dumps(document))
    with pytest.raises(BadSignatureError, match=f"signature does not verify with key '{signing_key.kid}'"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_rewritten_manifest_with_consistent_digests_but_the_old_signature_is_refused(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, transport: str
) -> None:
    """The attacker changes the model and updates every digest in the statement, but cannot re-sign it."""
    flip_byte(bundle_copy / "model.skops")
    listed = files.list_files(bundle_copy)
    del listed["model.sig"]
    forged = json.loads(envelope.sign("risk", files.digest_files(listed), keys.generate(keys.Algorithm.ECDSA_P256, signing_key.kid)))
    document = json.loads((bundle_copy / "model.sig").read_text())
    document["dsseEnvelope"]["payload"] = forged["dsseEnvelope"]["payload"]
    (bundle_copy / "model.sig").write_text(json.dumps(document))
    with pytest.raises(BadSignatureError, match=f"key '{signing_key.kid}'"):
        verify_bundle(shipped(bundle_copy, transport), trusted_keyring)


def test_a_signature_by_another_key_claiming_a_trusted_kid_is_refused(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    impostor = keys.generate(keys.Algorithm.ECDSA_P256, signing_key.kid)
    sign_folder(bundle_copy, impostor, subject="risk")
    with pytest.raises(UnknownKeyError, match=f"key '{signing_key.kid}' in the keyring does not match the signature's key hint"):
        verify_bundle(bundle_copy, trusted_keyring)
    # Copying the trusted key's hint as well only moves the refusal to the signature check.
    document = json.loads((bundle_copy / "model.sig").read_text())
    document["verificationMaterial"]["publicKey"]["hint"] = signing_key.hint
    (bundle_copy / "model.sig").write_text(json.dumps(document))
    with pytest.raises(BadSignatureError):
        verify_bundle(bundle_copy, trusted_keyring)


def test_an_ed25519_signature_cannot_pass_for_the_trusted_ecdsa_key(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    sign_folder(bundle_copy, keys.generate(keys.Algorithm.ED25519, signing_key.kid), subject="risk")
    document = json.loads((bundle_copy / "model.sig").read_text())
    document["verificationMaterial"]["publicKey"]["hint"] = ""
    (bundle_copy / "model.sig").write_text(json.dumps(document))
    with pytest.raises(BadSignatureError):
        verify_bundle(bundle_copy, trusted_keyring)


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [("other", None, "signed as 'risk', but 'other'"), (None, "2.0.0", "signed as version '1.0.0', but '2.0.0'")],
)
def test_a_bundle_requested_under_another_name_or_version_is_refused(
    packed_bundle: Path, trusted_keyring: Keyring, name: str | None, version: str | None, message: str
) -> None:
    with pytest.raises(IdentityMismatchError, match=message):
        verify_bundle(packed_bundle, trusted_keyring, name=name, version=version)


def test_ed25519_bundles_round_trip(bundle_copy: Path) -> None:
    key = keys.generate(keys.Algorithm.ED25519, "ed")
    sign_folder(bundle_copy, key, subject="risk")
    verified = verify_bundle(bundle_copy, Keyring().add(entry_for(key)))
    verified.discard()
    assert verified.signer.alg == "EdDSA"


def test_hmac_bundles_verify_with_the_shared_secret_and_not_with_another(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keys.generate(keys.Algorithm.HMAC_SHA256, "team")
    secret_file = tmp_path / "team.pem"
    keys.write_private_key(key, secret_file)
    sign_folder(bundle_copy, key, subject="risk")
    verified = verify_bundle(bundle_copy, Keyring().add(entry_for(key, secret_file=secret_file)))
    verified.discard()
    assert verified.signer.kid == "team"
    monkeypatch.setenv("SEALSERVE_HMAC_TEAM", base64.b64encode(b"a different shared secret of 32 bytes").decode())
    with pytest.raises(BadSignatureError, match="key 'team'"):
        verify_bundle(bundle_copy, Keyring().add(entry_for(key)))  # secret from $SEALSERVE_HMAC_TEAM
    assert key.secret is not None
    monkeypatch.setenv("SEALSERVE_HMAC_TEAM", base64.b64encode(key.secret).decode())
    verify_bundle(bundle_copy, Keyring().add(entry_for(key))).discard()


def test_a_signed_symlink_is_refused_before_anything_is_read(bundle_copy: Path, trusted_keyring: Keyring, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (bundle_copy / "reports" / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UnsafePathError, match=r"symbolic link 'reports/link\.txt'"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_metadata_naming_another_model_file_is_refused(bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey) -> None:
    metadata = json.loads((bundle_copy / "sealserve.json").read_text())
    metadata["model_file"] = "reports/profile.html"
    (bundle_copy / "sealserve.json").write_text(json.dumps(metadata))
    sign_folder(bundle_copy, signing_key, subject="risk")
    with pytest.raises(BundleFormatError, match=r"model file 'reports/profile\.html'"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_invalid_signed_metadata_is_refused_naming_the_field(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    metadata = json.loads((bundle_copy / "sealserve.json").read_text())
    metadata["format"] = "pickle"
    (bundle_copy / "sealserve.json").write_text(json.dumps(metadata))
    sign_folder(bundle_copy, signing_key, subject="risk")
    with pytest.raises(BundleFormatError, match=r"sealserve\.json is invalid at format"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_a_failed_verification_leaves_no_staged_copy(
    bundle_copy: Path, trusted_keyring: Keyring, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    staging_root = tmp_path / "tmp"
    staging_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging_root))
    flip_byte(bundle_copy / "model.skops")
    with pytest.raises(DigestMismatchError):
        verify_bundle(bundle_copy, trusted_keyring)
    assert list(staging_root.iterdir()) == []


def test_the_digest_is_the_model_signing_subject_digest(packed_bundle: Path, trusted_keyring: Keyring) -> None:
    verified = verify_bundle(packed_bundle, trusted_keyring)
    verified.discard()
    statement = json.loads(envelope.parse((packed_bundle / "model.sig").read_bytes()).payload)
    assert verified.digest == statement["subject"][0]["digest"]["sha256"]
    model_digest = hashlib.sha256((packed_bundle / "model.skops").read_bytes()).hexdigest()
    assert verified.file_digests["model.skops"] == model_digest
