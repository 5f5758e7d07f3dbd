"""Signatures made with a key in the keyring: the kid (or key hint) picks the entry, never a key the bundle carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sealserve.bundle import envelope, keys
from sealserve.bundle.keyring import KeyEntry, Keyring
from sealserve.errors import BadSignatureError
from sealserve.trust.identity.signer import Signer


@dataclass(frozen=True)
class KeyringVerifier:
    """The keyring's keys, with their status and validity window."""

    keyring: Keyring
    method: str = "key"

    def verify(self, parsed: envelope.Envelope, now: datetime) -> Signer:
        entry = self.keyring.find(parsed.kid, parsed.hint)
        entry.check_usable(now)
        if not signature_valid(entry, parsed):
            raise BadSignatureError(f"signature does not verify with key {entry.kid!r}")
        return Signer("key", entry.kid, anchor="keyring", kid=entry.kid, alg=entry.alg)


def signature_valid(signer: KeyEntry, parsed: envelope.Envelope) -> bool:
    if signer.algorithm is keys.Algorithm.HMAC_SHA256:
        return keys.verify_hmac(signer.secret(), parsed.signature, parsed.signed_message)
    public = signer.public()
    if keys.algorithm_of(public) is not signer.algorithm:
        return False
    return keys.verify_signature(public, parsed.signature, parsed.signed_message)
