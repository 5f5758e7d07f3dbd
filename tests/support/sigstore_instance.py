"""A private Sigstore-shaped instance made in the test, all offline: a Fulcio-like CA issuing short-lived leaves with
the OIDC issuer extension and an embedded SCT from a CT log key, a Rekor-like log key signing the entry's checkpoint
and signed entry timestamp, and the matching trusted_root.json. Its bundles are what sigstore-python verifies."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealserve.bundle import envelope, files
from tests.support.pki import NOW, YEAR, Issued, make_ca

SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ISSUER_V1_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(spki(key)).digest()


def _der_length(length: int) -> bytes:
    return bytes([length]) if length < 0x80 else bytes([0x81, length]) if length < 0x100 else bytes([0x82]) + length.to_bytes(2, "big")


def _octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _utf8_string(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


@dataclass
class SigstoreInstance:
    """Fulcio root and intermediate, a CT log key and a Rekor log key; `trusted_root()` pins them."""

    root: Issued = field(default_factory=lambda: make_ca("fulcio-root", not_before=NOW - YEAR))
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rekor_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        self.intermediate = make_ca("fulcio-intermediate", self.root)

    def trusted_root(self) -> dict[str, object]:
        start = {"start": (NOW - 2 * YEAR).strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
            public = key.public_key()
            raw = {"rawBytes": b64(spki(public)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start}
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256", "publicKey": raw, "logId": {"keyId": b64(key_id(public))}}

        chain = [{"rawBytes": b64(cert.certificate.public_bytes(serialization.Encoding.DER))} for cert in (self.intermediate, self.root)]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "test", "commonName": "fulcio"},
                    "uri": "https://fulcio.test",
                    "certChain": {"certificates": chain},
                    "validFor": start,
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ct.test")],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    def leaf(
        self, key: ec.EllipticCurvePrivateKey, identity: str, issuer: str, not_before: datetime, minutes: int = 10
    ) -> x509.Certificate:
        """A Fulcio-style leaf: empty subject, critical SAN URI, code signing, the OIDC issuer, an embedded SCT."""
        serial = x509.random_serial_number()

        def build(extra: list[x509.ExtensionType]) -> x509.CertificateBuilder:
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.intermediate.certificate.subject)
                .public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(not_before)
                .not_valid_after(not_before + timedelta(minutes=minutes))
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate.key.public_key()), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V1_OID, issuer.encode()), critical=False)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V2_OID, _utf8_string(issuer)), critical=False)
            )
            for extension in extra:
                builder = builder.add_extension(extension, critical=False)
            return builder

        precertificate = build([]).sign(self.intermediate.key, hashes.SHA256())
        sct = self._sct(precertificate.tbs_certificate_bytes, not_before)
        return build([x509.UnrecognizedExtension(SCT_OID, _octet_string(sct))]).sign(self.intermediate.key, hashes.SHA256())

    def _sct(self, tbs: bytes, when: datetime) -> bytes:
        """One RFC 6962 SCT over the precertificate, as a serialized SignedCertificateTimestampList."""
        timestamp = int(when.timestamp() * 1000)
        issuer_hash = key_id(self.intermediate.key.public_key())  # type: ignore[arg-type]
        entry = issuer_hash + len(tbs).to_bytes(3, "big") + tbs
        signed = struct.pack("!BBQH", 0, 0, timestamp, 1) + entry + struct.pack("!H", 0)
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = key_id(self.ct_key.public_key())
        body = struct.pack("!B32sQH", 0, log_id, timestamp, 0) + struct.pack("!BBH", 4, 3, len(signature)) + signature
        item = struct.pack("!H", len(body)) + body
        return struct.pack("!H", len(item)) + item

    def sign_folder(
        self,
        folder: Path,
        *,
        subject: str,
        identity: str,
        issuer: str,
        signed_at: datetime | None = None,
        leaf_not_before: datetime | None = None,
        proof: str = "valid",
    ) -> Path:
        """Sign `folder` keylessly and write model.sig; `proof` is valid, missing or forged (a wrong sibling hash)."""
        signed_at = signed_at or NOW - timedelta(minutes=5)
        (folder / files.SIGNATURE_FILE).unlink(missing_ok=True)
        digests = files.digest_files(files.list_files(folder))
        payload = envelope.statement(subject, digests)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.leaf(key, identity, issuer, leaf_not_before or signed_at - timedelta(minutes=1))
        signature = key.sign(envelope.pae(payload), ec.ECDSA(hashes.SHA256()))
        dsse = {"payload": b64(payload), "payloadType": envelope.PAYLOAD_TYPE, "signatures": [{"sig": b64(signature), "keyid": ""}]}
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(json.dumps(dsse).encode()).hexdigest()},
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": b64(signature), "verifier": b64(pem)}],
                },
            }
        )
        entry = self._log_entry(body, int(signed_at.timestamp()), proof)
        material: dict[str, object] = {
            "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [entry],
        }
        document = {"mediaType": envelope.BUNDLE_MEDIA_TYPE, "verificationMaterial": material, "dsseEnvelope": dsse}
        (folder / files.SIGNATURE_FILE).write_text(json.dumps(document, indent=2))
        return folder

    def _log_entry(self, body: bytes, integrated: int, proof: str) -> dict[str, object]:
        """The entry at index 0 of a two-leaf log: inclusion proof, signed checkpoint, signed entry timestamp."""
        log_id = key_id(self.rekor_key.public_key())
        leaf_hash = hashlib.sha256(b"\x00" + body).digest()
        sibling = hashlib.sha256(b"\x00" + b"another entry").digest()
        root = hashlib.sha256(b"\x01" + leaf_hash + sibling).digest()
        note = f"rekor.test - 1234\n2\n{b64(root)}\n"
        note_signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 rekor.test {b64(log_id[:4] + note_signature)}\n"
        promise = rfc8785.dumps({"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0})
        entry: dict[str, object] = {
            "logIndex": "0",
            "logId": {"keyId": b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": b64(self.rekor_key.sign(promise, ec.ECDSA(hashes.SHA256())))},
            "canonicalizedBody": b64(body),
        }
        hashes_ = [b64(hashlib.sha256(b"forged").digest() if proof == "forged" else sibling)]
        if proof != "missing":
            entry["inclusionProof"] = {
                "logIndex": "0",
                "rootHash": b64(root),
                "treeSize": "2",
                "hashes": hashes_,
                "checkpoint": {"envelope": checkpoint},
            }
        return entry
