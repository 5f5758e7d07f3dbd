"""`sealserve admin …`: reload, pin and unpin models on a running server through its admin API."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from sealserve.cli.output import err, out, run

admin_app = typer.Typer(
    help="Admin operations on a running server (needs `admin: {enabled: true}`; loopback, or SEALSERVE_TOKEN with the admin scope).",
    no_args_is_help=True,
)
TOKEN_ENV = "SEALSERVE_TOKEN"  # noqa: S105 - the name of the variable
AdminUrlOption = Annotated[str, typer.Option("--url", help="Base URL of the running server.")]


@admin_app.command("reload")
def admin_reload(name: str, url: AdminUrlOption = "http://127.0.0.1:8000") -> None:
    """Load a model's ref now: download, verify, load, swap (the old version keeps serving on failure)."""
    state = run(lambda: call_admin("POST", url, f"/api/admin/models/{name}/reload", credential=os.environ.get(TOKEN_ENV)))
    _print_admin_state(state)


@admin_app.command("pin")
def admin_pin(name: str, version: str, url: AdminUrlOption = "http://127.0.0.1:8000") -> None:
    """Serve exactly VERSION (an explicit pin may roll back); lasts until unpin or restart."""
    state = run(lambda: call_admin("PUT", url, f"/api/admin/models/{name}/pin", {"version": version}, credential=os.environ.get(TOKEN_ENV)))
    _print_admin_state(state)


@admin_app.command("unpin")
def admin_unpin(name: str, url: AdminUrlOption = "http://127.0.0.1:8000") -> None:
    """Follow the configured ref again."""
    state = run(lambda: call_admin("DELETE", url, f"/api/admin/models/{name}/pin", credential=os.environ.get(TOKEN_ENV)))
    _print_admin_state(state)


def call_admin(method: str, url: str, path: str, body: dict[str, Any] | None = None, *, credential: str | None) -> dict[str, Any]:
    """The admin client on first use: its HTTP stack (urllib.request) is not imported by `sealserve serve`."""
    from sealserve.cli.admin_client import call_admin as call

    return call(method, url, path, body, credential=credential)


def _print_admin_state(state: dict[str, Any]) -> None:
    model = state["model"]
    line = f"{model['name']}: serving {model.get('version') or 'nothing'} (ref {model.get('ref')}"
    line += f", pinned {model['pinned']})" if model.get("pinned") else ")"
    out.print(line, highlight=False)
    if model.get("error"):
        err.print(f"[yellow]last failure[/yellow]: {model['error']}", highlight=False)
