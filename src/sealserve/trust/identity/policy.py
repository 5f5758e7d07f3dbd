"""trust.yaml: the anchors, the keyring, ordered rules of which signers may sign which model names, and revocations.

The first rule whose `models` pattern matches the signed name decides; a later catch-all never widens it, and a
name no rule matches is refused. A keyring alone is the simplest policy: every key, every name.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealserve.bundle import envelope
from sealserve.bundle.keyring import Keyring
from sealserve.errors import (
    KeyringError,
    RevokedSignerError,
    SignerNotGrantedError,
    TrustPolicyError,
    UnknownKeyError,
    UntrustedCertificateError,
    VerificationError,
    first_problem,
)
from sealserve.trust.identity.certificate import CertificateVerifier, load_anchor_certificates
from sealserve.trust.identity.keyring_verifier import KeyringVerifier
from sealserve.trust.identity.signer import Signer, Verifier

MAX_POLICY_BYTES = 1 << 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnchorSpec(Strict):
    """PEM CA certificates for certificate signers, or a Sigstore trusted_root.json for keyless ones."""

    certificates: tuple[Path, ...] = ()
    trusted_root: Path | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AnchorSpec:
        if bool(self.certificates) == (self.trusted_root is not None):
            raise ValueError("an anchor has either certificates (PEM CA files) or trusted_root (a Sigstore trusted_root.json)")
        return self


def _pattern(value: str | None, where: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{where} is not a valid regular expression ({exc})") from None


def _matches(exact: str | None, regex: str | None, values: tuple[str, ...]) -> bool:
    """Exact equality, or the regex matching a whole value (fullmatch: an unanchored pattern cannot match a prefix)."""
    if exact is not None:
        return exact in values
    pattern = _pattern(regex, "regex")
    return pattern is not None and any(pattern.fullmatch(value) for value in values)


class CertificateRule(Strict):
    """A leaf under `anchor` whose SAN (email, URI, DNS) or subject matches, exactly or by a regex."""

    anchor: str
    san: str | None = None
    san_regex: str | None = None
    subject: str | None = None
    subject_regex: str | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> CertificateRule:
        given = [value for value in (self.san, self.san_regex, self.subject, self.subject_regex) if value is not None]
        if len(given) != 1:
            raise ValueError("a certificate signer names exactly one of san, san_regex, subject, subject_regex")
        _pattern(self.san_regex or self.subject_regex, "the identity regex")
        return self

    def accepts(self, signer: Signer) -> bool:
        if signer.method != "certificate" or signer.anchor != self.anchor:
            return False
        if self.san is not None or self.san_regex is not None:
            return _matches(self.san, self.san_regex, signer.sans)
        return _matches(self.subject, self.subject_regex, signer.subjects)


class SigstoreRule(Strict):
    """A keyless identity under `anchor`: the OIDC issuer and the certificate identity, each exact or a regex."""

    anchor: str
    issuer: str | None = None
    issuer_regex: str | None = None
    identity: str | None = None
    identity_regex: str | None = None

    @model_validator(mode="after")
    def _both_given(self) -> SigstoreRule:
        if (self.issuer is None) == (self.issuer_regex is None) or (self.identity is None) == (self.identity_regex is None):
            raise ValueError("a sigstore signer names one of issuer/issuer_regex and one of identity/identity_regex")
        _pattern(self.issuer_regex, "issuer_regex")
        _pattern(self.identity_regex, "identity_regex")
        return self

    def accepts(self, signer: Signer) -> bool:
        return (
            signer.method == "sigstore"
            and signer.anchor == self.anchor
            and _matches(self.issuer, self.issuer_regex, (signer.issuer,))
            and _matches(self.identity, self.identity_regex, signer.sans)
        )


class Grant(Strict):
    """One accepted signer: a keyring kid, a certificate identity, or a Sigstore identity."""

    kid: str | None = None
    certificate: CertificateRule | None = None
    sigstore: SigstoreRule | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Grant:
        if sum(value is not None for value in (self.kid, self.certificate, self.sigstore)) != 1:
            raise ValueError("a signer is exactly one of {kid: …}, {certificate: …} or {sigstore: …}")
        return self

    def accepts(self, signer: Signer) -> bool:
        if self.kid is not None:
            return signer.method == "key" and (self.kid == "*" or signer.kid == self.kid)
        rule = self.certificate or self.sigstore
        assert rule is not None
        return rule.accepts(signer)


class Rule(Strict):
    models: tuple[str, ...] = Field(min_length=1)
    signers: tuple[Grant, ...] = Field(min_length=1)


class PolicyFile(Strict):
    anchors: dict[str, AnchorSpec] = Field(default_factory=dict)
    keyring: Path | None = None
    rules: tuple[Rule, ...] = Field(min_length=1)
    revoked: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> PolicyFile:
        for number, rule in enumerate(self.rules, 1):
            for grant in rule.signers:
                if grant.kid is not None and self.keyring is None:
                    raise ValueError(f"rule {number} accepts key {grant.kid!r}, but the policy names no keyring")
                for named, kind in ((grant.certificate, "certificates"), (grant.sigstore, "trusted_root")):
                    if named is None:
                        continue
                    anchor = self.anchors.get(named.anchor)
                    if anchor is None:
                        raise ValueError(f"rule {number} names anchor {named.anchor!r}, which is not under anchors")
                    if (kind == "certificates") != bool(anchor.certificates):
                        raise ValueError(f"rule {number}: anchor {named.anchor!r} has no {kind}")
        return self


def _hexlike(value: str) -> str:
    """Serials and fingerprints as written by openssl, browsers or Python: any case, colons, prefixes, leading zeros."""
    return value.lower().removeprefix("sha256:").removeprefix("0x").replace(":", "").lstrip("0")


@dataclass(frozen=True)
class TrustPolicy:
    """The loaded policy: verifiers per method (each anchor one verifier), ordered rules, revocations."""

    verifiers: tuple[Verifier, ...]
    rules: tuple[Rule, ...]
    revoked: tuple[str, ...] = ()
    source: str = field(default="keyring")

    @classmethod
    def of_keyring(cls, keyring: Keyring) -> TrustPolicy:
        return cls((KeyringVerifier(keyring),), (Rule(models=("*",), signers=(Grant(kid="*"),)),))

    @classmethod
    def load(cls, path: Path) -> TrustPolicy:
        spec = read_policy_file(path)
        base = path.parent
        verifiers: list[Verifier] = []
        if spec.keyring is not None:
            try:
                verifiers.append(KeyringVerifier(Keyring.load(base / spec.keyring)))
            except KeyringError as exc:
                raise TrustPolicyError(f"trust policy {path}: {exc}") from None
        for name, anchor in spec.anchors.items():
            if anchor.trusted_root is not None:
                from sealserve.trust.identity.transparency import SigstoreVerifier, load_trusted_root  # sigstore: 0.6 s to import

                verifiers.append(SigstoreVerifier(name, load_trusted_root(base / anchor.trusted_root, name)))
            else:
                verifiers.append(CertificateVerifier(name, load_anchor_certificates([base / item for item in anchor.certificates], name)))
        return cls(tuple(verifiers), spec.rules, spec.revoked, str(path))

    def authenticate(self, parsed: envelope.Envelope, now: datetime) -> Signer:
        """Who made this signature, by the verifiers for its method; a revoked signer is refused here."""
        method = parsed.method
        candidates = [verifier for verifier in self.verifiers if verifier.method == method]
        if not candidates:
            refusal = UnknownKeyError if method == "key" else UntrustedCertificateError
            raise refusal(f"bundle is signed by {method}, and the trust policy ({self.source}) names no {ANCHOR_WORDS[method]}")
        failures: list[VerificationError] = []
        for verifier in candidates:
            try:
                signer = verifier.verify(parsed, now)
            except VerificationError as exc:
                failures.append(exc)
                continue
            self.check_revoked(signer)
            return signer
        if len(failures) == 1:
            raise failures[0]
        raise type(failures[0])("; ".join(str(failure) for failure in failures))

    def check_revoked(self, signer: Signer) -> None:
        hexes = {_hexlike(value) for value in (*signer.serials, *signer.fingerprints)}
        for entry in self.revoked:
            if (signer.kid and entry == signer.kid) or entry in signer.names or _hexlike(entry) in hexes:
                raise RevokedSignerError(f"signer {signer.label} is revoked by the trust policy ({entry!r})")

    def authorize(self, signer: Signer, model: str) -> str:
        """The rule that admits this signer for this model name; the first rule whose pattern matches decides."""
        for number, rule in enumerate(self.rules, 1):
            if not any(fnmatch.fnmatchcase(model, pattern) for pattern in rule.models):
                continue
            described = f"rule {number} (models: {', '.join(rule.models)})"
            if any(grant.accepts(signer) for grant in rule.signers):
                return described if self.source != "keyring" else "keyring: every key, every model"
            raise SignerNotGrantedError(
                f"signer {signer.label} is not granted model {model!r}: {described} decides, and it does not accept this signer"
            )
        raise SignerNotGrantedError(f"no rule of the trust policy ({self.source}) covers model {model!r}")


ANCHOR_WORDS = {"key": "keyring", "certificate": "certificate anchor", "sigstore": "Sigstore trusted root"}


def read_policy_file(path: Path) -> PolicyFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustPolicyError(f"cannot read trust policy {path}: {exc.strerror}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise TrustPolicyError(f"trust policy {path} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        document: Any = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise TrustPolicyError(f"trust policy {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return PolicyFile.model_validate(document)
    except ValidationError as exc:
        raise TrustPolicyError(f"trust policy {path} is invalid {first_problem(exc)}") from None
