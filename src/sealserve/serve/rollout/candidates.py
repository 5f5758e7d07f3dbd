"""Each model's candidate in this worker: loaded through the registry's verified path, shadowed or canaried by the
data plane (this object is its router and one of its hooks), judged by its guardrails, aborted or promoted.

Promotion is the store's: `sealserve promote` moves the alias production follows; when the registry loads that
version as production, the candidate is done ("promoted"). `abort` removes it and records why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from sealserve.errors import SealserveError
from sealserve.serve.config import BundleSource
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.fanout import WorkerSync
from sealserve.serve.lifecycle.registry import LoadOutcome, ModelRegistry
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.model_options import Candidate
from sealserve.serve.request.dataplane import (
    RUNNER,
    Batch,
    DataPlane,
    Inference,
    InferenceHook,
    InferenceRequest,
    ModelRunner,
    Outputs,
)
from sealserve.serve.rollout.comparison import summarize
from sealserve.serve.rollout.metrics import RolloutMetrics
from sealserve.serve.rollout.shadow import ShadowRunner
from sealserve.serve.rollout.shared import SharedComparisons
from sealserve.serve.rollout.trial import Ended, Queued, Trial, joined, packed, per_part, unpacked
from sealserve.store.base import is_version

logger = logging.getLogger("sealserve.rollout")

P99_EVERY = 50  # canary requests between two p99 checks (a percentile costs more than a counter)
MIN_LATENCIES = 20  # production answers the p99 comparison needs
ABORTS_KEPT = 10


class Rollout(InferenceHook):
    """Every model's candidate in this worker: the data plane's router (canary) and hook (shadow, counts, guardrails)."""

    def __init__(self, registry: ModelRegistry, metrics: RolloutMetrics | None = None) -> None:
        self.registry, self.metrics = registry, metrics
        self.dataplane: DataPlane | None = None  # bound once the data plane exists (it takes this object as router)
        self.sync: WorkerSync | None = None
        self.trials: dict[str, Trial] = {}
        self.ended: dict[str, deque[Ended]] = {}
        self._retired: list[ServedModel] = []
        self.shared: SharedComparisons | None = None
        self._lock = threading.Lock()
        for state in registry.states:
            if isinstance(state.source, BundleSource) and state.source.candidate is not None:
                self.trials[state.key] = Trial(state.key, state.source.candidate, "config")
        registry.on_outcome.append(self.loaded)

    def bind(self, dataplane: DataPlane, sync: WorkerSync | None = None) -> None:
        """Attach the data plane; with several workers, take candidate actions from the others and share this
        worker's comparisons through their folder."""
        self.dataplane, self.sync = dataplane, sync
        if sync is not None:
            sync.candidates = self
            self.shared = SharedComparisons(sync.folder, self._exports_by_model)

    def apply(self, key: str, candidate: dict[str, Any] | None, reason: str, by: str) -> tuple[bool, str | None]:
        """A candidate action every worker applies (fanout.py): set it, or abort it (already gone counts as done)."""
        try:
            if candidate is None:
                if key in self.trials:
                    self.abort(key, reason, by, counted=False)
            else:
                self.set(key, Candidate.model_validate(candidate), by)
        except ServingError as exc:
            return False, exc.message
        finally:
            if self.shared is not None:
                self.shared.write()
        return True, None

    def adopt(self, key: str, candidate: dict[str, Any] | None) -> None:
        with self._lock:
            if candidate is None:
                self.trials.pop(key, None)
            else:
                self.trials[key] = Trial(key, Candidate.model_validate(candidate), "admin")

    def exports(self, key: str) -> list[dict[str, Any]]:
        """The comparison's raw parts: this worker's, or with several workers every worker's."""
        trial = self.trials.get(key)
        if trial is None:
            return []
        if self.shared is None or trial.served is None:
            return [trial.comparison.export()]
        return self.shared.read(key, trial.served.version)

    def _exports_by_model(self) -> dict[str, Any]:
        return {
            key: {"version": trial.served.version, "export": trial.comparison.export()}
            for key, trial in list(self.trials.items())
            if trial.served
        }

    def publish(self) -> None:
        """Before a scrape: the agreement gauge from the same summed view as the JSON."""
        if self.metrics is None:
            return
        for key in list(self.trials):
            view = summarize(self.exports(key))
            agreement = view["window"]["agreement"]
            if agreement is not None:
                self.metrics.agreement.labels(key).set(agreement)

    # -- set, abort, promotion -------------------------------------------------------------------------------

    def loaded(self, outcome: LoadOutcome) -> None:
        """Registry hook after each production load: a configured candidate loads once production has; production
        now serving the candidate's version means it was promoted."""
        served, trial = outcome.served, self.trials.get(outcome.state.key)
        if served is None or trial is None:
            return
        if trial.served is not None and trial.served.version == served.version:
            self._end(trial, "promoted", f"production now serves {served.version}", "store")
        elif trial.status == "loading" and trial.served is None:
            self._load(trial)

    def set(self, name: str, config: Candidate, by: str) -> Trial:
        """Load `config.ref` as the model's candidate (blocking: fetch, verify, trial, load), replacing any other."""
        state = self.registry.state(name)
        if not isinstance(state.source, BundleSource):
            raise ServingError(409, "candidate_failed", f"{name} is a class model; it has no stored versions to try")
        trial = Trial(state.key, config, by)
        self._load(trial)
        if trial.status != "active":
            raise ServingError(409, "candidate_failed", f"{name}: candidate {config.ref} not loaded: {trial.error}")
        with self._lock:
            previous = self.trials.get(state.key)
            self.trials[state.key] = trial
        if previous is not None:
            self._retire(previous, Ended(previous.served.version if previous.served else None, "aborted", "replaced", by))
        return trial

    def abort(self, name: str, reason: str, by: str, *, counted: bool = True) -> Ended:
        key = self.registry.state(name).key
        trial = self.trials.get(key)
        if trial is None:
            raise ServingError(404, "no_candidate", f"model {name} has no candidate")
        ended = self._end(trial, "aborted", reason, by, counted=counted)
        if ended is None:  # another thread ended it first
            raise ServingError(404, "no_candidate", f"model {name} has no candidate")
        return ended

    def promote(self, name: str) -> tuple[str, str]:
        """Point the model's ref alias at its candidate's version in the store (with `candidate.allow_promote` only: the
        serving replicas should not hold store write credentials otherwise); the reload that follows serves it, verified
        and rollback-checked as any version. The alias and the version."""
        state = self.registry.state(name)
        trial = self.trials.get(state.key)
        if trial is None or trial.served is None:
            raise ServingError(404, "no_candidate", f"model {name} has no loaded candidate")
        source, version = state.source, trial.served.version
        assert isinstance(source, BundleSource)  # a class model never gets a candidate (set)
        if not trial.config.allow_promote:
            raise ServingError(
                403,
                "promote_not_allowed",
                f"{name}: this server does not promote (candidate.allow_promote is false); run `sealserve promote {name} {version} "
                f"{source.ref} STORE_URL` with store write credentials",
            )
        if state.pinned is not None:
            raise ServingError(409, "promote_failed", f"{name} is pinned to {state.pinned}; unpin it before promoting")
        if is_version(source.ref):
            raise ServingError(409, "promote_failed", f"{name} follows the fixed version {source.ref}, not an alias: nothing to move")
        try:
            self.registry.store_for(state).promote(source.name, version, source.ref)
        except SealserveError as exc:
            raise ServingError(409, "promote_failed", f"{name}: the store did not move {source.ref} to {version}: {exc}") from None
        logger.info("model %s: %s now points at the candidate %s (promoted by the server)", name, source.ref, version)
        return source.ref, version

    def _load(self, trial: Trial) -> None:
        try:
            served = self.registry.load_candidate(trial.key, trial.config.ref)
        except SealserveError as exc:
            trial.status, trial.error = "failed", str(exc)
            logger.warning("model %s: candidate %s not loaded: %s", trial.key, trial.config.ref, exc)
            return
        except Exception as exc:  # whatever a load does, the candidate fails, not the server
            trial.status, trial.error = "failed", f"{type(exc).__name__} while loading"
            logger.exception("model %s: candidate %s failed to load", trial.key, trial.config.ref)
            return
        production = self.registry.state(trial.key).served
        if production is not None and production.version == served.version:
            trial.status, trial.error = "failed", f"{trial.config.ref} names {served.version}, the version production serves"
            return
        if trial.config.mode == "shadow":
            trial.shadow = ShadowRunner(trial.key, lambda items: self._score(trial, items), lambda count: self._dropped(trial, count))
        trial.served, trial.status, trial.error = served, "active", None
        logger.info("model %s: candidate %s (%s) loaded for %s", trial.key, served.version, trial.config.ref, trial.config.mode)

    def _end(self, trial: Trial, outcome: str, reason: str, by: str, *, counted: bool = True) -> Ended | None:
        with self._lock:
            if self.trials.get(trial.key) is not trial:
                return None
            del self.trials[trial.key]
        ended = Ended(trial.served.version if trial.served else None, outcome, reason, by)
        self._retire(trial, ended)
        if self.metrics is not None and outcome == "aborted" and counted:  # once: where it was decided
            self.metrics.aborted(trial.key, "guardrail" if by == "guardrail" else "admin")
        logger.warning("model %s: candidate %s %s by %s: %s", trial.key, ended.version, outcome, by, reason)
        return ended

    def _retire(self, trial: Trial, ended: Ended) -> None:
        if trial.shadow is not None:
            trial.shadow.close(timeout=0)
        if trial.served is not None:
            self._retired.append(trial.served)
        self.ended.setdefault(trial.key, deque(maxlen=ABORTS_KEPT)).appendleft(ended)

    async def sweep(self) -> None:
        """Close the runners of candidates that ended (their batchers live on the event loop)."""
        retired, self._retired = self._retired, []
        for served in retired:
            runner = served.attachments.get(RUNNER)
            if isinstance(runner, ModelRunner):
                await runner.close()

    async def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        for trial in list(self.trials.values()):
            if trial.shadow is not None:
                trial.shadow.close()
            if trial.served is not None:
                self._retired.append(trial.served)
        await self.sweep()

    # -- the data plane's side ---------------------------------------------------------------------------------

    def route(self, request: InferenceRequest, served: ServedModel, batch: Batch) -> ServedModel | None:
        trial = self.trials.get(served.name)
        if trial is None or trial.served is None or trial.config.mode != "canary" or not trial.chooser.candidate(request.headers, batch):
            return None
        return trial.served

    def failed(self, request: InferenceRequest, candidate: ServedModel, error: ServingError) -> None:
        trial = self.trials.get(candidate.name)
        if trial is None or trial.served is not candidate:
            return
        seconds = time.perf_counter() - request.started
        trial.comparison.error(seconds)
        with trial.lock:
            trial.canary_requests += 1
            trial.canary_errors += 1
        if self.metrics is not None:
            self.metrics.counted(trial.key, "canary_error")
        log = logger.warning if trial.canary_errors == 1 else logger.debug  # the count is in the view and the metrics
        log("model %s: candidate %s failed a canary request (%s); production answered", trial.key, candidate.version, error.message)
        self._judge(trial)

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        if result is None:
            return
        trial = self.trials.get(result.served.name)
        if trial is None or trial.served is None:
            return
        seconds = time.perf_counter() - request.started
        if result.served is trial.served:
            trial.canary_seconds.append(seconds)
            trial.comparison.record((), (), seconds)
            with trial.lock:
                trial.canary_requests += 1
            if self.metrics is not None:
                self.metrics.counted(trial.key, "canary")
            self._judge(trial)
            return
        if self.metrics is not None:
            self.metrics.counted(trial.key, "production")
        if trial.config.mode == "canary":
            trial.production_seconds.append(seconds)
        elif trial.shadow is not None and trial.sampled() and not trial.shadow.offer(packed(trial, request, result)):
            self._dropped(trial, 1)

    def _dropped(self, trial: Trial, count: int) -> None:
        """Requests the shadow did not score: its queue was full, or the server saturated (shadow.py)."""
        trial.comparison.dropped(count)
        if self.metrics is not None:
            self.metrics.counted(trial.key, "dropped", count)

    def _score(self, trial: Trial, items: list[Queued]) -> None:
        """One candidate call for the queued requests (the shadow thread), then each compared with production's answer."""
        candidate, dataplane = trial.served, self.dataplane
        assert candidate is not None
        assert dataplane is not None
        runner = dataplane.runner(candidate)
        parts: list[Batch] = []
        answers: list[Outputs] = []
        for inputs, answer, request in items:
            try:
                part = inputs if request is None else dataplane.decode(request, runner)
                assert part is not None  # kept when the candidate takes production's validated inputs as they are
                parts.append(part)
                answers.append(unpacked(answer))
            except Exception as exc:
                self._shadow_failed(trial, candidate, exc, 0.0)
        started = time.perf_counter()
        try:
            outputs = runner.run_parts(parts, split=False) if parts else []  # one answer for the group when it can be
        except Exception as exc:
            if len(parts) > 1:  # find which requests the candidate fails: one call each
                for part, answer in zip(parts, answers, strict=True):
                    self._score_one(trial, runner, part, answer)
                return
            self._shadow_failed(trial, candidate, exc, time.perf_counter() - started)
            return
        seconds = time.perf_counter() - started
        production, candidate_outputs = joined(answers), outputs[0] if len(outputs) == 1 else joined(outputs)
        if production is not None and candidate_outputs is not None:
            trial.comparison.record(production, candidate_outputs, seconds, requests=len(answers))
        else:  # answers that cannot be joined (production reloaded between them): compared request by request
            for answer, output in zip(answers, per_part(outputs, parts), strict=True):
                trial.comparison.record(answer, output, seconds)
        if self.metrics is not None:
            self.metrics.counted(trial.key, "shadow", len(answers))

    def _score_one(self, trial: Trial, runner: ModelRunner, part: Batch, production: Outputs) -> None:
        started = time.perf_counter()
        try:
            output = runner.run_blocking(part)
        except Exception as exc:
            self._shadow_failed(trial, runner.served, exc, time.perf_counter() - started)
            return
        trial.comparison.record(production, output, time.perf_counter() - started)
        if self.metrics is not None:
            self.metrics.counted(trial.key, "shadow")

    def _shadow_failed(self, trial: Trial, candidate: ServedModel, exc: Exception, seconds: float) -> None:
        trial.comparison.error(seconds)
        if self.metrics is not None:
            self.metrics.counted(trial.key, "shadow_error")
        logger.info("model %s: candidate %s failed a shadow request: %s", trial.key, candidate.version, exc)

    def _judge(self, trial: Trial) -> None:
        """The guardrails, once `min_requests` canary requests were answered; an abort happens here, in this worker."""
        guardrails, requests = trial.config.guardrails, trial.canary_requests
        if requests < guardrails.min_requests:
            return
        rate, errors, bound = trial.canary_errors / requests, trial.canary_errors, guardrails.max_error_rate
        reason = None
        if rate > bound:
            reason = f"guardrail max_error_rate: {errors} of {requests} canary requests failed ({rate:.1%} > {bound:.1%})"
        elif (
            (requests - guardrails.min_requests) % P99_EVERY == 0
            and len(trial.production_seconds) >= MIN_LATENCIES
            and trial.canary_seconds
        ):
            candidate = float(np.percentile(np.asarray(trial.canary_seconds), 99))
            production = float(np.percentile(np.asarray(trial.production_seconds), 99))
            if production > 0 and candidate / production > guardrails.max_p99_ratio:
                reason = f"guardrail max_p99_ratio: candidate p99 {candidate * 1000:.1f} ms is {candidate / production:.1f}x production's"
        if reason is not None:
            ended = self._end(trial, "aborted", reason, "guardrail")
            if ended is not None and self.sync is not None:  # the other workers abort it too, told off this thread
                extra = {"candidate": None, "reason": reason, "by": f"guardrail in worker {os.getpid()}"}
                threading.Thread(target=self._tell, args=(trial.key, extra), name="sealserve-rollout-abort", daemon=True).start()

    def _tell(self, key: str, extra: dict[str, Any]) -> None:
        assert self.sync is not None
        try:
            self.sync.run("abort", key, None, extra)
        except Exception:
            logger.exception("model %s: the other workers could not be told of the abort", key)
