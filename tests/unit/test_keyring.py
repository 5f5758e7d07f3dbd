"""The server's keyring: public material only, one active key, rotation, revocation, validity windows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealserve.bundle import keys
from sealserve.bundle.keyring import KeyEntry, Keyring, KeyStatus, entry_for
from sealserve.errors import KeyNotValidError, KeyringError, RevokedKeyError, UnknownKeyError
from sealserve.trust.verify import verify_bundle

NOW = datetime(2030, 6, 1, tzinfo=UTC)


def test_saved_keyring_holds_the_public_key_and_no_private_material(tmp_path: Path) -> None:
    key = keys.generate(keys.Algorithm.ECDSA_P256, "signer")
    path = tmp_path / "keyring.json"
    Keyring().add(entry_for(key)).save(path)
    text = path.read_text()
    private_pem = keys.dump_private_key(key).decode()
    private_body = private_pem.split("-----BEGIN PRIVATE KEY-----")[1].split("-----END")[0].strip().splitlines()
    assert "PRIVATE" not in text
    assert all(line not in text for line in private_body)
    [entry] = json.loads(text)["keys"]
    assert entry["kid"] == "signer"
    assert entry["alg"] == "ES256"
    assert entry["status"] == "active"
    assert keys.load_public_key(entry["public_key"]).public_numbers() == key.public_key.public_numbers()  # type: ignore[union-attr]
    assert Keyring.load(path).keys[0].fingerprint() == key.hint


def test_hmac_entries_name_where_the_secret_lives_never_the_secret(tmp_path: Path) -> None:
    key = keys.generate(keys.Algorithm.HMAC_SHA256, "team-key")
    secret_file = tmp_path / "team.pem"
    keys.write_private_key(key, secret_file)
    path = tmp_path / "keyring.json"
    Keyring().add(entry_for(key, secret_file=secret_file)).save(path)
    text = path.read_text()
    assert key.secret is not None
    assert base64.b64encode(key.secret).decode() not in text
    assert key.secret.hex() not in text
    loaded = Keyring.load(path).keys[0]
    assert loaded.alg == "HS256"
    assert loaded.secret_file == str(secret_file)
    assert loaded.secret() == key.secret
    by_env = entry_for(key)
    assert by_env.secret_env == "SEALSERVE_HMAC_TEAM_KEY"
    assert by_env.secret_file is None


def test_hmac_secret_from_an_unset_environment_variable_is_a_keyring_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEALSERVE_HMAC_TEAM_KEY", raising=False)
    entry = entry_for(keys.generate(keys.Algorithm.HMAC_SHA256, "team-key"))
    with pytest.raises(KeyringError, match="SEALSERVE_HMAC_TEAM_KEY is not set"):
        entry.secret()


def test_adding_an_active_key_makes_the_previous_one_retiring() -> None:
    first, second, third = (keys.generate(keys.Algorithm.ECDSA_P256, kid) for kid in ("first", "second", "third"))
    ring = Keyring().add(entry_for(first)).add(entry_for(second)).add(entry_for(third))
    assert [(entry.kid, entry.status) for entry in ring.keys] == [
        ("first", KeyStatus.RETIRING),
        ("second", KeyStatus.RETIRING),
        ("third", KeyStatus.ACTIVE),
    ]


def test_a_keyring_file_with_two_active_keys_is_refused(tmp_path: Path) -> None:
    entries = [entry_for(keys.generate(keys.Algorithm.ED25519, kid)).model_dump(mode="json", exclude_none=True) for kid in ("a", "b")]
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps({"keys": entries}))
    with pytest.raises(KeyringError, match="more than one active key"):
        Keyring.load(path)


def test_duplicate_kids_are_refused() -> None:
    ring = Keyring().add(entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "same")))
    with pytest.raises(KeyringError, match="key 'same' is already in the keyring"):
        ring.add(entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "same")))


def test_revoke_marks_the_key_and_unknown_kids_are_an_error() -> None:
    ring = Keyring().add(entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "old")))
    revoked = ring.revoke("old")
    assert revoked.keys[0].status is KeyStatus.REVOKED
    assert ring.keys[0].status is KeyStatus.ACTIVE  # keyrings are values: revoke returns a new one
    with pytest.raises(KeyringError, match="no key 'missing'"):
        ring.revoke("missing")


def test_timestamps_without_a_time_zone_are_refused(tmp_path: Path) -> None:
    entry = entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "naive")).model_dump(mode="json", exclude_none=True)
    entry["expires"] = "2031-01-01T00:00:00"
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(KeyringError, match=r"keys\.0\.expires: Input should have timezone info"):
        Keyring.load(path)


@pytest.mark.parametrize(
    ("window", "error", "message"),
    [
        ({"status": KeyStatus.REVOKED}, RevokedKeyError, "key 'w' is revoked"),
        ({"not_before": NOW + timedelta(days=1)}, KeyNotValidError, "key 'w' is not valid before 2030-06-02"),
        ({"expires": NOW}, KeyNotValidError, "key 'w' expired at 2030-06-01"),
        ({"expires": NOW - timedelta(seconds=1)}, KeyNotValidError, "key 'w' expired at 2030-05-31"),
    ],
)
def test_unusable_keys_are_refused_with_their_own_error(window: dict[str, object], error: type[Exception], message: str) -> None:
    entry = entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "w")).model_copy(update={"not_before": None, **window})
    with pytest.raises(error, match=message):
        entry.check_usable(NOW)


@pytest.mark.parametrize("status", [KeyStatus.ACTIVE, KeyStatus.RETIRING])
def test_active_and_retiring_keys_inside_their_window_are_usable(status: KeyStatus) -> None:
    entry = entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "w")).model_copy(
        update={"status": status, "not_before": NOW - timedelta(days=1), "expires": NOW + timedelta(days=1)}
    )
    entry.check_usable(NOW)


def test_find_by_kid_or_by_public_key_hint() -> None:
    key = keys.generate(keys.Algorithm.ECDSA_P256, "signer")
    ring = Keyring().add(entry_for(key))
    assert ring.find("signer", key.hint).kid == "signer"
    assert ring.find("", key.hint).kid == "signer"  # model_signing leaves the keyid empty and sends the hint
    with pytest.raises(UnknownKeyError, match="signer key 'stranger' is not in the keyring"):
        ring.find("stranger", "")
    with pytest.raises(UnknownKeyError, match="fingerprint"):
        ring.find("", keys.generate(keys.Algorithm.ECDSA_P256).hint)


def test_a_kid_that_collides_with_a_trusted_kid_but_carries_another_key_is_unknown() -> None:
    trusted = keys.generate(keys.Algorithm.ECDSA_P256, "signer")
    impostor = keys.generate(keys.Algorithm.ECDSA_P256, "signer")
    ring = Keyring().add(entry_for(trusted))
    with pytest.raises(UnknownKeyError, match="key 'signer' in the keyring does not match the signature's key hint"):
        ring.find(impostor.kid, impostor.hint)


def test_entries_must_carry_material_matching_their_algorithm() -> None:
    ed_pem = keys.public_pem(keys.generate(keys.Algorithm.ED25519).public_key).decode()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="public_key is not an ES256 key"):
        KeyEntry(kid="k", alg="ES256", public_key=ed_pem)
    with pytest.raises(ValueError, match="exactly one of secret_env or secret_file"):
        KeyEntry(kid="k", alg="HS256", secret_env="A", secret_file="/b")
    with pytest.raises(ValueError, match="needs public_key"):
        KeyEntry(kid="k", alg="EdDSA", secret_env="A")


def test_rotation_keeps_old_bundles_verifying_and_revocation_refuses_them(
    packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    """The bundle was signed by `signing_key`; rotate to a new key, then revoke the old one."""
    rotated = Keyring().add(entry_for(signing_key)).add(entry_for(keys.generate(keys.Algorithm.ECDSA_P256, "next")))
    assert rotated.keys[0].status is KeyStatus.RETIRING
    verified = verify_bundle(packed_bundle, rotated)
    verified.discard()
    assert verified.signer.kid == signing_key.kid
    with pytest.raises(RevokedKeyError, match=f"key '{signing_key.kid}' is revoked"):
        verify_bundle(packed_bundle, rotated.revoke(signing_key.kid))


def test_unreadable_or_malformed_keyring_files_are_keyring_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read keyring"):
        Keyring.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(KeyringError, match=r"broken.json is invalid"):
        Keyring.load(broken)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"keys": [], "trust_everything": True}))
    with pytest.raises(KeyringError, match="trust_everything"):
        Keyring.load(extra)


def test_hmac_secret_from_the_environment_is_base64_as_keygen_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    key = keys.generate(keys.Algorithm.HMAC_SHA256, "team-key")
    entry = entry_for(key)
    assert key.secret is not None
    monkeypatch.setenv("SEALSERVE_HMAC_TEAM_KEY", base64.b64encode(key.secret).decode())
    assert entry.secret() == key.secret
    monkeypatch.setenv("SEALSERVE_HMAC_TEAM_KEY", "not base64!")
    with pytest.raises(KeyringError, match="base64"):
        entry.secret()
