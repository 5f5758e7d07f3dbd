"""The sealserve command line: keys, pack, verify, store operations, serve and openapi."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sealserve.bundle import keyring as keyring_module
from sealserve.bundle import keys
from sealserve.bundle.metadata import ModelFormat
from sealserve.cli.admin_client import call_admin
from sealserve.errors import BundleFormatError, KeyringError, SealserveError

app = typer.Typer(
    help="Sign, store and serve scikit-learn models; verify every byte before anything is deserialized.", no_args_is_help=True
)
keys_app = typer.Typer(help="Keyring bookkeeping: add, rotate and revoke keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
admin_app = typer.Typer(
    help="Admin operations on a running server (needs `admin: {enabled: true}`; loopback, or SEALSERVE_TOKEN with the admin scope).",
    no_args_is_help=True,
)
app.add_typer(admin_app, name="admin")
auth_app = typer.Typer(help="Credentials for a server with auth on: API keys, password hashes, JWT secrets.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
TOKEN_ENV = "SEALSERVE_TOKEN"  # noqa: S105 - the name of the variable
ScopeOption = Annotated[list[str], typer.Option("--scope", help="predict, predict:<model>, read or admin; repeat for several.")]
out = Console(soft_wrap=True)  # never fold a path or a digest across lines
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

KeyringOption = Annotated[Path, typer.Option("--keyring", help="Keyring JSON file (public keys only).")]
PrivateKeyOption = Annotated[Path, typer.Option("--private-key", help="Private key file (PEM).")]


def run(action: Callable[[], T]) -> T:
    """Turn every expected failure into one line on stderr and exit status 1; never a traceback."""
    try:
        return action()
    except SealserveError as exc:
        err.print(f"[red]error[/red] ({type(exc).__name__}): {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None


def _password() -> bytes | None:
    value = os.environ.get(keys.PASSWORD_ENV)
    return value.encode() if value else None


@app.command()
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


@app.command()
def pack(
    model_file: Annotated[Path, typer.Argument(help="Fitted model: .skops, .onnx, or .joblib/.pkl with --allow-pickle.")],
    name: Annotated[str, typer.Option("--name")],
    version: Annotated[str, typer.Option("--version")],
    private_key: PrivateKeyOption,
    out_path: Annotated[Path, typer.Option("--out", help="Bundle folder, or a .zip archive.")],
    model_format: Annotated[
        ModelFormat | None, typer.Option("--format", help="Model file format in the bundle; default: skops (onnx for an .onnx file).")
    ] = None,
    sample: Annotated[
        Path | None, typer.Option("--sample", help="CSV of training features (derives the schema and drift statistics).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="Column of --sample to drop (the label).")] = None,
    report: Annotated[list[Path] | None, typer.Option("--report", help="Report file to include; repeatable.")] = None,
    features: Annotated[Path | None, typer.Option("--features", help="JSON file of per-feature overrides.")] = None,
    class_label: Annotated[list[str] | None, typer.Option("--class-label", help="VALUE=LABEL; repeatable.")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow the pickle-based joblib format.")] = False,
    trust: Annotated[
        list[str] | None, typer.Option("--trust", help="Extra skops type the model needs (module.Name), after review; repeatable.")
    ] = None,
) -> None:
    """Build and sign a bundle from a model file."""
    from sealserve.packing.build import pack as pack_bundle

    def action() -> Path:
        frame = _read_sample(sample, target) if sample else None
        if target and sample is None:
            raise BundleFormatError("--target names a column of --sample; pass --sample too")
        overrides = _read_overrides(features) if features else None
        labels = dict(_parse_label(item) for item in class_label or [])
        return pack_bundle(
            model_file,
            name=name,
            version=version,
            private_key=private_key,
            out=out_path,
            sample=frame,
            format=model_format,
            features=overrides,
            class_labels=labels,
            reports=report or [],
            description=description,
            allow_pickle=allow_pickle,
            trust=trust or (),
        )

    result = run(action)
    out.print(f"bundle {name} {version} written to {result}")


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder or .zip.")],
    keyring: KeyringOption,
    name: Annotated[str | None, typer.Option("--name", help="Require this signed name.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Require this signed version.")] = None,
) -> None:
    """Verify a bundle offline, with the same code the server runs."""
    from sealserve.trust.verify import verify_bundle

    verified = run(lambda: verify_bundle(bundle, keyring_module.Keyring.load(keyring), name=name, version=version))
    verified.discard()
    meta = verified.metadata
    out.print(f"verified {meta.name} {meta.version} ({meta.format.value}), signer {verified.signer.kid}, digest sha256:{verified.digest}")


@app.command()
def push(bundle: Path, store_url: str) -> None:
    """Upload a bundle to a store; an existing version is never changed."""
    from sealserve.store import open_store

    def action() -> Any:
        store = open_store(store_url)
        with _progress(store):
            return store.push(bundle)

    info = run(action)
    out.print(f"pushed {info.name} {info.version} ({info.size} bytes) to {store_url}")


@app.command()
def pull(
    name: str,
    ref: str,
    store_url: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the bundle into (must not exist).")],
) -> None:
    """Download one version (REF is a version or an alias) as a bundle folder."""
    from sealserve.bundle import files
    from sealserve.store import open_store

    def action() -> str:
        store = open_store(store_url)
        version = store.resolve(name, ref)
        if out_dir.exists():
            raise SealserveError(f"{out_dir} already exists")
        staging = files.private_directory("sealserve-pull-")
        try:
            with _progress(store):
                store.fetch(name, version, staging)
            shutil.move(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    version = run(action)
    out.print(f"pulled {name} {version} into {out_dir}; run `sealserve verify` before trusting it")


@app.command("ls")
def list_store(store_url: str, name: Annotated[str | None, typer.Argument()] = None) -> None:
    """List models, or one model's versions and aliases."""
    from sealserve.store import open_store

    store = run(lambda: open_store(store_url))
    if name is None:
        for model in run(store.models):
            out.print(model)
        return
    versions = run(lambda: store.versions(name))
    aliases = run(lambda: store.aliases(name))
    table = Table("version", "size", "signer", "created", "aliases")
    for info in versions:
        pointing = ", ".join(alias for alias, version in aliases.items() if version == info.version)
        table.add_row(info.version, f"{info.size:,}", info.signer, info.created, pointing)
    out.print(table)


@app.command()
def promote(name: str, version: str, alias: str, store_url: str) -> None:
    """Point an alias (production, staging, …) at a version."""
    from packaging.version import InvalidVersion, Version

    from sealserve.store import open_store

    def action() -> str | None:
        store = open_store(store_url)
        before = store.aliases(name).get(alias)
        store.promote(name, version, alias)
        return before

    before = run(action)
    out.print(f"{name}: {alias} → {version}")
    try:
        older = before is not None and Version(version) < Version(before)
    except InvalidVersion:
        older = False
    if older:
        err.print(
            f"[yellow]note[/yellow]: {alias} moved back from {before}; servers that served {before} refuse to follow it "
            f"(rollback protection). Pin {version} on them: `sealserve admin pin {name} {version}` or `ref: {version}` in the config.",
            highlight=False,
        )


@app.command()
def serve(
    config: Annotated[Path | None, typer.Argument(help="Service YAML; optional with --model-dir.", show_default=False)] = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (server.host, SEALSERVE_HOST; default 127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", "--http-port", "--http_port", min=0, max=65535, help="HTTP port (server.port, SEALSERVE_HTTP_PORT; default 8000)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (server.workers, SEALSERVE_WORKERS; default 1).")
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            "--grpc_port",
            min=0,
            max=65535,
            help="Open Inference Protocol gRPC port (protocols.grpc_port, SEALSERVE_GRPC_PORT).",
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option("--model-name", "--model_name", help="Name of the --model-dir bundle, its signed name (SEALSERVE_MODEL_NAME)."),
    ] = None,
    model_dir: Annotated[
        str | None,
        typer.Option(
            "--model-dir", "--model_dir", help="Serve the bundle in this folder, e.g. KServe's /mnt/models (SEALSERVE_MODEL_DIR)."
        ),
    ] = None,
    keyring: Annotated[str | None, typer.Option("--keyring", help="Keyring for the --model-dir bundle (SEALSERVE_KEYRING).")] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="PEM certificate: HTTPS and gRPC over TLS (server.tls.certfile).")
    ] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="PEM private key for --tls-cert (server.tls.keyfile).")] = None,
) -> None:
    """Serve the models in a YAML config, or one bundle folder; settings: YAML ← SEALSERVE_* environment ← flags."""
    import uvicorn

    from sealserve.serve.app import create_app
    from sealserve.serve.auth import Authenticator
    from sealserve.serve.launch import serve_workers, uvicorn_options
    from sealserve.serve.observability.access_log import configure_logging
    from sealserve.serve.settings import Overrides, load_settings

    flags = Overrides(
        host=host,
        http_port=port,
        grpc_port=grpc_port,
        workers=workers,
        model_name=model_name,
        model_dir=model_dir,
        keyring=keyring,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    settings = run(lambda: load_settings(config, os.environ, flags))
    configure_logging(settings.config.observability.log_format)
    server = settings.config.server
    if settings.given.grpc_port is not None and server.workers > 1:
        raise typer.BadParameter("with several workers, set protocols.grpc_port in the config instead", param_hint="--grpc-port")
    if settings.config.auth.enabled:  # secret files and key sets readable (and long enough) before any worker starts
        run(lambda: Authenticator.from_config(settings.config.auth))
    if server.workers == 1:
        uvicorn.run(
            run(lambda: create_app(settings.config)),
            host=server.host,
            port=server.port,
            log_level="info",
            access_log=False,
            **uvicorn_options(settings.config),
        )
        return
    serve_workers(config, flags, settings.config)


@app.command()
def openapi(config: Path, output: Annotated[Path | None, typer.Option("--output")] = None) -> None:
    """Write the service's OpenAPI contract without starting it (bundles are verified, not loaded)."""
    from sealserve.serve.contract import openapi_for_config

    document = run(lambda: openapi_for_config(config))
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(f"OpenAPI contract written to {output}")


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


def _print_admin_state(state: dict[str, Any]) -> None:
    model = state["model"]
    line = f"{model['name']}: serving {model.get('version') or 'nothing'} (ref {model.get('ref')}"
    line += f", pinned {model['pinned']})" if model.get("pinned") else ")"
    out.print(line, highlight=False)
    if model.get("error"):
        err.print(f"[yellow]last failure[/yellow]: {model['error']}", highlight=False)


@contextmanager
def _progress(store: Any) -> Iterator[None]:
    """A rich progress bar on stderr for stores that report transfers, only when stderr is a terminal."""
    if not err.is_terminal or not hasattr(store, "progress"):
        yield
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda amount: bar.advance(task, amount)

        store.progress = start
        try:
            yield
        finally:
            store.progress = None


def _read_sample(path: Path, target: str | None) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise BundleFormatError(f"sample file {path} does not exist") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BundleFormatError(f"sample file {path} is not a readable CSV: {exc}") from None
    if target is None:
        return frame
    if target not in frame.columns:
        raise BundleFormatError(f"--target {target!r} is not a column of {path}; its columns are {', '.join(map(str, frame.columns))}")
    return frame.drop(columns=[target])


def _read_overrides(path: Path) -> dict[str, Any]:
    try:
        overrides = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleFormatError(f"features file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"features file {path} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict) or not all(isinstance(spec, dict) for spec in overrides.values()):
        raise BundleFormatError(f'features file {path} must be an object of per-feature objects, e.g. {{"age": {{"kind": "integer"}}}}')
    return overrides


def _parse_label(item: str) -> tuple[Any, str]:
    value, separator, label = item.partition("=")
    if not separator:
        raise typer.BadParameter(f"--class-label takes VALUE=LABEL, got {item!r}")
    try:
        return json.loads(value), label
    except json.JSONDecodeError:
        return value, label


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"


def main() -> None:
    app()
