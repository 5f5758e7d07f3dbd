"""The `sealserve` Typer app and its console entry point; every command is registered here, in help order."""

from __future__ import annotations

import importlib.util
import sys

import typer

from sealserve.cli.admin import admin_app
from sealserve.cli.auth import auth_app
from sealserve.cli.bundles import pack, sign, verify
from sealserve.cli.keys import keygen, keys_app
from sealserve.cli.output import OneLineErrors
from sealserve.cli.serving import openapi, serve
from sealserve.cli.store import list_store, promote, pull, push
from sealserve.trust.policy.catalog import untracked_at_exit

app = typer.Typer(
    cls=OneLineErrors,
    help="Sign, store and serve scikit-learn models; verify every byte before anything is deserialized.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(admin_app, name="admin")
app.add_typer(auth_app, name="auth")

app.command()(keygen)
app.command()(pack)
app.command()(verify)
app.command()(sign)
app.command()(push)
app.command()(pull)
app.command("ls")(list_store)
app.command()(promote)
app.command()(serve)
app.command()(openapi)


def main() -> None:
    _as_package_main()
    try:
        app()
    finally:
        untracked_at_exit()


def _as_package_main() -> None:
    """Run as the `sealserve` script, say that it is `python -m sealserve`: multiprocessing re-runs a main script by path
    in every trial child and spawned worker (importing the whole CLI again), but leaves a `*.__main__` module alone."""
    script = sys.modules["__main__"]
    if getattr(script, "__spec__", None) is None and getattr(script, "main", None) is main:
        script.__spec__ = importlib.util.find_spec("sealserve.__main__")
