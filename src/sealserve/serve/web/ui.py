"""The web page: an overview of the served models and one page per model, rendered on the server (Jinja2).

No script and nothing from another origin: a strict content security policy, report files served from memory
under an allow-list of content types (HTML reports sandboxed), never from a path a client names.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sealserve.serve.auth.session import COOKIE
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.observability.drift import DriftMonitor, DriftReport
from sealserve.serve.observability.failure_rate import FailureRate, FailureWindow
from sealserve.serve.observability.metrics import MetricsHook, RecentTraffic
from sealserve.serve.rollout.api import describe
from sealserve.serve.rollout.candidates import Rollout
from sealserve.serve.web.importance import GlobalImportance

HERE = Path(__file__).parent
PAGE_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
REPORT_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
REPORT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class ModelView:
    """What the pages show of one configured model."""

    state: ModelState
    traffic: RecentTraffic | None
    drift: DriftReport | None
    failures: FailureRate | None

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def runtime(self) -> str | None:
        return self.state.served.runtime if self.state.served is not None else None


class WebPages:
    def __init__(
        self,
        registry: ModelRegistry,
        drift: DriftMonitor,
        metrics: MetricsHook | None,
        failures: FailureWindow | None,
        importance: GlobalImportance | None = None,
        rollout: Rollout | None = None,
    ) -> None:
        self.registry, self.drift, self.metrics, self.failures = registry, drift, metrics, failures
        self.importance, self.rollout = importance, rollout
        self.templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.overview, methods=["GET"], include_in_schema=False),
            Route("/ui/models/{name}", self.model_page, methods=["GET"], include_in_schema=False),
            Route("/ui/models/{name}/reports/{report:path}", self.report, methods=["GET"], include_in_schema=False),
            Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
        ]

    def view(self, state: ModelState, failures: dict[str, FailureRate] | None = None) -> ModelView:
        served = state.served
        traffic = self.metrics.recent(served.name) if self.metrics is not None and served is not None else None
        rate = failures.get(state.name, FailureRate(0, 0)) if failures is not None else None
        return ModelView(state, traffic, self.drift.report(served) if served is not None else None, rate)

    def last_minute(self) -> dict[str, FailureRate] | None:
        return self.failures.last_minute() if self.failures is not None else None

    async def overview(self, request: Request) -> Response:
        failures = await asyncio.to_thread(self.last_minute)  # with several workers, it reads every worker's files
        views = [self.view(state, failures) for state in self.registry.states]
        return self._page(request, "index.html", {"models": views, "ready": self.registry.ready})

    async def model_page(self, request: Request) -> Response:
        failures = await asyncio.to_thread(self.last_minute)
        view = self.view(self.registry.state(request.path_params["name"]), failures)
        served = view.state.served
        metadata = served.metadata if served is not None else None
        images = [
            name
            for name in (served.reports if served is not None else {})
            if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".svg")
        ]
        importance = await asyncio.to_thread(self.importance.of, served) if self.importance is not None and served is not None else None
        candidate = await asyncio.to_thread(describe, self.rollout, view.state.key) if self.rollout is not None else None
        context = {
            "model": view,
            "metadata": metadata,
            "images": images,
            "drift_bars": _drift_bars(view.drift),
            "importance": importance,
            "rollout": candidate,
        }
        return self._page(request, "model.html", context)

    async def report(self, request: Request) -> Response:
        state = self.registry.state(request.path_params["name"])
        name = request.path_params["report"]
        body = state.served.reports.get(name) if state.served is not None else None
        if body is None:
            raise ServingError(404, "not_found", "no such report")
        media_type = REPORT_TYPES.get(Path(name).suffix.lower())
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": REPORT_POLICY}
        if media_type is None:
            media_type = "application/octet-stream"
            headers["Content-Disposition"] = "attachment"
        return Response(body, media_type=media_type, headers=headers)

    def _page(self, request: Request, template: str, context: dict[str, Any]) -> Response:
        context = {**context, "signed_in": COOKIE in request.cookies}
        response: Response = self.templates.TemplateResponse(request, template, context)
        response.headers.update({**SECURITY_HEADERS, "Content-Security-Policy": PAGE_POLICY})
        return response


def _drift_bars(report: DriftReport | None) -> list[dict[str, Any]]:
    """One bar per feature for the drift chart: width on a scale that puts `alert` at two thirds."""
    if report is None:
        return []
    scale = report.settings.alert * 1.5
    return [
        {
            "name": feature.name,
            "psi": feature.psi,
            "status": feature.status,
            "width": 0 if feature.psi is None else min(1.0, feature.psi / scale),
        }
        for feature in report.features
    ]
