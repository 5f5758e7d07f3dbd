"""The OpenSSF model-signing layout: in-toto statement → DSSE envelope → Sigstore bundle JSON."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sealserve.bundle.files import SIGNATURE_FILE, check_relative_name
from sealserve.bundle.keys import SigningKey
from sealserve.errors import SignatureFormatError, UnsafePathError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MAX_SIGNATURE_BYTES = 16 << 20


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice."""


def strict_json(data: bytes | str) -> Any:
    """JSON with every key at most once per object: parsers disagree on which duplicate wins, so none is accepted."""
    return json.loads(data, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKeyError(f"duplicate JSON key {key!r}")
        found[key] = value
    return found


def pae(payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: the exact bytes that get signed."""
    return b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)


def root_digest(digests: dict[str, str]) -> str:
    """SHA-256 over the per-file digests in name order, as model_signing computes the subject digest."""
    hasher = hashlib.sha256()
    for name in sorted(digests):
        hasher.update(bytes.fromhex(digests[name]))
    return hasher.hexdigest()


def statement(subject: str, digests: dict[str, str]) -> bytes:
    resources = [{"algorithm": "sha256", "digest": digests[name], "name": name} for name in sorted(digests)]
    body = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject, "digest": {"sha256": root_digest(digests)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, "ignore_paths": [SIGNATURE_FILE]},
            "resources": resources,
        },
    }
    return json.dumps(body, indent=2, sort_keys=True).encode()


def sign(subject: str, digests: dict[str, str], key: SigningKey, certificates: tuple[bytes, ...] = ()) -> bytes:
    """The content of model.sig for these file digests; with `certificates` (DER, leaf first) the bundle carries the
    chain instead of a key hint, as `model_signing sign certificate` writes it."""
    payload = statement(subject, digests)
    material: dict[str, Any] = {"publicKey": {"hint": key.hint}, "tlogEntries": []}
    if certificates:
        chain = [{"rawBytes": base64.b64encode(der).decode()} for der in certificates]
        material = {"x509CertificateChain": {"certificates": chain}, "tlogEntries": []}
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(key.sign(pae(payload))).decode(), "keyid": "" if certificates else key.kid}],
        },
    }
    return json.dumps(document, indent=2).encode()


@dataclass(frozen=True)
class Envelope:
    """A parsed, not yet verified model.sig."""

    kid: str
    hint: str
    payload: bytes
    signature: bytes
    certificates: tuple[bytes, ...] = ()  # DER, leaf first: a certificate or Sigstore signature
    logged: bool = False  # the bundle carries transparency-log entries: a Sigstore signature
    raw: bytes = b""  # the whole model.sig, for the Sigstore verifier

    @property
    def method(self) -> str:
        """Which kind of signer made it: a keyring key, a certificate chain, or Sigstore (certificate and log entry)."""
        if not self.certificates:
            return "key"
        return "sigstore" if self.logged else "certificate"

    @property
    def signed_message(self) -> bytes:
        return pae(self.payload)


def parse(data: bytes) -> Envelope:
    """Parse model.sig strictly; nothing here is trusted until the signature checks."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureFormatError(f"{SIGNATURE_FILE} is larger than {MAX_SIGNATURE_BYTES} bytes")
    try:
        document = strict_json(data)
        if document["mediaType"] != BUNDLE_MEDIA_TYPE:
            raise SignatureFormatError(f"{SIGNATURE_FILE}: media type {document['mediaType']!r} is not {BUNDLE_MEDIA_TYPE}")
        dsse = document["dsseEnvelope"]
        if dsse["payloadType"] != PAYLOAD_TYPE:
            raise SignatureFormatError(f"{SIGNATURE_FILE}: DSSE payload type {dsse['payloadType']!r} is not {PAYLOAD_TYPE}")
        signatures = dsse["signatures"]
        if len(signatures) != 1:
            raise SignatureFormatError(f"{SIGNATURE_FILE}: expected exactly one signature, found {len(signatures)}")
        material = document["verificationMaterial"]
        hint = (material.get("publicKey") or {}).get("hint") or ""
        return Envelope(
            kid=str(signatures[0].get("keyid") or ""),
            hint=str(hint),
            payload=canonical_base64(dsse["payload"]),
            signature=canonical_base64(signatures[0]["sig"]),
            certificates=certificates_of(material),
            logged=bool(material.get("tlogEntries")),
            raw=data,
        )
    except SignatureFormatError:
        raise
    except DuplicateKeyError as exc:
        raise SignatureFormatError(f"{SIGNATURE_FILE} is refused: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise SignatureFormatError(f"{SIGNATURE_FILE} is not a Sigstore bundle with a DSSE envelope") from None


def certificates_of(material: dict[str, Any]) -> tuple[bytes, ...]:
    """The DER certificates of a bundle's verification material: a chain (v0.3, model_signing) or one leaf (Sigstore)."""
    if "x509CertificateChain" in material:
        return tuple(base64.b64decode(entry["rawBytes"], validate=True) for entry in material["x509CertificateChain"]["certificates"])
    if "certificate" in material:
        return (base64.b64decode(material["certificate"]["rawBytes"], validate=True),)
    return ()


def canonical_base64(text: str) -> bytes:
    """Standard base64 with exactly the padding it needs: one signature file has one spelling."""
    decoded = base64.b64decode(text, validate=True)
    if base64.b64encode(decoded).decode() != text:
        raise ValueError("base64 is not in its canonical form")
    return decoded


def signed_digests(payload: bytes) -> dict[str, str]:
    """File digests from a verified payload; the root digest must agree with them."""
    try:
        body: dict[str, Any] = strict_json(payload)
        if body["_type"] != STATEMENT_TYPE or body["predicateType"] != PREDICATE_TYPE:
            raise SignatureFormatError(f"signed statement is not an in-toto {PREDICATE_TYPE} statement")
        predicate = body["predicate"]
        if predicate["serialization"].get("method") != "files" or predicate["serialization"].get("hash_type") != "sha256":
            raise SignatureFormatError("signed statement does not use per-file SHA-256 serialization")
        digests: dict[str, str] = {}
        for resource in predicate["resources"]:
            if resource["algorithm"] != "sha256" or resource["name"] in digests:
                raise SignatureFormatError(f"signed manifest entry {resource['name']!r} is duplicated or not sha256")
            digests[manifest_name(resource["name"])] = str(resource["digest"]).lower()
        subjects = body["subject"]
        if len(subjects) != 1 or subjects[0]["digest"]["sha256"] != root_digest(digests):
            raise SignatureFormatError("signed statement's subject digest does not match its resources")
    except SignatureFormatError:
        raise
    except DuplicateKeyError as exc:
        raise SignatureFormatError(f"signed statement is refused: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureFormatError("signed statement is not valid in-toto JSON") from None
    return digests


def manifest_name(name: object) -> str:
    """A signed file name is a plain relative POSIX path, as staging names are: './x', 'a\\b' or '../x' never match."""
    try:
        return check_relative_name(str(name))
    except UnsafePathError as exc:
        raise SignatureFormatError(f"signed manifest {exc}") from None
