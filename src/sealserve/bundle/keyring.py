"""The server's trusted keys: a JWKS-like JSON file of public keys (and HMAC secret references)."""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealserve.bundle import keys
from sealserve.errors import KeyNotValidError, KeyringError, RevokedKeyError, UnknownKeyError, first_problem


class KeyStatus(str, Enum):
    """Active keys sign and verify; retiring keys only verify; revoked keys reject even old bundles."""

    ACTIVE = "active"
    RETIRING = "retiring"
    REVOKED = "revoked"


class KeyEntry(BaseModel):
    """One trusted key. HMAC entries name where the secret lives (env var or file), never the secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: str = Field(min_length=1, max_length=128)
    alg: Literal["ES256", "EdDSA", "HS256"]
    status: KeyStatus = KeyStatus.ACTIVE
    not_before: AwareDatetime | None = None  # a timestamp without a zone is ambiguous: refused, not guessed
    expires: AwareDatetime | None = None
    public_key: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None

    @model_validator(mode="after")
    def _material_matches_alg(self) -> KeyEntry:
        if self.alg == "HS256":
            if self.public_key is not None or (self.secret_env is None) == (self.secret_file is None):
                raise ValueError("an HS256 key names exactly one of secret_env or secret_file, and no public_key")
        else:
            if self.public_key is None or self.secret_env or self.secret_file:
                raise ValueError(f"an {self.alg} key needs public_key and no secret reference")
            if keys.Algorithm.from_jwa(self.alg) is not keys.algorithm_of(keys.load_public_key(self.public_key)):
                raise ValueError(f"public_key is not an {self.alg} key")
        return self

    @property
    def algorithm(self) -> keys.Algorithm:
        return keys.Algorithm.from_jwa(self.alg)

    def public(self) -> keys.PublicKey:
        assert self.public_key is not None
        return keys.load_public_key(self.public_key)

    def fingerprint(self) -> str | None:
        return None if self.public_key is None else keys.fingerprint(self.public())

    def secret(self) -> bytes:
        """Read the HMAC secret from the environment or its file at use time, so it is never cached in config."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                raise KeyringError(f"key {self.kid!r}: environment variable {self.secret_env} is not set")
            try:
                secret = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise KeyringError(f"key {self.kid!r}: {self.secret_env} must hold the secret in base64, as keygen writes it") from None
            return keys.check_hmac_secret(secret, f"key {self.kid!r} ({self.secret_env})")
        assert self.secret_file is not None
        stored = keys.read_private_key(Path(self.secret_file)).secret
        if stored is None:
            raise KeyringError(f"key {self.kid!r}: {self.secret_file} holds a private key, not an HMAC secret")
        return keys.check_hmac_secret(stored, f"key {self.kid!r} ({self.secret_file})")

    def check_secret_if_present(self) -> None:
        """At keyring load: a short or wrong secret is refused now; one not provided yet is refused when used."""
        if self.alg != "HS256":
            return
        if (self.secret_env is not None and os.environ.get(self.secret_env)) or (self.secret_file and Path(self.secret_file).exists()):
            self.secret()

    def check_usable(self, now: datetime) -> None:
        if self.status is KeyStatus.REVOKED:
            raise RevokedKeyError(f"key {self.kid!r} is revoked")
        if self.not_before is not None and now < self.not_before:
            raise KeyNotValidError(f"key {self.kid!r} is not valid before {self.not_before.isoformat()}")
        if self.expires is not None and now >= self.expires:
            raise KeyNotValidError(f"key {self.kid!r} expired at {self.expires.isoformat()}")


class Keyring(BaseModel):
    """The keyring file's content; lookups never fall back to a key carried by the bundle itself."""

    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_and_one_active(self) -> Keyring:
        kids = [entry.kid for entry in self.keys]
        if len(kids) != len(set(kids)):
            raise ValueError("duplicate kid in keyring")
        if sum(entry.status is KeyStatus.ACTIVE for entry in self.keys) > 1:
            raise ValueError("more than one active key; rotate marks the previous one retiring")
        return self

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            ring = cls.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise KeyringError(f"cannot read keyring {path}: {exc.strerror}") from None
        except ValidationError as exc:
            raise KeyringError(f"keyring {path} is invalid {first_problem(exc)}") from None
        for entry in ring.keys:
            entry.check_secret_if_present()
        return ring

    def save(self, path: Path) -> None:
        """Write atomically so a server never reads half a keyring."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2) + "\n")
        os.replace(temporary, path)

    def find(self, kid: str, hint: str) -> KeyEntry:
        """The entry for a signature's key id, or for its public key hint when the id is empty."""
        if kid:
            for entry in self.keys:
                if entry.kid == kid:
                    if entry.public_key is not None and hint and entry.fingerprint() != hint:
                        raise UnknownKeyError(f"key {kid!r} in the keyring does not match the signature's key hint")
                    return entry
            raise UnknownKeyError(f"signer key {kid!r} is not in the keyring")
        for entry in self.keys:
            if entry.public_key is not None and entry.fingerprint() == hint:
                return entry
        raise UnknownKeyError(f"signer key with fingerprint {hint[:16]}… is not in the keyring")

    def add(self, entry: KeyEntry) -> Keyring:
        if any(existing.kid == entry.kid for existing in self.keys):
            raise KeyringError(f"key {entry.kid!r} is already in the keyring; choose another --kid")
        if entry.status is KeyStatus.ACTIVE:
            return Keyring(keys=[_demote(existing) for existing in self.keys] + [entry])
        return Keyring(keys=[*self.keys, entry])

    def revoke(self, kid: str) -> Keyring:
        if all(entry.kid != kid for entry in self.keys):
            raise KeyringError(f"no key {kid!r} in the keyring")
        updated = [entry.model_copy(update={"status": KeyStatus.REVOKED}) if entry.kid == kid else entry for entry in self.keys]
        return Keyring(keys=updated)


def _demote(entry: KeyEntry) -> KeyEntry:
    return entry.model_copy(update={"status": KeyStatus.RETIRING}) if entry.status is KeyStatus.ACTIVE else entry


def entry_for(key: keys.SigningKey, *, secret_file: Path | None = None, expires: datetime | None = None) -> KeyEntry:
    """The keyring entry that verifies bundles signed by `key`."""
    now = datetime.now(UTC).replace(microsecond=0)
    public = key.public_key
    if public is None:
        return KeyEntry(
            kid=key.kid,
            alg="HS256",
            not_before=now,
            expires=expires,
            secret_file=str(secret_file) if secret_file else None,
            secret_env=None if secret_file else f"SEALSERVE_HMAC_{key.kid.upper().replace('-', '_')}",
        )
    return KeyEntry(kid=key.kid, alg=key.algorithm.jwa, not_before=now, expires=expires, public_key=keys.public_pem(public).decode())


def create_signing_key(
    private_key: Path,
    keyring: Path,
    algorithm: keys.Algorithm = keys.Algorithm.ECDSA_P256,
    kid: str | None = None,
    password: bytes | None = None,
) -> keys.SigningKey:
    """`sealserve keygen`: write a new private key (0600, never overwritten) and trust it in the keyring as the active key."""
    ring = Keyring.load(keyring) if keyring.exists() else Keyring()
    key = keys.generate(algorithm, kid)
    updated = ring.add(entry_for(key, secret_file=private_key.resolve()))  # refuses a duplicate kid before writing anything
    try:
        keys.write_private_key(key, private_key, password)
    except FileExistsError:
        raise KeyringError(f"{private_key} already exists; refusing to overwrite a key") from None
    updated.save(keyring)
    return key
