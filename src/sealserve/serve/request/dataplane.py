"""The one inference entry under every protocol: resolve the model, check limits, validate, run, observe.

Protocol adapters decode their wire format into records or a validated columnar batch and encode the outputs
back; everything between is here, so authorization, metrics and drift hook into one place (`InferenceHook`).
"""

from __future__ import annotations

import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.authentication import BaseUser

from sealserve.runtime.bundle_model import BundleModel, Predictions
from sealserve.runtime.columns import Columns
from sealserve.serve.config import Batching, RequestLimits
from sealserve.serve.errors import ProtocolError, ServingError, serving_error_of, shown
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.batching import AdaptiveBatcher
from sealserve.serve.request.interface import ModelInterface
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.responses import Exchange

INLINE_RUNTIMES = frozenset({"onnxruntime"})
RUNNER = "runner"


def check_rows(rows: int, limits: RequestLimits) -> None:
    """The one batch-size rule, applied before anything proportional to the request is built."""
    if rows == 0:
        raise ProtocolError(400, "the request holds no rows to predict")
    if rows > limits.max_batch_size:
        raise ServingError(413, "batch_too_large", f"batch of {rows} rows exceeds max_batch_size {limits.max_batch_size}")


Batch = Sequence[Any] | Columns  # records, or a batch already validated column by column
Outputs = Predictions | list[Any]  # arrays for bundle models, one output object per row for class models
Decode = Callable[[ModelInterface], Batch]
Prepared = tuple[ServedModel, "ModelRunner", Batch]  # what answers, its runner, its validated inputs


@dataclass(frozen=True)
class InferenceRequest:
    """What an adapter hands over: which model, and how to turn its message into records once the model is known.

    `rows`, when the message states it before decoding (a declared shape, a list length), is checked first, so an
    oversized request is refused before any work proportional to it. `validated`: `decode` already applied the
    model's schema (the native API validates straight from its JSON bytes, with per-field details).
    """

    model: str
    protocol: Protocol
    decode: Decode
    version: str | None = None
    rows: int | None = None
    item: str = "row"
    validated: bool = False
    request_id: str | None = None
    principal: BaseUser | None = None  # who is asking, when auth is on (auth/principal.py)
    purpose: str = "predict"  # or "explain": an explanation (serve/request/explaining.py), not a prediction
    headers: Mapping[str, str] | None = None  # HTTP headers or gRPC metadata: a canary's sticky key may be one
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Inference:
    """The served model, its protocol interface, the validated inputs and the outputs (read them through the interface)."""

    served: ServedModel
    interface: ModelInterface
    inputs: Batch
    outputs: Outputs
    seconds: float


@dataclass
class Stages:
    """When one traced inference's stages began and ended (perf_counter seconds), for its spans (observability/tracing/spans.py).

    Only requests whose trace is sampled carry one; `parent` is the request's server span.
    """

    parent: Any
    epoch_ns: int  # time.time_ns() at `clock`: span times are epoch nanoseconds
    clock: float
    served: ServedModel | None = None
    decode: tuple[float, float] | None = None
    queued: float | None = None
    model: tuple[float, float] | None = None
    rows: int = 0  # this request's
    batch_rows: int = 0  # the model call's (several requests' with batching)
    finished: float = 0.0

    def at(self, clock: float) -> int:
        return self.epoch_ns + int((clock - self.clock) * 1e9)

    def ran(self, started: float, ended: float, rows: int) -> None:
        self.model, self.batch_rows = (started, ended), rows


class StageTracer(typing.Protocol):
    """Spans for the stages of an inference: `begin` answers None unless the current request's trace is sampled."""

    def begin(self) -> Stages | None: ...

    def end(self, request: InferenceRequest, stages: Stages, error: ServingError | None) -> None: ...


class Router(typing.Protocol):
    """Picks another version to answer a request that names none (a canary, serve/rollout/); None keeps the served one."""

    def route(self, request: InferenceRequest, served: ServedModel, batch: Batch) -> ServedModel | None: ...

    def failed(self, request: InferenceRequest, candidate: ServedModel, error: ServingError) -> None:
        """The candidate could not answer: production answers instead, and the router counts it."""


class InferenceHook:
    """Called around every inference on every protocol; `admit` and `before` may refuse it by raising a ServingError."""

    def admit(self, request: InferenceRequest) -> None:
        """Runs first, before the model is resolved (authorization: an unknown model is no reason to answer 404)."""

    def before(self, request: InferenceRequest, served: ServedModel) -> None:
        """Runs after the model is resolved, before the request is decoded."""

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        """Runs once per request with its result or the error its client received, however early it failed."""

    def answered(self, request: InferenceRequest, result: Inference, exchange: Exchange) -> None:
        """After the adapter encoded a successful answer, with what crossed the wire; adapters skip the call (and
        building `exchange`) unless a hook defines it (`DataPlane.answering`)."""

    def model_ran(self, served: ServedModel, rows: int, seconds: float) -> None:
        """After each model call (with batching, several callers' rows): the model's own time."""

    def batched(self, served: ServedModel, rows: int, waits: Sequence[float]) -> None:
        """As a batch starts: its rows and each caller's seconds in the queue (models that run off the event loop)."""


class ModelRunner:
    """How one loaded model runs: in line for a microsecond runtime, else off the event loop through its batcher."""

    def __init__(self, served: ServedModel, batching: Batching, hooks: Sequence[InferenceHook] = ()) -> None:
        self.served, self.model, self.hooks = served, served.model, hooks
        self.interface = ModelInterface(self.model)
        self.traced: dict[int, Stages] = {}  # a queued part's stages, by the part's id, while its caller waits
        self.inline = isinstance(self.model, BundleModel) and self.model.runtime_name in INLINE_RUNTIMES
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{served.name}")
        self.batcher: AdaptiveBatcher[Batch, Outputs] = AdaptiveBatcher(
            self.run_parts,
            len,
            max_batch_size=batching.max_batch_size,
            max_latency_ms=batching.max_latency_ms,
            max_queue=batching.max_queue,
            executor=self._executor,
            name=served.name,
            observe=self._batched if hooks else None,
        )

    def run_blocking(self, batch: Batch, stages: Stages | None = None) -> Outputs:
        model = self.model
        started = time.perf_counter()
        if isinstance(model, BundleModel):
            outputs: Outputs = model.predict_columns(batch.arrays) if isinstance(batch, Columns) else model.predict_records(batch)
        else:
            assert not isinstance(batch, Columns)
            outputs = list(model.predict_batch(batch))
        ended = time.perf_counter()
        for hook in self.hooks:
            hook.model_ran(self.served, len(batch), ended - started)
        if stages is not None:
            stages.ran(started, ended, len(batch))
        return outputs

    def _batched(self, rows: int, waits: list[float]) -> None:
        for hook in self.hooks:
            hook.batched(self.served, rows, waits)

    async def run(self, batch: Batch, stages: Stages | None = None) -> Outputs:
        if self.inline:
            return self.run_blocking(batch, stages)
        if stages is None:
            return await self.batcher.submit(batch)
        stages.queued = time.perf_counter()
        self.traced[id(batch)] = stages
        try:
            return await self.batcher.submit(batch)
        finally:
            self.traced.pop(id(batch), None)

    async def close(self) -> None:
        await self.batcher.close()
        self._executor.shutdown(wait=False)

    def run_parts(self, parts: list[Batch], split: bool = True) -> list[Outputs]:
        """One model call for several callers' batches; each caller gets back exactly its own rows, or without `split`
        the call's one answer for all of them (one per part only if they could not be joined)."""
        traced = self.traced
        if len(parts) == 1:
            return [self.run_blocking(parts[0], traced.get(id(parts[0])) if traced else None)]
        columns = [part for part in parts if isinstance(part, Columns)]
        records = [part for part in parts if not isinstance(part, Columns)]
        if columns and records:  # the two forms hold different values (codes, labels): one call each
            return [self.run_blocking(part, traced.get(id(part)) if traced else None) for part in parts]
        started = time.perf_counter()
        outputs = self.run_blocking(Columns.concat(columns) if columns else [record for part in records for record in part])
        if traced:
            ended, rows = time.perf_counter(), sum(len(part) for part in parts)
            for part in parts:
                stages = traced.get(id(part))
                if stages is not None:
                    stages.ran(started, ended, rows)
        if not split:
            return [outputs]
        results, start = [], 0
        for part in parts:
            results.append(outputs[start : start + len(part)])
            start += len(part)
        return results


def _undecodable(interface: ModelInterface) -> Batch:
    raise AssertionError("a refused request is never decoded")


class DataPlane:
    """Inference for one app: the registry attaches a runner to each model as it loads (a load hook)."""

    def __init__(
        self,
        registry: ModelRegistry,
        limits: RequestLimits,
        batching: Batching,
        hooks: Iterable[InferenceHook] = (),
        tracer: StageTracer | None = None,
        router: Router | None = None,
    ) -> None:
        self.registry, self.limits, self.batching, self.tracer, self.router = registry, limits, batching, tracer, router
        self.hooks = list(hooks)
        self._admitting = [hook for hook in self.hooks if type(hook).admit is not InferenceHook.admit]
        self._answering = [hook for hook in self.hooks if type(hook).answered is not InferenceHook.answered]
        self.answering = bool(self._answering)
        registry.on_load.append(self.attach)

    def attach(self, served: ServedModel) -> None:
        """Load hook: build the model's runner (interface, batcher) before it starts serving; it lives as long as the model."""
        served.attachments[RUNNER] = ModelRunner(served, self.batching, self.hooks)

    def runner(self, served: ServedModel) -> ModelRunner:
        runner = served.attachments.get(RUNNER)
        if runner is None:
            self.attach(served)
            runner = served.attachments[RUNNER]
        assert isinstance(runner, ModelRunner)
        return runner

    def resolve(self, name: str, version: str | None = None) -> ServedModel:
        """The served model (404 unknown, 503 not ready); a named version must be the one being served."""
        served = self.registry.get(name)
        if version and version != served.version:
            raise ProtocolError(404, f"model {shown(name)} has no version {shown(version)}; serving {served.version}")
        return served

    def interface(self, served: ServedModel) -> ModelInterface:
        return self.runner(served).interface

    def check_rows(self, rows: int) -> None:
        check_rows(rows, self.limits)

    async def infer(self, request: InferenceRequest) -> Inference:
        started = time.perf_counter()
        stages = self.tracer.begin() if self.tracer is not None else None
        try:
            prepared = self._prepare(request, stages)
            served, runner, batch = self._canary(request, *prepared) or prepared
            try:
                outputs = await runner.run(batch, stages)
            except Exception as exc:
                served, runner, batch = self._fall_back(request, prepared, served, exc)
                outputs = await runner.run(batch, stages)
        except Exception as exc:
            raise self._failed(request, exc, stages) from None
        return self._finish(request, (served, runner, batch), outputs, started, stages)

    async def infer_with(self, request: InferenceRequest, work: Callable[[ServedModel, Batch], Awaitable[Outputs]]) -> Inference:
        """`infer` with other work on the validated batch in place of the model call (explanations): the same hooks,
        limits and validation, its outputs what `work` answers."""
        started = time.perf_counter()
        try:
            served, runner, batch = self._prepare(request)
            outputs = await work(served, batch)
        except Exception as exc:
            raise self._failed(request, exc, None) from None
        return self._finish(request, (served, runner, batch), outputs, started, None)

    def infer_blocking(self, request: InferenceRequest) -> Inference:
        """The same entry for callers on their own threads (the gRPC server): runs the model in the calling thread."""
        started = time.perf_counter()
        stages = self.tracer.begin() if self.tracer is not None else None
        try:
            prepared = self._prepare(request, stages)
            served, runner, batch = self._canary(request, *prepared) or prepared
            try:
                outputs = runner.run_blocking(batch, stages)
            except Exception as exc:
                served, runner, batch = self._fall_back(request, prepared, served, exc)
                outputs = runner.run_blocking(batch, stages)
        except Exception as exc:
            raise self._failed(request, exc, stages) from None
        return self._finish(request, (served, runner, batch), outputs, started, stages)

    def answered(self, request: InferenceRequest, result: Inference, exchange: Exchange) -> None:
        """An adapter's answer was encoded: the hooks that record exchanges see it (call only when `answering`)."""
        for hook in self._answering:
            hook.answered(request, result, exchange)

    def refused(self, protocol: Protocol, model: str, exc: BaseException, started: float) -> None:
        """A request its adapter refused before it reached `infer` (unreadable body, malformed envelope): the hooks see
        it too, so every inference request is observed exactly once. Errors `infer` already reported are skipped."""
        error = serving_error_of(exc)
        if not error.observed:
            error.observed = True
            self._after(InferenceRequest(model, protocol, _undecodable, started=started), None, error)

    def _failed(self, request: InferenceRequest, exc: Exception, stages: Stages | None) -> ServingError:
        error = serving_error_of(exc)
        error.observed = True
        self._after(request, None, error)
        if stages is not None:
            assert self.tracer is not None
            stages.finished = time.perf_counter()
            self.tracer.end(request, stages, error)
        return error

    def _prepare(self, request: InferenceRequest, stages: Stages | None = None) -> tuple[ServedModel, ModelRunner, Batch]:
        for hook in self._admitting:
            hook.admit(request)
        served = self.resolve(request.model, request.version)
        for hook in self.hooks:
            hook.before(request, served)
        if request.rows is not None:
            self.check_rows(request.rows)
        runner = self.runner(served)
        if stages is not None:
            stages.served, decoding = served, time.perf_counter()
        batch = self.decode(request, runner)
        if stages is not None:
            stages.decode, stages.rows = (decoding, time.perf_counter()), len(batch)
        return served, runner, batch

    def decode(self, request: InferenceRequest, runner: ModelRunner) -> Batch:
        """The request's records, validated for `runner`'s model (a candidate with another schema decodes again)."""
        batch = request.decode(runner.interface)
        self.check_rows(len(batch))
        return batch if isinstance(batch, Columns) or request.validated else runner.interface.validate(batch, request.item)

    def _canary(self, request: InferenceRequest, served: ServedModel, runner: ModelRunner, batch: Batch) -> Prepared | None:
        """The candidate that answers instead, when the router picks one; inputs validated again if its schema differs."""
        if self.router is None or request.version is not None or (candidate := self.router.route(request, served, batch)) is None:
            return None
        try:
            other = self.runner(candidate)
            return candidate, other, batch if candidate.takes_inputs_of(served) else self.decode(request, other)
        except Exception as exc:
            self._fall_back(request, (served, runner, batch), candidate, exc)
            return None

    def _fall_back(self, request: InferenceRequest, production: Prepared, failed: ServedModel, exc: Exception) -> Prepared:
        """A candidate that could not answer is counted against it, and production answers; production's own failure raises."""
        if failed is production[0] or self.router is None:
            raise exc
        self.router.failed(request, failed, serving_error_of(exc))
        return production

    def _finish(self, request: InferenceRequest, chosen: Prepared, outputs: Outputs, started: float, stages: Stages | None) -> Inference:
        served, runner, batch = chosen
        result = Inference(served, runner.interface, batch, outputs, time.perf_counter() - started)
        self._after(request, result, None)
        if stages is not None:
            assert self.tracer is not None
            stages.finished = time.perf_counter()
            self.tracer.end(request, stages, None)
        return result

    def _after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        for hook in self.hooks:
            hook.after(request, result, error)

    async def close(self) -> None:
        for served in self.registry.served:
            runner = served.attachments.get(RUNNER)
            if isinstance(runner, ModelRunner):
                await runner.close()
