"""`sealserve auth …`: make the credentials a server with auth on checks (API keys, password hashes, JWT secrets)."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer

from sealserve.cli.output import err

auth_app = typer.Typer(help="Credentials for a server with auth on: API keys, password hashes, JWT secrets.", no_args_is_help=True)
ScopeOption = Annotated[list[str], typer.Option("--scope", help="predict, predict:<model>, read or admin; repeat for several.")]


@auth_app.command("api-key")
def auth_api_key(
    name: Annotated[str, typer.Option("--name", help="Who the key is for; logs name the caller by it.")], scope: ScopeOption
) -> None:
    """Create an API key: the key once on stdout, and the config entry (its SHA-256, never the key) on stderr."""
    import secrets

    from sealserve.serve.auth.credentials import key_digest

    _check_scopes(scope)
    key = f"ssk_{secrets.token_urlsafe(32)}"
    sys.stdout.write(key + "\n")
    err.print("auth.api_keys entry (the key above is shown only once):", highlight=False)
    err.print(yaml_entry({"name": name, "sha256": key_digest(key), "scopes": scope}), highlight=False, markup=False)


@auth_app.command("hash-password")
def auth_hash_password(username: Annotated[str, typer.Option("--username")], scope: ScopeOption) -> None:
    """Hash a user's password (argon2id) for auth.users; the password is read from stdin, or prompted for."""
    from sealserve.serve.auth.login import hash_password

    _check_scopes(scope)
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise typer.BadParameter("use a password of at least 8 characters")
    sys.stdout.write(yaml_entry({"username": username, "password_hash": hash_password(password), "scopes": scope}))


@auth_app.command("secret")
def auth_secret() -> None:
    """Print a random HS256 secret (64 URL-safe characters, 384 bits) for auth.jwt.secret."""
    import secrets

    sys.stdout.write(secrets.token_urlsafe(48) + "\n")


def _check_scopes(scopes: list[str]) -> None:
    from sealserve.serve.config import SCOPE_PATTERN

    wrong = [scope for scope in scopes if not re.fullmatch(SCOPE_PATTERN, scope)]
    if wrong or not scopes:
        raise typer.BadParameter(f"scopes are predict, predict:<model>, read or admin; got {wrong or 'none'}", param_hint="--scope")


def yaml_entry(entry: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump([entry], sort_keys=False))
