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


candidate_app = typer.Typer(
    help="A candidate version beside production: shadow or canary it, abort it, or promote it (with candidate.allow_promote).",
    no_args_is_help=True,
)
admin_app.add_typer(candidate_app, name="candidate")


@candidate_app.command("set")
def candidate_set(
    name: str,
    ref: Annotated[str, typer.Option("--ref", help="The candidate: a version or an alias of the same model.")],
    mode: Annotated[str, typer.Option("--mode", help="shadow (scores a copy of the traffic) or canary (answers --weight).")] = "shadow",
    weight: Annotated[float, typer.Option("--weight", help="canary: share of requests the candidate answers.")] = 0.1,
    sample: Annotated[float, typer.Option("--sample", help="shadow: share of requests the candidate also scores.")] = 1.0,
    sticky_by: Annotated[str | None, typer.Option("--sticky-by", help="header:NAME or field:NAME: a key stays on one version.")] = None,
    max_error_rate: Annotated[float, typer.Option("--max-error-rate", help="canary guardrail.")] = 0.02,
    max_p99_ratio: Annotated[float, typer.Option("--max-p99-ratio", help="canary guardrail.")] = 2.0,
    min_requests: Annotated[int, typer.Option("--min-requests", help="canary requests before the guardrails judge.")] = 200,
    url: AdminUrlOption = "http://127.0.0.1:8000",
) -> None:
    """Load REF (verified like any version) as NAME's candidate, replacing any other."""
    body = {
        "ref": ref,
        "mode": mode,
        "weight": weight,
        "sample": sample,
        "sticky_by": sticky_by,
        "guardrails": {"max_error_rate": max_error_rate, "max_p99_ratio": max_p99_ratio, "min_requests": min_requests},
    }
    view = run(lambda: call_admin("PUT", url, f"/api/admin/models/{name}/candidate", body, credential=os.environ.get(TOKEN_ENV)))
    _print_candidate(view)


@candidate_app.command("abort")
def candidate_abort(
    name: str,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept with the model's candidate history.")] = "aborted by an admin",
    url: AdminUrlOption = "http://127.0.0.1:8000",
) -> None:
    """Remove NAME's candidate; production alone answers again."""
    path = f"/api/admin/models/{name}/candidate"
    view = run(lambda: call_admin("DELETE", url, path, {"reason": reason}, credential=os.environ.get(TOKEN_ENV)))
    _print_candidate(view)


@candidate_app.command("promote")
def candidate_promote(name: str, url: AdminUrlOption = "http://127.0.0.1:8000") -> None:
    """Move NAME's alias to its candidate in the store and reload (needs candidate.allow_promote and store write access)."""
    view = run(lambda: call_admin("POST", url, f"/api/admin/models/{name}/candidate/promote", None, credential=os.environ.get(TOKEN_ENV)))
    promoted = view["promoted"]
    out.print(f"{view['model']}: {promoted['alias']} → {promoted['version']}", highlight=False)
    _print_candidate(view)


def _print_candidate(view: dict[str, Any]) -> None:
    candidate, production = view.get("candidate"), view["production"]
    line = f"{view['model']}: production {production.get('version') or 'nothing'}"
    if candidate is not None:
        line += f", candidate {candidate.get('version') or candidate['ref']} ({candidate['mode']}, {candidate['status']})"
    elif view.get("ended"):
        last = view["ended"][0]
        line += f", candidate {last['version']} {last['outcome']}: {last['reason']}"
    out.print(line, highlight=False)


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
