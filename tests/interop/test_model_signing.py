"""Interop with the OpenSSF `model_signing` CLI, both ways, through the real command lines.

sealserve → model_signing: `model_signing verify key` accepts a sealserve bundle (ECDSA P-256).
model_signing → sealserve: `sealserve verify` accepts a folder signed by `model_signing sign key` once its public key
is in the keyring, and refuses it when a file changed or when a file model_signing ignores (.git…) is present:
sealserve has no ignored paths.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealserve.bundle import envelope, keys
from tests.support.tamper import flip_byte

BIN = Path(sys.executable).parent
MODEL_SIGNING = str(BIN / "model_signing")
SEALSERVE = str(BIN / "sealserve")


def run_all(*commands: Sequence[str | Path]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently (each CLI start costs about a second) and wait for all of them."""
    processes = [
        subprocess.Popen([str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands
    ]
    results = []
    for process, command in zip(processes, commands, strict=True):
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess([str(part) for part in command], process.returncode, stdout, stderr))
    return results


def write_public_key(key: keys.SigningKey, path: Path) -> Path:
    assert key.public_key is not None
    path.write_bytes(keys.public_pem(key.public_key))
    return path


@pytest.fixture(scope="module")
def model_signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An ECDSA P-256 key pair made outside sealserve (as `openssl ecparam -genkey` would), as PEM files."""
    root = tmp_path_factory.mktemp("ms-key")
    private = ec.generate_private_key(ec.SECP256R1())
    private_path, public_path = root / "ms-private.pem", root / "ms-public.pem"
    private_path.write_bytes(
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


@dataclass(frozen=True)
class Interop:
    sealserve_bundle_checked_by_model_signing: subprocess.CompletedProcess[str]
    signed_folder: Path
    keyring: Path


@pytest.fixture(scope="module")
def interop(
    packed_bundle: Path, signing_key: keys.SigningKey, model_signing_key: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Interop:
    """The three independent CLI steps at once: model_signing verifies a sealserve bundle; model_signing signs a sealserve
    model folder (which also holds a .gitignore that model_signing ignores); sealserve trusts model_signing's key."""
    root = tmp_path_factory.mktemp("interop")
    folder = Path(shutil.copytree(packed_bundle, root / "risk"))
    (folder / "model.sig").unlink()
    (folder / ".gitignore").write_text("*.pyc\n")
    private_path, public_path = model_signing_key
    ring = root / "keyring.json"
    checked, signed, added = run_all(
        [
            MODEL_SIGNING,
            "verify",
            "key",
            packed_bundle,
            "--signature",
            packed_bundle / "model.sig",
            "--public_key",
            write_public_key(signing_key, root / "sealserve-public.pem"),
        ],
        [MODEL_SIGNING, "sign", "key", folder, "--signature", folder / "model.sig", "--private_key", private_path],
        [SEALSERVE, "keys", "add", "--public-key", public_path, "--keyring", ring, "--kid", "ms-signer"],
    )
    assert signed.returncode == 0, signed.stderr
    assert added.returncode == 0, added.stderr
    return Interop(checked, folder, ring)


def test_model_signing_verifies_a_sealserve_bundle(interop: Interop) -> None:
    result = interop.sealserve_bundle_checked_by_model_signing
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout + result.stderr


def test_model_signing_ignores_git_files_when_signing(interop: Interop) -> None:
    signed = envelope.signed_digests(envelope.parse((interop.signed_folder / "model.sig").read_bytes()).payload)
    assert (interop.signed_folder / ".gitignore").is_file()
    assert sorted(signed) == ["model.onnx", "model.skops", "reports/profile.html", "sealserve.json"]


def test_sealserve_accepts_model_signing_folders_and_refuses_changed_or_ignored_files(interop: Interop, tmp_path: Path) -> None:
    clean = Path(shutil.copytree(interop.signed_folder, tmp_path / "clean"))
    (clean / ".gitignore").unlink()
    tampered = Path(shutil.copytree(clean, tmp_path / "tampered"))
    flip_byte(tampered / "model.skops")
    empty_ring = tmp_path / "empty-keyring.json"
    empty_ring.write_text('{"keys": []}')
    accepted, ignored, changed, unknown = run_all(
        [SEALSERVE, "verify", clean, "--keyring", interop.keyring, "--name", "risk", "--version", "1.0.0"],
        [SEALSERVE, "verify", interop.signed_folder, "--keyring", interop.keyring],
        [SEALSERVE, "verify", tampered, "--keyring", interop.keyring],
        [SEALSERVE, "verify", clean, "--keyring", empty_ring],
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "verified risk 1.0.0 (skops), signer ms-signer" in accepted.stdout
    assert ignored.returncode == 1  # model_signing ignores .gitignore; sealserve verifies every byte it stages
    assert "error (ExtraFileError): file not covered by the signature: .gitignore" in ignored.stderr
    assert changed.returncode == 1
    assert "error (DigestMismatchError): SHA-256 mismatch for model.skops" in changed.stderr
    assert unknown.returncode == 1
    assert "error (UnknownKeyError): signer key with fingerprint" in unknown.stderr
