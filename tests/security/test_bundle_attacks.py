"""Attacks on a signed bundle's files, signature, keys and identity: each is refused before the live payload is read.

Every case starts from `evil_bundle` (trusted-signed, its model a marker-writing pickle that the pickle-trusting
`attempt` would run), changes it as an attacker or a misconfiguration would, and must be refused with its own error
type and no marker. The controls show the untouched bundle does write the marker.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealserve.bundle import envelope, files, keys
from sealserve.bundle.keyring import KeyEntry, Keyring, KeyStatus, entry_for
from sealserve.bundle.metadata import METADATA_FILE
from sealserve.errors import (
    BadSignatureError,
    BundleFormatError,
    DigestMismatchError,
    ExtraFileError,
    IdentityMismatchError,
    KeyNotValidError,
    KeyringError,
    MissingFileError,
    RevokedKeyError,
    SignatureFormatError,
    UnknownKeyError,
    UnsafeModelError,
    UntrustedCertificateError,
)
from sealserve.packing.build import sign_folder
from tests.conftest import BUNDLE_NAME
from tests.security.conftest import Attempt
from tests.support.tamper import flip_byte, padding_offset

SIGNER = "test-signer"  # the kid of the session's trusted key


@dataclass
class Scene:
    """What one case hands to `attempt`: the keyring the server trusts and the identity it asks for."""

    bundle: Path
    key: keys.SigningKey
    keyring: Keyring
    root: Path
    ask: dict[str, str] = field(default_factory=dict)


def resign(scene: Scene, key: keys.SigningKey | None = None) -> None:
    sign_folder(scene.bundle, key or scene.key, subject=BUNDLE_NAME)


def edit_signature(scene: Scene, change: Callable[[dict[str, Any]], None]) -> None:
    path = scene.bundle / files.SIGNATURE_FILE
    document = json.loads(path.read_bytes())
    change(document)
    path.write_text(json.dumps(document))


def sign_payload(scene: Scene, payload: bytes, key: keys.SigningKey | None = None) -> None:
    """A model.sig whose statement is exactly `payload`, correctly signed (the signer's tool or key is the attacker's)."""
    key = key or scene.key
    document = json.loads(envelope.sign(BUNDLE_NAME, {}, key))
    document["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    document["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(key.sign(envelope.pae(payload))).decode()
    (scene.bundle / files.SIGNATURE_FILE).write_text(json.dumps(document))


def sign_manifest(scene: Scene, rename: Callable[[str], str]) -> None:
    """Correctly sign a manifest whose file names are `rename`d; the files on disk keep their names."""
    digests = files.digest_files({name: path for name, path in files.list_files(scene.bundle).items() if name != files.SIGNATURE_FILE})
    renamed = {rename(name): digest for name, digest in digests.items()}
    (scene.bundle / files.SIGNATURE_FILE).write_bytes(envelope.sign(BUNDLE_NAME, renamed, scene.key))


def edit_metadata(scene: Scene, change: Callable[[dict[str, Any]], None]) -> None:
    path = scene.bundle / METADATA_FILE
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))
    resign(scene)


def stranger(kid: str = "stranger") -> keys.SigningKey:
    return keys.generate(keys.Algorithm.ECDSA_P256, kid)


def trusted_with(scene: Scene, **update: Any) -> None:
    scene.keyring = Keyring(keys=[entry_for(scene.key).model_copy(update=update)])


def hmac_keyring(scene: Scene, secret: bytes, *, via_file: bytes | None = None) -> None:
    """Sign with an HMAC `secret` and trust a keyring entry whose secret file holds `via_file` (default: the same bytes)."""
    attacker = keys.SigningKey("team", keys.Algorithm.HMAC_SHA256, secret=secret)
    resign(scene, attacker)
    secret_file = scene.root / "team.pem"
    header = b"sealserve-kid: team\nsealserve-alg: hmac-sha256\n"
    body = base64.encodebytes(secret if via_file is None else via_file)
    secret_file.write_bytes(header + b"-----BEGIN SEALSERVE HMAC SECRET-----\n" + body + b"-----END SEALSERVE HMAC SECRET-----\n")
    scene.keyring = Keyring(keys=[KeyEntry(kid="team", alg="HS256", secret_file=str(secret_file))])


def hmac_secret_is_a_private_key(scene: Scene) -> None:
    """An HS256 entry pointing at an ECDSA key file once read as the empty secret."""
    resign(scene, keys.SigningKey("team", keys.Algorithm.HMAC_SHA256, secret=b""))
    key_file = scene.root / "ec.pem"
    keys.write_private_key(stranger("team"), key_file)
    scene.keyring = Keyring(keys=[KeyEntry(kid="team", alg="HS256", secret_file=str(key_file))])


def hmac_signed_with_the_public_key(scene: Scene) -> None:
    """Algorithm confusion: HMAC keyed with the trusted key's public PEM, under the trusted kid."""
    assert scene.key.public_key is not None
    resign(scene, keys.SigningKey(SIGNER, keys.Algorithm.HMAC_SHA256, secret=keys.public_pem(scene.key.public_key)))
    edit_signature(scene, lambda d: d["verificationMaterial"]["publicKey"].update(hint=scene.key.hint))


def kid_of_the_trusted_key(scene: Scene, *, keep_hint: bool) -> None:
    attacker = stranger(SIGNER)
    resign(scene, attacker)
    if not keep_hint:
        edit_signature(scene, lambda d: d["verificationMaterial"]["publicKey"].update(hint=scene.key.hint))


def embedded_public_key(scene: Scene) -> None:
    """The bundle carries its signer's public key and an empty kid; only the keyring is ever asked."""
    attacker = stranger()
    assert attacker.public_key is not None
    resign(scene, attacker)
    pem = base64.b64encode(keys.public_pem(attacker.public_key)).decode()
    edit_signature(scene, lambda d: d["dsseEnvelope"]["signatures"][0].update(keyid=""))
    edit_signature(scene, lambda d: d["verificationMaterial"].update(publicKey={"hint": attacker.hint, "rawBytes": pem}))


def embedded_certificate(scene: Scene) -> None:
    attacker = stranger()
    resign(scene, attacker)
    chain = {"certificates": [{"rawBytes": base64.b64encode(b"attacker certificate").decode()}]}
    edit_signature(scene, lambda d: d["verificationMaterial"].update(x509CertificateChain=chain, publicKey=None))
    edit_signature(scene, lambda d: d["dsseEnvelope"]["signatures"][0].update(keyid=""))


def duplicate_payload_key(scene: Scene) -> None:
    """Two "payload" keys: this parser and another could each verify a different one."""
    path = scene.bundle / files.SIGNATURE_FILE
    text = path.read_text()
    forged = base64.b64encode(b'{"forged": true}').decode()
    path.write_text(text.replace('"payload":', f'"payload": "{forged}", "payload":', 1))


def duplicate_statement_key(scene: Scene) -> None:
    payload = json.loads(base64.b64decode(json.loads((scene.bundle / files.SIGNATURE_FILE).read_bytes())["dsseEnvelope"]["payload"]))
    text = json.dumps(payload)
    sign_payload(scene, text.replace('"predicate":', '"predicate": {"resources": []}, "predicate":', 1).encode())


def nfd_report_name(scene: Scene) -> None:
    name = unicodedata.normalize("NFC", "reports/caf\u00e9.html")
    (scene.bundle / name).parent.mkdir(exist_ok=True)
    (scene.bundle / name).write_text("café")
    sign_manifest(scene, lambda n: unicodedata.normalize("NFD", n))


def duplicate_metadata_key(scene: Scene) -> None:
    path = scene.bundle / METADATA_FILE
    path.write_text(path.read_text().replace("{", '{"name": "someone-else", ', 1))
    resign(scene)


def renamed_file(scene: Scene) -> None:
    shutil.move(scene.bundle / "reports", scene.bundle / "attachments")


def removed(name: str) -> Callable[[Scene], None]:
    def change(scene: Scene) -> None:
        (scene.bundle / name).unlink()

    return change


def added(name: str) -> Callable[[Scene], None]:
    def change(scene: Scene) -> None:
        (scene.bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (scene.bundle / name).write_bytes(b"[core]\nfsmonitor = touch pwned\n")

    return change


def env_secret(scene: Scene, secret: bytes) -> None:
    resign(scene, keys.SigningKey("team", keys.Algorithm.HMAC_SHA256, secret=secret))
    os.environ["SEALSERVE_HMAC_SECURITY_TEAM"] = base64.b64encode(secret).decode()
    scene.keyring = Keyring(keys=[KeyEntry(kid="team", alg="HS256", secret_env="SEALSERVE_HMAC_SECURITY_TEAM")])


def pin_time(scene: Scene, **window: timedelta) -> None:
    now = datetime.now(UTC)
    trusted_with(scene, **{name: now + offset for name, offset in window.items()})


CASES: list[tuple[str, Callable[[Scene], object], type[Exception], str]] = [
    (
        "flipped-model-byte",
        lambda s: flip_byte(s.bundle / "model.joblib", padding_offset((s.bundle / "model.joblib").read_bytes())),
        DigestMismatchError,
        r"SHA-256 mismatch for model\.joblib",
    ),
    ("flipped-metadata-byte", lambda s: flip_byte(s.bundle / METADATA_FILE), DigestMismatchError, r"mismatch for sealserve\.json"),
    ("appended-bytes", lambda s: (s.bundle / "model.joblib").open("ab").write(b"\x00"), DigestMismatchError, "mismatch for model"),
    ("extra-file", added("extra.txt"), ExtraFileError, "not covered by the signature: extra.txt"),
    ("extra-dot-git", added(".git/config"), ExtraFileError, r"not covered by the signature: \.git/config"),
    ("missing-report", removed("reports/profile.html"), MissingFileError, "missing from bundle: reports/profile.html"),
    ("renamed-folder", renamed_file, MissingFileError, "missing from bundle: reports/profile.html"),
    ("unsigned", removed(files.SIGNATURE_FILE), SignatureFormatError, "bundle has no model.sig"),
    ("empty-signature", lambda s: (s.bundle / files.SIGNATURE_FILE).write_bytes(b""), SignatureFormatError, "not a Sigstore bundle"),
    ("unknown-key", lambda s: resign(s, stranger()), UnknownKeyError, "signer key 'stranger' is not in the keyring"),
    (
        "trusted-kid-other-key",
        lambda s: kid_of_the_trusted_key(s, keep_hint=True),
        UnknownKeyError,
        "does not match the signature's key hint",
    ),
    ("trusted-kid-and-hint-other-key", lambda s: kid_of_the_trusted_key(s, keep_hint=False), BadSignatureError, "does not verify"),
    ("embedded-public-key", embedded_public_key, UnknownKeyError, "fingerprint .* is not in the keyring"),
    (
        "embedded-certificate",
        embedded_certificate,
        UntrustedCertificateError,
        r"signed by certificate, and the trust policy \(keyring\) names no certificate anchor",
    ),
    ("revoked-key", lambda s: trusted_with(s, status=KeyStatus.REVOKED), RevokedKeyError, "is revoked"),
    ("expired-key", lambda s: pin_time(s, expires=-timedelta(days=1)), KeyNotValidError, "expired at"),
    ("not-yet-valid-key", lambda s: pin_time(s, not_before=timedelta(days=1)), KeyNotValidError, "is not valid before"),
    ("hmac-keyed-with-public-key", hmac_signed_with_the_public_key, BadSignatureError, "does not verify"),
    ("hmac-empty-secret-file", lambda s: hmac_keyring(s, b""), KeyringError, "HMAC secret is 0 bytes; at least 32"),
    ("hmac-short-secret-file", lambda s: hmac_keyring(s, b"0123456789abcdef"), KeyringError, "HMAC secret is 16 bytes"),
    ("hmac-secret-file-is-a-private-key", hmac_secret_is_a_private_key, KeyringError, "holds a private key, not an HMAC secret"),
    ("hmac-short-secret-env", lambda s: env_secret(s, b"short"), KeyringError, "HMAC secret is 5 bytes"),
    (
        "dsse-payload-type",
        lambda s: edit_signature(s, lambda d: d["dsseEnvelope"].update(payloadType="application/json")),
        SignatureFormatError,
        "DSSE payload type 'application/json'",
    ),
    (
        "media-type",
        lambda s: edit_signature(s, lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1")),
        SignatureFormatError,
        "media type",
    ),
    (
        "base64-newline",
        lambda s: edit_signature(
            s, lambda d: d["dsseEnvelope"].update(payload=d["dsseEnvelope"]["payload"][:8] + "\n" + d["dsseEnvelope"]["payload"][8:])
        ),
        SignatureFormatError,
        "not a Sigstore bundle",
    ),
    (
        "base64-urlsafe",
        lambda s: edit_signature(
            s,
            lambda d: d["dsseEnvelope"]["signatures"][0].update(
                sig=base64.urlsafe_b64encode(base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"]) + b"\xfb\xff").decode()
            ),
        ),
        SignatureFormatError,
        "not a Sigstore bundle",
    ),
    (
        "base64-excess-padding",
        lambda s: edit_signature(s, lambda d: d["dsseEnvelope"].update(payload=d["dsseEnvelope"]["payload"] + "====")),
        SignatureFormatError,
        "not a Sigstore bundle",
    ),
    (
        "two-signatures",
        lambda s: edit_signature(s, lambda d: d["dsseEnvelope"]["signatures"].insert(0, {"keyid": SIGNER, "sig": "AAAA"})),
        SignatureFormatError,
        "exactly one signature, found 2",
    ),
    ("duplicate-envelope-key", duplicate_payload_key, SignatureFormatError, "duplicate JSON key 'payload'"),
    ("duplicate-statement-key", duplicate_statement_key, SignatureFormatError, "duplicate JSON key 'predicate'"),
    ("duplicate-metadata-key", duplicate_metadata_key, BundleFormatError, "duplicate JSON key 'name'"),
    ("manifest-dot-slash", lambda s: sign_manifest(s, lambda n: f"./{n}"), SignatureFormatError, r"signed manifest refused path '\./"),
    ("manifest-dot-dot", lambda s: sign_manifest(s, lambda n: f"reports/../{n}"), SignatureFormatError, "signed manifest refused path"),
    ("manifest-backslash", lambda s: sign_manifest(s, lambda n: n.replace("/", "\\")), SignatureFormatError, "backslash"),
    ("manifest-absolute", lambda s: sign_manifest(s, lambda n: f"/{n}"), SignatureFormatError, "refused absolute path"),
    ("manifest-trailing-slash", lambda s: sign_manifest(s, lambda n: f"{n}/"), SignatureFormatError, "signed manifest refused path"),
    ("manifest-case", lambda s: sign_manifest(s, str.upper), MissingFileError, r"MODEL\.JOBLIB"),
    ("manifest-unicode-nfd", nfd_report_name, MissingFileError, "missing from bundle: reports/cafe"),
    ("name-substituted", lambda s: s.ask.update(name="payments"), IdentityMismatchError, "signed as 'risk', but 'payments'"),
    ("version-substituted", lambda s: s.ask.update(version="2.0.0"), IdentityMismatchError, "version '1.0.0', but '2.0.0'"),
    (
        "model-file-pointed-elsewhere",
        lambda s: edit_metadata(s, lambda m: m.update(model_file="reports/profile.html")),
        BundleFormatError,
        "metadata names model file 'reports/profile.html'",
    ),
]


@pytest.fixture
def scene(evil_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path) -> Scene:
    return Scene(evil_bundle, signing_key, trusted_keyring, tmp_path)


def test_control_the_untouched_payload_fires(scene: Scene, attempt: Attempt, marker: Path) -> None:
    attempt(scene.bundle, scene.keyring)
    assert marker.exists()


@pytest.mark.parametrize(("tamper", "error", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_tampered_bundles_are_refused_before_the_payload_is_read(
    scene: Scene,
    attempt: Attempt,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Scene], object],
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.delenv("SEALSERVE_HMAC_SECURITY_TEAM", raising=False)
    tamper(scene)
    try:
        with pytest.raises(error, match=message):
            attempt(scene.bundle, scene.keyring, **scene.ask)
    finally:
        os.environ.pop("SEALSERVE_HMAC_SECURITY_TEAM", None)
    assert not marker.exists()


def test_a_short_hmac_secret_is_refused_when_the_keyring_is_loaded(scene: Scene, tmp_path: Path, marker: Path) -> None:
    hmac_keyring(scene, b"")
    path = tmp_path / "keyring.json"
    scene.keyring.save(path)
    with pytest.raises(KeyringError, match=r"team\.pem: HMAC secret is 0 bytes; at least 32 are required"):
        Keyring.load(path)
    assert not marker.exists()


def test_control_a_32_byte_hmac_secret_verifies(scene: Scene, attempt: Attempt, marker: Path) -> None:
    hmac_keyring(scene, bytes(range(32)))
    attempt(scene.bundle, scene.keyring)
    assert marker.exists()


def test_format_confusion_a_pickle_declared_as_skops_is_never_unpickled(scene: Scene, attempt: Attempt, marker: Path) -> None:
    (scene.bundle / "model.joblib").rename(scene.bundle / "model.skops")
    edit_metadata(scene, lambda m: m.update(format="skops", model_file="model.skops"))
    with pytest.raises(BundleFormatError, match=r"model\.skops is not a readable skops file"):
        attempt(scene.bundle, scene.keyring)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allow_pickle": False}, "needs allow_pickle: true"),
        ({"trusted_types": ()}, r"refers to builtins\.open, which is not on the unpickling allow-list"),
    ],
    ids=["pickle-not-allowed", "restricted-unpickler"],
)
def test_a_correctly_signed_payload_is_refused_by_the_loader(
    scene: Scene, attempt: Attempt, marker: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsafeModelError, match=message):
        attempt(scene.bundle, scene.keyring, **options)
    assert not marker.exists()
