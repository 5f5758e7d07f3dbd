"""Verification in the brief's order; nothing reaches a deserializer before every step passes."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sealserve.bundle import envelope, files
from sealserve.bundle.format_version import check_major
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import COMPILED_FILE, METADATA_FILE, BundleMetadata, ModelFormat, check_name, check_version
from sealserve.errors import (
    BundleFormatError,
    DigestMismatchError,
    ExtraFileError,
    IdentityMismatchError,
    MissingFileError,
    NewerFormatError,
    SignatureFormatError,
    first_problem,
)
from sealserve.trust.identity.policy import TrustPolicy
from sealserve.trust.identity.signer import Provenance, Signer
from sealserve.trust.load import audit_model_file, load_model_file, load_onnx


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose bytes, signer and identity all checked, staged in a private folder."""

    path: Path
    metadata: BundleMetadata
    signer: Signer
    digest: str
    file_digests: dict[str, str]
    rule: str = ""

    @property
    def provenance(self) -> Provenance:
        """Who signed, how, when, the bundle digest and the policy rule that admitted it."""
        return Provenance(self.signer, self.digest, self.rule)

    @property
    def model_path(self) -> Path:
        return self.path / self.metadata.model_file

    def load(self, *, trusted_types: tuple[str, ...] = (), allow_pickle: bool = False) -> Any:
        return load_verified(self.path, self.metadata, trusted_types=trusted_types, allow_pickle=allow_pickle)

    def load_compiled(self, *, trusted_types: tuple[str, ...] = ()) -> Any:
        return load_verified_compiled(self.path, self.metadata, trusted_types=trusted_types)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def load_verified(folder: Path, metadata: BundleMetadata, *, trusted_types: tuple[str, ...] = (), allow_pickle: bool = False) -> Any:
    """The model of a verified bundle folder (the server, and its trial prediction child, load through here)."""
    return load_model_file(
        folder / metadata.model_file, metadata.format, trusted_types=trusted_types, allow_pickle=allow_pickle, metadata=metadata
    )


def load_verified_compiled(folder: Path, metadata: BundleMetadata, *, trusted_types: tuple[str, ...] = (), audited: bool = False) -> Any:
    """The compiled form (an ONNX Runtime session), after auditing the reference model file as if it were loaded:
    a bundle is refused for the same reasons whichever runtime serves it. `audited`: another process (the trial
    child) ran that audit on this folder with these settings, and its refusal would have ended the load."""
    if metadata.compiled is None:
        raise BundleFormatError(f"{metadata.name} {metadata.version} has no compiled model")
    if not audited:
        audit_model_file(folder / metadata.model_file, metadata, trusted_types=trusted_types)
    return load_onnx(folder / metadata.compiled.file)


def stage(source: Path, destination: Path, limits: files.BundleLimits | None = None) -> dict[str, str]:
    """Step 1: copy a folder or .zip into a private folder, hashing on the way."""
    limits = limits or files.BundleLimits()
    if source.is_dir():
        return files.copy_tree(files.list_files(source, limits), destination)
    if source.is_file() and source.suffix == ".zip":
        return files.extract_zip(source, destination, limits)
    raise BundleFormatError(f"{source} is neither a bundle folder nor a .zip archive")


def verify_bundle(
    source: Path,
    keyring: Keyring | TrustPolicy,
    *,
    name: str | None = None,
    version: str | None = None,
    limits: files.BundleLimits | None = None,
    now: datetime | None = None,
) -> VerifiedBundle:
    """Stage, then check key, signature, every file's digest and the signed identity; raise on the first failure."""
    workdir = files.private_directory("sealserve-verify-")
    try:
        actual = stage(Path(source), workdir, limits)
        return verify_staged(workdir, actual, keyring, name=name, version=version, now=now)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def verify_staged(
    workdir: Path,
    actual: dict[str, str],
    keyring: Keyring | TrustPolicy,
    *,
    name: str | None = None,
    version: str | None = None,
    now: datetime | None = None,
) -> VerifiedBundle:
    """Steps 2–4 on a private folder whose per-file digests were computed while it was filled; a keyring is the
    policy that trusts every key for every name, a trust policy also says which signer may sign which name."""
    if files.SIGNATURE_FILE not in actual:
        raise SignatureFormatError(f"bundle has no {files.SIGNATURE_FILE}")
    parsed = envelope.parse((workdir / files.SIGNATURE_FILE).read_bytes())
    policy = TrustPolicy.of_keyring(keyring) if isinstance(keyring, Keyring) else keyring
    signer = policy.authenticate(parsed, now or datetime.now(UTC))
    signed = envelope.signed_digests(parsed.payload)
    check_digests(signed, {k: v for k, v in actual.items() if k != files.SIGNATURE_FILE})

    metadata = read_metadata(workdir)
    if name is not None and metadata.name != name:
        raise IdentityMismatchError(f"bundle is signed as {metadata.name!r}, but {name!r} was requested")
    if version is not None and metadata.version != version:
        raise IdentityMismatchError(f"bundle is signed as version {metadata.version!r}, but {version!r} was requested")
    if metadata.model_file not in signed or metadata.model_file != metadata.format.filename:
        raise BundleFormatError(f"metadata names model file {metadata.model_file!r}, which is not the signed {metadata.format.filename}")
    check_compiled_file(metadata, signed)
    if metadata.booster_step is not None and metadata.booster_step.file not in signed:
        raise BundleFormatError(f"metadata names booster step file {metadata.booster_step.file!r}, which is not signed")
    rule = policy.authorize(signer, metadata.name)
    return VerifiedBundle(workdir, metadata, signer, envelope.root_digest(signed), signed, rule)


def check_compiled_file(metadata: BundleMetadata, signed: dict[str, str]) -> None:
    """A compiled form is the signed model.onnx beside a model of another format, never any other file."""
    if metadata.compiled is None:
        return
    if metadata.compiled.file != COMPILED_FILE or COMPILED_FILE not in signed:
        raise BundleFormatError(f"metadata names compiled file {metadata.compiled.file!r}, which is not the signed {COMPILED_FILE}")
    if metadata.format is ModelFormat.ONNX:
        raise BundleFormatError("an ONNX bundle's model file is its compiled form; it cannot name another")


def check_digests(signed: dict[str, str], actual: dict[str, str]) -> None:
    """Exact match: no missing file, no extra file, no changed byte."""
    missing = sorted(set(signed) - set(actual))
    if missing:
        raise MissingFileError(f"signed file missing from bundle: {', '.join(missing)}")
    extra = sorted(set(actual) - set(signed))
    if extra:
        raise ExtraFileError(f"file not covered by the signature: {', '.join(extra)}")
    changed = sorted(name for name in signed if signed[name] != actual[name])
    if changed:
        raise DigestMismatchError(f"SHA-256 mismatch for {', '.join(changed)}")


def read_metadata(folder: Path) -> BundleMetadata:
    """The signed metadata under the format's compatibility rule: a newer major refused, unknown fields ignored."""
    path = folder / METADATA_FILE
    if not path.is_file():
        raise BundleFormatError(f"bundle has no {METADATA_FILE}")
    data = path.read_bytes()
    try:
        document = envelope.strict_json(data)
    except ValueError as exc:
        raise BundleFormatError(f"{METADATA_FILE} is not valid JSON ({exc})") from None
    check_major(document, METADATA_FILE)
    try:
        return BundleMetadata.model_validate_json(data, extra="ignore")
    except ValidationError as exc:
        raise BundleFormatError(f"{METADATA_FILE} is invalid {first_problem(exc)}") from None


def read_identity(folder: Path) -> tuple[str, str]:
    """The signed name and version: a store keeps a bundle of a newer format major, which only the server may refuse."""
    try:
        metadata = read_metadata(folder)
    except NewerFormatError:
        document = envelope.strict_json((folder / METADATA_FILE).read_bytes())
        try:
            return check_name(str(document.get("name"))), check_version(str(document.get("version")))
        except ValueError as exc:
            raise BundleFormatError(f"{METADATA_FILE} is invalid: {exc}") from None
    return metadata.name, metadata.version
