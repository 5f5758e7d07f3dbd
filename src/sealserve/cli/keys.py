"""`sealserve keygen` and `sealserve keys …`: signing keys and the keyring of public keys that verifies them."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sealserve.bundle import keyring as keyring_module
from sealserve.bundle import keys
from sealserve.cli.output import out, run
from sealserve.errors import KeyringError

keys_app = typer.Typer(help="Keyring bookkeeping: add, rotate and revoke keys.", no_args_is_help=True)

KeyringOption = Annotated[Path, typer.Option("--keyring", help="Keyring JSON file (public keys only).")]
PrivateKeyOption = Annotated[Path, typer.Option("--private-key", help="Private key file (PEM).")]


def _password() -> bytes | None:
    value = os.environ.get(keys.PASSWORD_ENV)
    return value.encode() if value else None


def keygen(
    private_key: PrivateKeyOption,
    keyring: KeyringOption,
    algorithm: Annotated[keys.Algorithm, typer.Option("--algorithm", help="Signature algorithm.")] = keys.Algorithm.ECDSA_P256,
    kid: Annotated[str | None, typer.Option("--kid", help="Key id; derived from the public key if omitted.")] = None,
) -> None:
    """Make a signing key and add its public half to the keyring as the active key."""

    key = run(lambda: keyring_module.create_signing_key(private_key, keyring, algorithm, kid, _password()))
    out.print(f"key {key.kid} ({algorithm.value}) written to {private_key}; keyring {keyring} updated")


@keys_app.command("rotate")
def keys_rotate(
    private_key: PrivateKeyOption,
    keyring: KeyringOption,
    algorithm: Annotated[keys.Algorithm, typer.Option("--algorithm")] = keys.Algorithm.ECDSA_P256,
    kid: Annotated[str | None, typer.Option("--kid")] = None,
) -> None:
    """Make a new active key; the previous active key becomes retiring (verifies, no longer signs)."""
    keygen(private_key, keyring, algorithm, kid)


@keys_app.command("revoke")
def keys_revoke(kid: str, keyring: KeyringOption) -> None:
    """Revoke a key: bundles it signed are refused from now on, even old ones."""
    run(lambda: keyring_module.Keyring.load(keyring).revoke(kid).save(keyring))
    out.print(f"key {kid} revoked in {keyring}")


@keys_app.command("add")
def keys_add(
    public_key: Annotated[Path, typer.Option("--public-key", help="PEM public key (ECDSA P-256 or Ed25519).")],
    keyring: KeyringOption,
    kid: Annotated[str | None, typer.Option("--kid")] = None,
    status: Annotated[keyring_module.KeyStatus, typer.Option("--status")] = keyring_module.KeyStatus.RETIRING,
) -> None:
    """Trust another signer's public key (for example one used with `model_signing sign key`)."""

    def action() -> None:
        try:
            public = keys.load_public_key(public_key.read_bytes())
        except OSError as exc:
            raise KeyringError(f"cannot read public key {public_key}: {exc.strerror}") from None
        entry = keyring_module.KeyEntry(
            kid=kid or keys.default_kid(public),
            alg=keys.algorithm_of(public).jwa,
            status=status,
            public_key=keys.public_pem(public).decode(),
        )
        ring = keyring_module.Keyring.load(keyring) if keyring.exists() else keyring_module.Keyring()
        ring.add(entry).save(keyring)
        out.print(f"key {entry.kid} added to {keyring} as {status.value}")

    run(action)


@keys_app.command("list")
def keys_list(keyring: KeyringOption) -> None:
    """Show the keyring's keys and their status."""
    ring = run(lambda: keyring_module.Keyring.load(keyring))
    table = Table("kid", "alg", "status", "not before", "expires")
    for entry in ring.keys:
        table.add_row(entry.kid, entry.alg, entry.status.value, _when(entry.not_before), _when(entry.expires))
    out.print(table)


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"
