"""The model registry: loads each configured model (verify first), holds what is served, swaps atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import Tracer
from packaging.version import Version

from sealserve.bundle import files
from sealserve.bundle.metadata import check_version
from sealserve.errors import ConfigError, NotFoundError, SealserveError, StoreError
from sealserve.serve.config import BundleSource, ClassSource
from sealserve.serve.errors import ModelNotReadyError, UnknownModelError, shown
from sealserve.serve.lifecycle.loading import credentials_of, fetch_bundle, load_source, serve_verified, stage
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.lifecycle.trial import TrialRunner
from sealserve.store import Store, open_store
from sealserve.store.cache import BundleCache

logger = logging.getLogger("sealserve.registry")


@dataclass
class ModelState:
    """Status of one configured model, including the last failure while an older version keeps serving."""

    key: str
    source: BundleSource | ClassSource
    served: ServedModel | None = None
    error: str | None = None
    attempted: bool = False
    pinned: str | None = None
    unloaded: bool = False
    failed_version: str | None = None
    storage_error: str | None = None
    storage_since: datetime | None = None
    storage_checked: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The name clients use: the served model's (a class model's qualified name), else the configured one."""
        return self.served.name if self.served is not None else self.key

    @property
    def ready(self) -> bool:
        return self.served is not None

    def serving(self, version: str | None = None) -> ServedModel | None:
        """The served model when this model is ready (and serves `version`, when one is asked): every readiness answer."""
        served = self.served
        return served if served is not None and version in (None, served.version) else None

    @property
    def ref(self) -> str | None:
        """What this model follows now: an admin pin, else the configured ref (None for class models)."""
        if isinstance(self.source, ClassSource):
            return None
        return self.pinned or self.source.ref


@dataclass(frozen=True)
class LoadOutcome:
    """One load attempt: the version it activated, or the error that kept the previous one serving."""

    state: ModelState
    served: ServedModel | None
    error: Exception | None
    seconds: float


@dataclass
class ModelRegistry:
    """All configured models of one app; no module-level state, so two apps can run side by side.

    Admin API (also behind `sealserve admin` when the admin endpoints are enabled): `reload(name)`
    loads a model's ref now, `pin(name, version)` serves exactly that version (an explicit pin may be
    older than what was served), `unpin(name)` follows the configured ref again.
    """

    sources: list[BundleSource | ClassSource]
    limits: files.BundleLimits = field(default_factory=files.BundleLimits)
    cache_dir: Path | None = None
    on_load: list[Callable[[ServedModel], None]] = field(default_factory=list)
    on_outcome: list[Callable[[LoadOutcome], None]] = field(default_factory=list)  # after every attempt: metrics, logs
    trials: TrialRunner = field(default_factory=TrialRunner)
    tracer: Tracer | None = None  # the app's, when tracing is on: a span per load, fetch, verify, trial and load steps under it
    stopping: bool = field(default=False, init=False)  # set when the server drains: every readiness answer turns "not ready"

    def __post_init__(self) -> None:
        self._states = [ModelState(_key(source), source) for source in self.sources]
        self._served: dict[str, ServedModel] = {}
        self._highest: dict[str, Version] = {}
        self._lock = threading.Lock()
        self._stores: dict[str, Store] = {}
        self._cache: BundleCache | None = None

    @property
    def cache(self) -> BundleCache | None:
        """The verified cache, opened on first use; it also remembers the highest versions served before a restart."""
        if self._cache is None and self.cache_dir is not None:
            cache = BundleCache(self.cache_dir)
            with self._lock:
                for source in self.sources:
                    if isinstance(source, BundleSource):
                        before = cache.highest(source.name)
                        if before is not None:
                            self._highest[source.name] = max(before, self._highest.get(source.name, before))
                self._cache = cache
        return self._cache

    def load_all(self) -> None:
        for state in self._states:
            self.load(state)

    def load(self, state: ModelState) -> None:
        """Load the state's source now; on failure keep whatever version was already served.

        One load per model at a time. A store failure marks storage degraded and is retried later;
        a refused bundle (verification, rollback, format) is remembered so polling does not fetch it again.
        """
        with state.lock:
            state.unloaded = False
            attempt: list[str] = []
            started = time.perf_counter()
            failure: Exception | None = None
            served: ServedModel | None = None
            try:
                with stage(self.tracer, "model load", **{"sealserve.model.name": state.key}):
                    served = self._load(state, attempt)
                    for hook in self.on_load:  # a hook that fails fails the load: the previous version keeps serving
                        hook(served)
                    trace.get_current_span().set_attributes({"sealserve.model.version": served.version, "sealserve.origin": served.origin})
            except NotFoundError as exc:  # the store answered: the version or alias is not there
                failure = exc
                self._storage_ok(state)
                state.error = _failure(state, exc)
                state.failed_version = attempt[-1] if attempt else None
                logger.warning("model %s not loaded: %s", state.key, exc)
            except StoreError as exc:  # unreachable, refused credentials, server errors: retried later
                failure = exc
                self._storage_failed(state, exc)
                state.error = _failure(state, exc)
                logger.warning("model %s not loaded: %s", state.key, exc)
            except SealserveError as exc:
                failure = exc
                state.error = _failure(state, exc)
                state.failed_version = attempt[-1] if attempt else None
                logger.warning("model %s not loaded: %s", state.key, exc)
            except Exception as exc:  # a broken custom model class must not take the service down
                failure = exc
                state.error = f"{type(exc).__name__} while loading"
                logger.exception("model %s failed to load", state.key)
            else:
                with self._lock:
                    self._served[served.name] = served
                    state.served, state.error, state.failed_version = served, None, None
                    if served.metadata is not None:
                        self._highest[served.name] = max(self._highest.get(served.name, Version(served.version)), Version(served.version))
                if isinstance(state.source, BundleSource) and served.digest is not None and self.cache is not None:
                    self._remember(state, served)
                logger.info("model %s version %s loaded from %s (signer %s)", served.name, served.version, served.origin, served.signer)
            finally:
                state.attempted = True
            outcome = LoadOutcome(state, served if failure is None else None, failure, time.perf_counter() - started)
        for observe in self.on_outcome:
            observe(outcome)

    def poll(self, state: ModelState) -> None:
        """Ask the store what the state's ref names now; load it when it differs from what is served.

        A store that cannot answer never touches what is served: it only marks storage degraded.
        """
        ref = state.ref
        if ref is None or not isinstance(state.source, BundleSource):
            return
        try:
            version = self.store_for(state).resolve(state.source.name, ref)
        except NotFoundError as exc:
            self._storage_ok(state)
            message = _failure(state, exc)
            if message != state.error:
                logger.warning("model %s: %s", state.key, message)
            state.error = message
            return
        except StoreError as exc:
            self._storage_failed(state, exc)
            return
        self._storage_ok(state)
        served = state.served
        if served is not None and served.version == version:
            state.error = state.failed_version = None  # the ref names what is served: earlier reload failures are moot
            return
        if version == state.failed_version:
            return
        logger.info("model %s: %s now names %s (serving %s); reloading", state.key, ref, version, served.version if served else "nothing")
        self.load(state)

    def reload(self, name: str) -> ModelState:
        """Load the model's ref now, even a version that failed before (admin operation)."""
        state = self.state(name)
        self.load(state)
        return state

    def pin(self, name: str, version: str) -> ModelState:
        """Serve exactly `version` (older ones too: an explicit pin is allowed to roll back); raise if it cannot be loaded."""
        state = self.state(name)
        if not isinstance(state.source, BundleSource):
            raise ConfigError(f"{name} is a class model; it has no stored versions to pin")
        try:
            check_version(version)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        previous = state.pinned
        state.pinned = version
        self.load(state)
        if state.served is None or state.served.version != version:
            state.pinned = previous
            raise SealserveError(f"{name}: cannot pin {version}: {state.error or 'not loaded'}")
        logger.info("model %s pinned to %s", name, version)
        return state

    def unload(self, name: str) -> ModelState:
        """Stop serving a model until it is loaded again (admin operation); it no longer counts against readiness."""
        state = self.state(name)
        with state.lock:
            if state.served is not None:
                self._served.pop(state.served.name, None)
            state.served, state.unloaded, state.error = None, True, None
        logger.info("model %s unloaded", state.key)
        return state

    def unpin(self, name: str) -> ModelState:
        """Follow the configured ref again (rollback protection applies to it as usual)."""
        state = self.state(name)
        state.pinned = None
        self.load(state)
        return state

    def load_candidate(self, name: str, ref: str) -> ServedModel:
        """Fetch, verify and load `ref` of a bundle model beside what it serves (a rollout candidate): the same gate,
        trial and rollback check against what was served; nothing here serves it or counts it as served."""
        state = self.state(name)
        source = state.source
        if not isinstance(source, BundleSource):
            raise ConfigError(f"{name} is a class model; it has no stored versions to try")
        with stage(self.tracer, "candidate load", **{"sealserve.model.name": state.key}):
            store, cache = self.store_for(state), self.cache
            fetched = fetch_bundle(source, self.limits, dict(self._highest), ref=ref, store=store, cache=cache, tracer=self.tracer)
            keep = cache.keep if cache else None
            return serve_verified(source, fetched.verified, self.trials, origin=fetched.origin, keep=keep, tracer=self.tracer)

    def store_for(self, state: ModelState) -> Store:
        """The store of a bundle model, opened once and reused (its connection pool too)."""
        source = state.source
        if not isinstance(source, BundleSource):
            raise ConfigError(f"{state.key} is a class model; it has no store")
        store = self._stores.get(state.key)
        if store is None:
            store = self._stores[state.key] = open_store(source.store_url, credentials=credentials_of(source), limits=self.limits)
        return store

    def get(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is not None:
            return served
        if any(state.key == name for state in self._states):
            raise ModelNotReadyError(f"model {shown(name)} is not ready: {self.state(name).error or 'still loading'}")
        raise UnknownModelError(f"no model named {shown(name)}")

    def state(self, name: str) -> ModelState:
        for state in self._states:
            if state.key == name or (state.served is not None and state.served.name == name):
                return state
        raise UnknownModelError(f"no model named {shown(name)}")

    @property
    def states(self) -> list[ModelState]:
        return list(self._states)

    @property
    def served(self) -> list[ServedModel]:
        return list(self._served.values())

    @property
    def started(self) -> bool:
        return all(state.attempted for state in self._states)

    @property
    def ready(self) -> bool:
        """Every configured model is verified and loaded, except models an admin unloaded on purpose, and no stop is under way."""
        return not self.stopping and all(state.ready or state.unloaded for state in self._states)

    def serving(self, name: str, version: str | None = None) -> ServedModel | None:
        """A model's readiness answer: what it serves (of `version`, when asked), None while loading or once the server drains."""
        served = self.state(name).serving(version)
        return None if self.stopping else served

    @property
    def storage_degraded(self) -> bool:
        return any(state.storage_error is not None for state in self._states)

    def _load(self, state: ModelState, attempt: list[str]) -> ServedModel:
        source = state.source
        if isinstance(source, ClassSource):
            return load_source(source, self.limits, self.trials)
        fetched = fetch_bundle(
            source,
            self.limits,
            self._highest,
            ref=state.ref,
            store=self.store_for(state),
            cache=self.cache,
            attempt=attempt.append,
            tracer=self.tracer,
        )
        if fetched.storage_error is not None:
            self._storage_failed(state, fetched.storage_error)
        else:
            self._storage_ok(state)
        keep = self.cache.keep if self.cache else None
        return serve_verified(source, fetched.verified, self.trials, origin=fetched.origin, keep=keep, tracer=self.tracer)

    def _remember(self, state: ModelState, served: ServedModel) -> None:
        assert self.cache is not None
        assert served.digest is not None
        assert state.ref is not None
        try:
            self.cache.remember(served.name, state.ref, served.version, served.digest, self._highest.get(served.name))
        except (OSError, SealserveError) as exc:
            logger.warning("model %s: cannot update the cache index: %s", state.key, exc)

    def _storage_failed(self, state: ModelState, exc: StoreError) -> None:
        if state.storage_error is None:
            state.storage_since = datetime.now(UTC)
            logger.warning("model %s: storage degraded, serving continues: %s", state.key, exc)
        state.storage_error = str(exc)

    def _storage_ok(self, state: ModelState) -> None:
        if state.storage_error is not None:
            logger.info("model %s: storage reachable again", state.key)
        state.storage_error = state.storage_since = None
        state.storage_checked = datetime.now(UTC)


def _key(source: BundleSource | ClassSource) -> str:
    return source.name if isinstance(source, BundleSource) else source.class_path


def _failure(state: ModelState, exc: Exception) -> str:
    if state.served is None:
        return str(exc)
    return f"reload failed, still serving {state.served.version}: {exc}"
