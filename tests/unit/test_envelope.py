"""model.sig: an in-toto statement of per-file SHA-256 in a DSSE envelope in a Sigstore bundle, parsed strictly."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from sealserve.bundle import envelope, keys
from sealserve.errors import SignatureFormatError

DIGESTS = {
    "sealserve.json": hashlib.sha256(b"{}").hexdigest(),
    "model.skops": hashlib.sha256(b"model").hexdigest(),
    "reports/roc.png": hashlib.sha256(b"png").hexdigest(),
}


def signed_document(key: keys.SigningKey | None = None) -> dict[str, Any]:
    data = envelope.sign("risk", DIGESTS, key or keys.generate(keys.Algorithm.ECDSA_P256, "signer"))
    document: dict[str, Any] = json.loads(data)
    return document


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def with_payload(document: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return document


def test_pae_is_the_dsse_pre_authentication_encoding() -> None:
    assert envelope.pae(b"{}") == b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def test_root_digest_hashes_the_file_digests_in_name_order() -> None:
    expected = hashlib.sha256(b"".join(bytes.fromhex(DIGESTS[name]) for name in sorted(DIGESTS))).hexdigest()
    assert envelope.root_digest(DIGESTS) == expected
    assert envelope.root_digest(dict(reversed(list(DIGESTS.items())))) == expected


def test_signed_document_has_the_sigstore_and_in_toto_shape() -> None:
    key = keys.generate(keys.Algorithm.ECDSA_P256, "signer")
    document = signed_document(key)
    assert document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert document["verificationMaterial"]["publicKey"]["hint"] == key.hint
    dsse = document["dsseEnvelope"]
    assert dsse["payloadType"] == "application/vnd.in-toto+json"
    assert dsse["signatures"][0]["keyid"] == "signer"
    statement = json.loads(base64.b64decode(dsse["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["subject"] == [{"name": "risk", "digest": {"sha256": envelope.root_digest(DIGESTS)}}]
    assert statement["predicate"]["serialization"]["ignore_paths"] == ["model.sig"]
    assert {r["name"]: r["digest"] for r in statement["predicate"]["resources"]} == DIGESTS


def test_parse_returns_what_was_signed_and_the_signature_covers_the_pae() -> None:
    key = keys.generate(keys.Algorithm.ED25519, "ed")
    parsed = envelope.parse(encode(signed_document(key)))
    assert (parsed.kid, parsed.hint) == ("ed", key.hint)
    assert keys.verify_signature(key.public_key, parsed.signature, envelope.pae(parsed.payload))  # type: ignore[arg-type]
    assert envelope.signed_digests(parsed.payload) == DIGESTS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(mediaType="application/json"), "media type 'application/json'"),
        (lambda d: d["dsseEnvelope"].update(payloadType="text/plain"), "DSSE payload type 'text/plain'"),
        (lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0]), "exactly one signature, found 2"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "exactly one signature, found 0"),
        (lambda d: d["dsseEnvelope"].update(payload="%%% not base64 %%%"), "not a Sigstore bundle"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="***"), "not a Sigstore bundle"),
        (lambda d: d.pop("dsseEnvelope"), "not a Sigstore bundle"),
        (lambda d: d.pop("verificationMaterial"), "not a Sigstore bundle"),
    ],
)
def test_malformed_signature_files_are_refused(change: Any, message: str) -> None:
    document = signed_document()
    change(document)
    with pytest.raises(SignatureFormatError, match=message):
        envelope.parse(encode(document))


def test_non_json_and_oversized_signature_files_are_refused() -> None:
    with pytest.raises(SignatureFormatError, match=r"model.sig is not a Sigstore bundle"):
        envelope.parse(b"\x00\x01 binary")
    with pytest.raises(SignatureFormatError, match="larger than"):
        envelope.parse(b" " * (envelope.MAX_SIGNATURE_BYTES + 1))


def statement_of(document: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    return statement


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(_type="https://example.com/Statement"), "not an in-toto"),
        (lambda s: s.update(predicateType="https://slsa.dev/provenance/v1"), "not an in-toto"),
        (lambda s: s["predicate"]["serialization"].update(method="shards"), "per-file SHA-256"),
        (lambda s: s["predicate"]["serialization"].update(hash_type="blake2"), "per-file SHA-256"),
        (lambda s: s["predicate"]["resources"].append(dict(s["predicate"]["resources"][0])), "is duplicated"),
        (lambda s: s["predicate"]["resources"][0].update(algorithm="md5"), "not sha256"),
        (lambda s: s["subject"][0]["digest"].update(sha256="0" * 64), "subject digest does not match"),
        (lambda s: s["predicate"]["resources"].pop(), "subject digest does not match"),
        (lambda s: s.pop("subject"), "not valid in-toto JSON"),
    ],
)
def test_statements_that_do_not_describe_their_files_consistently_are_refused(change: Any, message: str) -> None:
    document = signed_document()
    statement = statement_of(document)
    change(statement)
    parsed = envelope.parse(encode(with_payload(document, statement)))
    with pytest.raises(SignatureFormatError, match=message):
        envelope.signed_digests(parsed.payload)


def test_signed_digests_are_compared_case_insensitively() -> None:
    document = signed_document()
    statement = statement_of(document)
    for resource in statement["predicate"]["resources"]:
        resource["digest"] = resource["digest"].upper()
    parsed = envelope.parse(encode(with_payload(document, statement)))
    assert envelope.signed_digests(parsed.payload) == DIGESTS
