"""`sealserve serve` and `sealserve openapi`: run the service, or write its contract without running it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealserve.cli.output import out, run

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sealserve.serve.config import ServiceConfig
    from sealserve.serve.lifecycle.trial import TrialRunner
    from sealserve.serve.settings import Settings


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
    trials = start_trials(settings.config)  # before the server's own imports: the runner's run beside them
    try:
        app = checked_app(settings, trials)
    except BaseException:
        if trials is not None:
            trials.abandon()
        raise
    from sealserve.serve.launch import serve_one, serve_workers

    if app is not None:
        serve_one(app, settings.config)
        return
    serve_workers(config, flags, settings.config)


def checked_app(settings: Settings, trials: TrialRunner | None) -> FastAPI | None:
    """Everything that can refuse the configuration before a port is bound; with one worker, the app itself."""
    from sealserve.trust.policy.catalog import collection_paused

    with collection_paused():
        from sealserve.serve.observability.access_log import configure_logging
        from sealserve.serve.observability.events import check_sinks

    configure_logging(settings.config.observability.log_format)
    server = settings.config.server
    if settings.given.grpc_port is not None and server.workers > 1:
        raise typer.BadParameter("with several workers, set protocols.grpc_port in the config instead", param_hint="--grpc-port")
    if settings.config.auth.enabled:  # secret files and key sets readable (and long enough) before any worker starts
        from sealserve.serve.auth import Authenticator

        run(lambda: Authenticator.from_config(settings.config.auth))
    run(lambda: check_sinks(settings.config.models))  # inference events' token and CA files, likewise
    if server.workers > 1:
        return None  # each worker builds its own; the parent only supervises them
    with collection_paused():
        from sealserve.serve.app import create_app
    return run(lambda: create_app(settings.config, trials=trials))


def start_trials(config: ServiceConfig) -> TrialRunner | None:
    """One server process whose models run a trial: its trial runner, started now (each of several workers starts its own)."""
    from sealserve.serve.config import BundleSource
    from sealserve.serve.lifecycle.trial import TrialRunner, serves_a_reference

    if config.server.workers > 1 or not any(isinstance(model, BundleSource) and model.trial_prediction for model in config.models):
        return None
    trials = TrialRunner(reference=serves_a_reference(config.models))
    trials.warm()
    return trials


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
