"""Signing a bundle folder with a key or with a certificate (leaf + chain in the Sigstore bundle, as
`model_signing sign certificate` writes it), and `sealserve sign`: (re)signing an existing bundle."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealserve.bundle import envelope, files, keys
from sealserve.bundle.metadata import METADATA_FILE
from sealserve.errors import BundleFormatError, KeyringError
from sealserve.trust.verify import read_identity


@dataclass(frozen=True)
class Credential:
    """A private key, and the certificate chain (DER, leaf first) that names its holder, if it signs by certificate."""

    key: keys.SigningKey
    certificates: tuple[bytes, ...] = ()


def load_credential(private_key: Path | keys.SigningKey, certificate: Path | None = None, chain: Sequence[Path] = ()) -> Credential:
    """The key, and with `certificate` the leaf (which must hold the key's public half) followed by `chain`."""
    key = private_key if isinstance(private_key, keys.SigningKey) else keys.read_private_key(Path(private_key))
    if certificate is None:
        if chain:
            raise KeyringError("--chain goes with --certificate: the chain completes the signing certificate's path to a root")
        return Credential(key)
    if key.public_key is None:
        raise KeyringError("an HMAC secret cannot sign by certificate; use an ECDSA P-256 or Ed25519 key")
    leaf, *rest = _read_certificates(certificate)
    if leaf.public_key() != key.public_key:
        raise KeyringError(f"{certificate} does not certify the private key's public key")
    intermediates = [cert for path in chain for cert in _read_certificates(path)]
    der = serialization.Encoding.DER
    return Credential(key, tuple(cert.public_bytes(der) for cert in (leaf, *rest, *intermediates)))


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise KeyringError(f"cannot read certificate {path}: {exc.strerror}") from None
    except ValueError:
        raise KeyringError(f"{path} holds no PEM certificate") from None
    return found


def sign_folder(folder: Path, credential: Credential, *, subject: str) -> None:
    """(Re)write model.sig over every other file in `folder`."""
    (folder / files.SIGNATURE_FILE).unlink(missing_ok=True)
    digests = files.digest_files(files.list_files(folder))
    (folder / files.SIGNATURE_FILE).write_bytes(envelope.sign(subject, digests, credential.key, credential.certificates))


def resign(bundle: Path, credential: Credential) -> str:
    """`sealserve sign`: replace a bundle's signature (a folder in place, a .zip atomically); returns the signed name.

    The signer vouches for the files as they are: nothing of the old signature is checked or kept.
    """
    staging = files.private_directory("sealserve-sign-")
    try:
        if bundle.is_dir():
            files.copy_tree(files.list_files(bundle), staging)
        elif bundle.is_file() and bundle.suffix == ".zip":
            files.extract_zip(bundle, staging)
        else:
            raise BundleFormatError(f"{bundle} is neither a bundle folder nor a .zip archive")
        if not (staging / METADATA_FILE).is_file():
            raise BundleFormatError(f"{bundle} has no {METADATA_FILE}: not a sealserve bundle")
        name, _ = read_identity(staging)
        sign_folder(staging, credential, subject=name)
        if bundle.is_dir():
            signature = bundle / files.SIGNATURE_FILE
            temporary = bundle / f".{files.SIGNATURE_FILE}.tmp"
            shutil.copyfile(staging / files.SIGNATURE_FILE, temporary)
            os.replace(temporary, signature)
        else:
            temporary = bundle.with_name(f".{bundle.name}.tmp")
            temporary.unlink(missing_ok=True)
            files.write_zip(staging, temporary)
            os.replace(temporary, bundle)
        return name
    finally:
        shutil.rmtree(staging, ignore_errors=True)
