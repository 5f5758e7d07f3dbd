"""Explanations through the data plane: the prediction's auth, limits, validation, metrics and access log, with the
model's explainer (runtime/explain/) in place of the model call. Each served model's explainer is built on its first
explanation, or as it loads with `explain.load: eager`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from starlette.requests import Request

from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.explain.answer import BadChoice, Choice, render
from sealserve.runtime.explain.explainer import BudgetTooSmall, Explainer, NoExplanation
from sealserve.runtime.explain.settings import Explain
from sealserve.serve.errors import ProtocolError, ServingError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.dataplane import Batch, DataPlane, Inference, InferenceRequest

logger = logging.getLogger("sealserve.explain")
EXPLAINER, REFUSAL = "explainer", "explainer_refusal"
NO_METHOD = "no_explanation_method"
INLINE_ROWS = 4  # an exact explanation of this many rows runs on the event loop (benchmarks/explanations.py)


class Explanations:
    """One app's explanations: the data plane, the settings and a lock per build (an explainer is built once)."""

    def __init__(self, dataplane: DataPlane, settings: Explain) -> None:
        self.dataplane, self.settings = dataplane, settings
        self._lock = threading.Lock()
        if settings.load == "eager":
            dataplane.registry.on_load.append(self.prepare)

    def prepare(self, served: ServedModel) -> None:
        """Load hook (eager): build the explainer now; a model without a method says so in the log and still serves."""
        try:
            self.explainer(served)
        except ServingError as exc:
            logger.info("model %s %s: no explanations: %s", served.name, served.version, exc.message)

    def explainer(self, served: ServedModel) -> Explainer:
        found = served.attachments.get(EXPLAINER)
        if isinstance(found, Explainer):
            return found
        with self._lock:
            found = served.attachments.get(EXPLAINER)
            if isinstance(found, Explainer):
                return found
            refusal = served.attachments.get(REFUSAL)
            if refusal is None:
                refusal = self._build(served)
            if refusal is not None:
                raise ServingError(422, NO_METHOD, refusal)
            built = served.attachments[EXPLAINER]
            assert isinstance(built, Explainer)
            return built

    def _build(self, served: ServedModel) -> str | None:
        model = served.model
        if not isinstance(model, BundleModel):
            served.attachments[REFUSAL] = f"model {served.name!r} is a Python class model: explanations cover bundle models"
            return str(served.attachments[REFUSAL])
        started = time.perf_counter()
        try:
            explainer = Explainer(model, self.settings.max_evaluations)
        except NoExplanation as exc:
            served.attachments[REFUSAL] = str(exc)
            return str(exc)
        served.attachments[EXPLAINER] = explainer
        source = model.explanation
        logger.info(
            "model %s %s: explainer ready in %.2f s (%s; reference model %s, %d bytes kept for it)",
            served.name,
            served.version,
            time.perf_counter() - started,
            "exact" if explainer.exact is not None else "permutation",
            f"loaded in {source.load_seconds:.2f} s" if source is not None and source.load_seconds is not None else "already serving",
            source.kept_bytes if source is not None else 0,
        )
        return None

    async def explain(self, request: InferenceRequest, choice: Choice) -> Inference:
        async def work(served: ServedModel, batch: Batch) -> list[Any]:
            explainer = served.attachments.get(EXPLAINER)
            if len(batch) <= INLINE_ROWS and isinstance(explainer, Explainer) and explainer.exact is not None:
                return self._run(served, batch, choice)  # a fraction of a millisecond: cheaper than a thread hand-off
            return await asyncio.to_thread(self._run, served, batch, choice)

        return await self.dataplane.infer_with(request, work)

    def _run(self, served: ServedModel, batch: Batch, choice: Choice) -> list[dict[str, Any]]:
        explainer = self.explainer(served)
        try:
            explained = explainer.explain(batch)
            return render(explained, explainer.names, explainer.task == "classification", choice)
        except BudgetTooSmall as exc:
            raise ServingError(422, "explanation_budget", str(exc)) from None
        except BadChoice as exc:
            raise ServingError(422, "unknown_class", str(exc)) from None


def choice_of(request: Request) -> Choice:
    """`?top=k` (the k largest reasons) and `?class=` (a class label, or `all`; default: the predicted class)."""
    query = request.query_params
    top = query.get("top")
    if top is not None and not (top.isdigit() and 0 < int(top) <= 10_000):
        raise ProtocolError(400, f"top must be a positive whole number of reasons, not {top[:20]!r}")
    return Choice(int(top) if top is not None else None, query.get("class"))


def explanation_detail(served: ServedModel) -> dict[str, Any] | None:
    """A bundle model's explanations on its detail: the method once built (or why there is none), the reference model's
    load time when the compiled form serves, and the bytes kept for explanations since the model loaded."""
    model = served.model
    if not isinstance(model, BundleModel):
        return None
    source = model.explanation
    detail: dict[str, Any] = {"kept_bytes": source.kept_bytes if source is not None else 0}
    explainer, refusal = served.attachments.get(EXPLAINER), served.attachments.get(REFUSAL)
    if isinstance(explainer, Explainer):
        detail["method"] = "exact" if explainer.exact is not None else "permutation"
        if source is not None and source.load_seconds is not None:
            detail["reference_load_seconds"] = round(source.load_seconds, 3)
    elif refusal is not None:
        detail["refused"] = refusal
    return detail
