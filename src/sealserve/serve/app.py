"""The app factory: one FastAPI app per config, its registry passed in or built here, never global."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from sealserve.serve.auth import Authenticator, ModelAccess
from sealserve.serve.auth.grpc_gate import GrpcGate
from sealserve.serve.auth.http import AccessPolicy, add_auth_middleware, document_security
from sealserve.serve.auth.login import Login
from sealserve.serve.auth.login import build_router as login_router
from sealserve.serve.config import BundleSource, ServiceConfig
from sealserve.serve.lifecycle.actions import AdminActions
from sealserve.serve.lifecycle.fanout import WorkerSync
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.lifecycle.reload import Reloader
from sealserve.serve.lifecycle.trial import TrialRunner, serves_a_reference
from sealserve.serve.observability.access_log import FLUSH_SECONDS, AccessLines, AccessLog
from sealserve.serve.observability.cloud_events import EventOrigin
from sealserve.serve.observability.drift import DriftMonitor, drift_router, drift_status
from sealserve.serve.observability.events import InferenceEvents
from sealserve.serve.observability.failure_rate import FailureWindow
from sealserve.serve.observability.metrics import Metrics, MetricsHook, metrics_route
from sealserve.serve.observability.prediction_log import PredictionLogs
from sealserve.serve.observability.tracing.settings import trace_settings
from sealserve.serve.observability.tracing.spans import RpcSpans, TraceRequests, Tracing
from sealserve.serve.request.dataplane import DataPlane, InferenceHook
from sealserve.serve.request.drain import STATE_KEY, Drain
from sealserve.serve.request.explain.plane import Explanations
from sealserve.serve.request.explain.routes import explanation_routes
from sealserve.serve.request.hot_routes import HotRoute, HotRoutes
from sealserve.serve.request.protocols import StandardProtocols, admin, health, native
from sealserve.serve.request.protocols.errors import install_error_handlers, render_for_path
from sealserve.serve.request.protocols.native import without_endpoints
from sealserve.serve.rollout.api import build_router as rollout_router
from sealserve.serve.rollout.candidates import Rollout
from sealserve.serve.rollout.metrics import RolloutMetrics
from sealserve.serve.web.docs_page import docs_routes
from sealserve.serve.web.importance import GlobalImportance
from sealserve.serve.web.login_page import LoginPages, pages_for_browsers
from sealserve.serve.web.openapi import ModelDescription, build_openapi
from sealserve.serve.web.ui import WebPages

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    config: ServiceConfig,
    registry: ModelRegistry | None = None,
    *,
    load_before_serving: bool = False,
    workers_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    trials: TrialRunner | None = None,
) -> FastAPI:
    """Build the app. Models load in the background so probes can report progress, or, with several
    worker processes sharing one socket, before the worker accepts connections (no worker answers unloaded).
    `workers_dir` is the folder through which the workers of `serve --workers N` apply admin actions together;
    `environ` (the process's by default) holds the OTEL_* variables that configure tracing; `trials`: a trial runner
    already started (`sealserve serve` starts it before importing this module)."""
    if registry is None:
        registry = ModelRegistry(
            list(config.models),
            cache_dir=config.storage.cache_dir,
            trials=trials or TrialRunner(reference=serves_a_reference(config.models)),
        )
    models = registry
    settings = trace_settings(config.observability.tracing, os.environ if environ is None else environ)
    tracing = Tracing(settings) if settings is not None else None  # off: no provider, no exporter thread, no spans
    if tracing is not None:
        models.tracer = tracing.tracer
    sync = WorkerSync(workers_dir, models) if workers_dir is not None else None
    actions = AdminActions(models, sync)
    observability = config.observability
    drift = DriftMonitor(observability.drift)
    hooks: list[InferenceHook] = []
    if observability.drift.enabled:
        models.on_load.append(drift.attach)
        hooks.append(drift)
    metrics = Metrics() if observability.metrics else None
    if metrics is not None:
        hooks.append(MetricsHook(metrics, models))
    failures = FailureWindow(metrics) if metrics is not None else None
    prediction_logs = PredictionLogs(models, metrics.count_dropped_prediction if metrics is not None else lambda name: None)
    if prediction_logs.logs:
        hooks.append(prediction_logs)
    events = (
        InferenceEvents(models, EventOrigin.of(config.server, os.environ), metrics.count_dropped_events, metrics.count_sent_events)
        if metrics is not None
        else InferenceEvents(models, EventOrigin.of(config.server, os.environ))
    )
    if events.models:
        hooks.append(events)
    authenticator = Authenticator.from_config(config.auth) if config.auth.enabled else None
    if authenticator is not None:
        access = ModelAccess(explain_scope=config.explain.scope == "explain")
        hooks.insert(0, access)  # first: a refused caller costs no other hook anything
    rollout = Rollout(models, RolloutMetrics(metrics.registry) if metrics is not None else None)
    hooks.append(rollout)  # shadow copies, canary counts and guardrails; it is also the data plane's router
    dataplane = DataPlane(models, config.limits, config.batching, hooks, tracing, router=rollout)
    rollout.bind(dataplane, sync)
    explanations = Explanations(dataplane, config.explain)
    lines = AccessLines(observability.log_format) if observability.access_log else None
    gate = GrpcGate(authenticator) if authenticator is not None else None
    protocols = StandardProtocols(models, dataplane, config, gate, lines, actions, RpcSpans(tracing) if tracing is not None else None)
    drain = Drain(models, lambda: protocols.grpc_answered)
    drain.on_stop_accepting.append(protocols.stop_accepting)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.start()  # the sender thread, when a model sends inference events
        protocols.start()  # the gRPC port, when configured (first: a port in use fails start-up at once); REST ones are routers
        # One thread owns loading, start-up retries and alias polling (hot reload); it stops with the app.
        # With several workers it also applies the admin actions every worker must apply (fanout.py).
        reloader = app.state.reloader = Reloader(models, config.storage, sync=sync)
        if any(isinstance(source, BundleSource) and source.trial_prediction for source in models.sources):
            models.trials.warm()
        if load_before_serving:
            await asyncio.to_thread(reloader.load_initial)
        reloader.start(initial=not load_before_serving)
        flusher = asyncio.create_task(_flush_access_lines(lines)) if lines is not None else None
        sampler = asyncio.create_task(failures.run()) if failures is not None else None
        yield {STATE_KEY: drain}  # the draining server (shutdown.py) finds it here
        if sampler is not None:
            sampler.cancel()
        await protocols.stop(drain.remaining())  # gRPC calls in flight finish (they may still be queued in a batch below)
        if flusher is not None:
            flusher.cancel()
            lines.flush()  # type: ignore[union-attr]
        models.trials.cancel_running()  # a trial in progress fails its load; nothing waits for a hanging model
        await asyncio.to_thread(reloader.stop)
        await rollout.close()
        await dataplane.close()
        await asyncio.to_thread(prediction_logs.close)
        await asyncio.to_thread(events.close)
        if tracing is not None:
            await asyncio.to_thread(tracing.close)  # the spans of the last requests, the drain's included

    app = FastAPI(
        title=config.service_title,
        description=config.description,
        version=config.version,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,  # FastAPI's OpenTelemetry probe reads the environment on every request
        docs_url=None,  # served from packaged assets below, never from a CDN
        redoc_url=None,
    )
    app.state.registry = models
    app.state.dataplane = dataplane
    app.state.explanations = explanations
    app.state.protocols = protocols
    app.state.drain = drain
    app.state.drift = drift
    app.state.metrics = metrics
    app.state.rollout = rollout
    app.state.tracing = tracing
    install_error_handlers(app)
    hot: list[HotRoute] = []
    app.include_router(native.build_router(models, config.limits, dataplane, hot, drift_status(drift)))
    app.include_router(drift_router(drift, dataplane))
    app.include_router(health.build_router(models))
    app.include_router(rollout_router(rollout, config.admin.enabled))
    if config.admin.enabled:
        app.include_router(admin.build_router(actions))
    login = (
        Login.from_config(config.auth, authenticator.secret)
        if authenticator is not None and authenticator.secret and config.auth.users
        else None
    )
    if login is not None:
        app.include_router(login_router(login))
    for router in protocols.routers(hot):
        app.include_router(router)
    hot.extend(explanation_routes(explanations, config.limits, without_endpoints(models.states)))
    if metrics is not None:

        def refresh() -> None:
            drift.publish(metrics.drift_psi, models.served)
            rollout.publish()

        app.router.routes.append(metrics_route(metrics, refresh))
    app.router.routes.extend(docs_routes(config.service_title, app.openapi_url or "/openapi.json"))
    metrics_hook = next((hook for hook in hooks if isinstance(hook, MetricsHook)), None)
    pages = WebPages(models, drift, metrics_hook, failures, GlobalImportance(explanations, drift), rollout)
    app.router.routes.extend(pages.routes())
    if login is not None:
        app.router.routes.extend(LoginPages(login, pages.templates).routes())
    app.add_middleware(HotRoutes, routes=hot)
    policy = AccessPolicy(hot, config.auth.public, explain_scope=config.explain.scope == "explain")
    if authenticator is not None:
        add_auth_middleware(app, policy, authenticator, pages_for_browsers(render_for_path, login=login is not None))
    app.state.access_lines = lines
    app.add_middleware(AccessLog, lines=lines)  # it sees every route, the hot ones too
    if tracing is not None:
        app.add_middleware(TraceRequests, tracing=tracing, logged=lines is not None)  # outermost: its span is current for the access line

    def openapi() -> dict[str, Any]:
        schema = build_openapi(app, [ModelDescription.of_model(served.name, served.model) for served in models.served])
        return document_security(schema, policy, login is not None) if authenticator is not None else schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _flush_access_lines(lines: AccessLines) -> None:
    """Access lines reach the log within FLUSH_SECONDS even when traffic stops."""
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        lines.flush()
