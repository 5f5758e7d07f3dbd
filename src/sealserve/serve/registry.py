"""The model registry: loads each configured model (verify first), holds what is served, swaps atomically."""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import BundleMetadata, check_version
from sealserve.bundle.verify import VerifiedBundle, verify_staged
from sealserve.errors import BundleFormatError, ConfigError, NotFoundError, RollbackError, SealserveError, StoreError, VerificationError
from sealserve.model import MLModel
from sealserve.serve.bundle_model import BundleModel
from sealserve.serve.config import BundleSource, ClassSource
from sealserve.store import Credentials, Store, StoreUnavailableError, open_store
from sealserve.store.cache import BundleCache

logger = logging.getLogger("sealserve.registry")


@dataclass(frozen=True)
class ServedModel:
    """One loaded model and the provenance every response and status page reports."""

    name: str
    model: MLModel
    version: str
    loaded_at: datetime
    signer: str | None = None
    digest: str | None = None
    metadata: BundleMetadata | None = None
    origin: str = "store"


@dataclass
class ModelState:
    """Status of one configured model, including the last failure while an older version keeps serving."""

    key: str
    source: BundleSource | ClassSource
    served: ServedModel | None = None
    error: str | None = None
    attempted: bool = False
    pinned: str | None = None
    failed_version: str | None = None
    storage_error: str | None = None
    storage_since: datetime | None = None
    storage_checked: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ready(self) -> bool:
        return self.served is not None

    @property
    def ref(self) -> str | None:
        """What this model follows now: an admin pin, else the configured ref (None for class models)."""
        if isinstance(self.source, ClassSource):
            return None
        return self.pinned or self.source.ref


class UnknownModelError(SealserveError):
    """No configured model has this name."""


class ModelNotReadyError(SealserveError):
    """The model is configured but has no verified, loaded version yet."""


@dataclass
class ModelRegistry:
    """All configured models of one app; no module-level state, so two apps can run side by side.

    Admin API (also behind `sealserve admin` when the admin endpoints are enabled): `reload(name)`
    loads a model's ref now, `pin(name, version)` serves exactly that version (an explicit pin may be
    older than what was served), `unpin(name)` follows the configured ref again.
    """

    sources: list[BundleSource | ClassSource]
    limits: files.Limits = field(default_factory=files.Limits)
    cache_dir: Path | None = None

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
            attempt: list[str] = []
            try:
                served = self._load(state, attempt)
            except NotFoundError as exc:  # the store answered: the version or alias is not there
                self._storage_ok(state)
                state.error = _failure(state, exc)
                state.failed_version = attempt[-1] if attempt else None
                logger.warning("model %s not loaded: %s", state.key, exc)
            except StoreError as exc:  # unreachable, refused credentials, server errors: retried later
                self._storage_failed(state, exc)
                state.error = _failure(state, exc)
                logger.warning("model %s not loaded: %s", state.key, exc)
            except SealserveError as exc:
                state.error = _failure(state, exc)
                state.failed_version = attempt[-1] if attempt else None
                logger.warning("model %s not loaded: %s", state.key, exc)
            except Exception as exc:  # a broken custom model class must not take the service down
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

    def unpin(self, name: str) -> ModelState:
        """Follow the configured ref again (rollback protection applies to it as usual)."""
        state = self.state(name)
        state.pinned = None
        self.load(state)
        return state

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
            raise ModelNotReadyError(f"model {name!r} is not ready: {self.state(name).error or 'still loading'}")
        raise UnknownModelError(f"no model named {name!r}")

    def state(self, name: str) -> ModelState:
        for state in self._states:
            if state.key == name or (state.served is not None and state.served.name == name):
                return state
        raise UnknownModelError(f"no model named {name!r}")

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
        return all(state.ready for state in self._states)

    @property
    def storage_degraded(self) -> bool:
        return any(state.storage_error is not None for state in self._states)

    def _load(self, state: ModelState, attempt: list[str]) -> ServedModel:
        source = state.source
        if isinstance(source, ClassSource):
            return load_source(source, self.limits)
        fetched = fetch_bundle(
            source, self.limits, self._highest, ref=state.ref, store=self.store_for(state), cache=self.cache, attempt=attempt.append
        )
        if fetched.storage_error is not None:
            self._storage_failed(state, fetched.storage_error)
        else:
            self._storage_ok(state)
        return serve_verified(source, fetched.verified, origin=fetched.origin, keep=self.cache.keep if self.cache else None)

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


def credentials_of(source: BundleSource) -> Credentials | None:
    given = source.store_credentials
    if given is None:
        return None
    token = given.session_token.get_secret_value() if given.session_token is not None else None
    return Credentials(given.access_key_id, given.secret_access_key.get_secret_value(), token)


def load_source(source: BundleSource | ClassSource, limits: files.Limits, highest: dict[str, Version] | None = None) -> ServedModel:
    if isinstance(source, ClassSource):
        model = construct_class_model(source)
        return ServedModel(model.qualified_name, model, model.version, datetime.now(UTC))
    return serve_verified(source, fetch_verified(source, limits, highest or {}))


def serve_verified(
    source: BundleSource, verified: VerifiedBundle, *, origin: str = "store", keep: Callable[[VerifiedBundle], None] | None = None
) -> ServedModel:
    """Deserialize a verified bundle (allow-listed loaders only), then keep it in the cache or discard its folder."""
    try:
        estimator = verified.load(trusted_types=source.trusted_types, allow_pickle=source.allow_pickle)
        model = BundleModel(verified.metadata, estimator)
        if keep is not None:
            try:
                keep(verified)
            except (OSError, SealserveError) as exc:
                logger.warning("model %s: cannot keep %s in the cache: %s", source.name, verified.metadata.version, exc)
    finally:
        verified.discard()
    return ServedModel(
        source.name, model, verified.metadata.version, datetime.now(UTC), verified.signer.kid, verified.digest, verified.metadata, origin
    )


@dataclass(frozen=True)
class Fetched:
    """A verified bundle, where it came from, and the store failure that sent us to the cache (if any)."""

    verified: VerifiedBundle
    origin: str
    storage_error: StoreError | None = None


def fetch_verified(source: BundleSource, limits: files.Limits, highest: dict[str, Version]) -> VerifiedBundle:
    """Resolve the ref, refuse rollbacks, fetch into a private folder and verify; nothing is deserialized."""
    return fetch_bundle(source, limits, highest).verified


def fetch_bundle(
    source: BundleSource,
    limits: files.Limits,
    highest: dict[str, Version],
    *,
    ref: str | None = None,
    store: Store | None = None,
    cache: BundleCache | None = None,
    attempt: Callable[[str], None] | None = None,
) -> Fetched:
    """Resolve, refuse rollbacks, then verify a copy from the cache (when it holds that version) or the store.

    With the store unreachable, the version the ref last served is taken from the cache — after full
    re-verification, never on trust. Nothing is deserialized here.
    """
    ref = ref or source.ref
    store = store or open_store(source.store_url, credentials=credentials_of(source), limits=limits)
    keyring = Keyring.load(source.keyring)
    try:
        version = store.resolve(source.name, ref)
    except StoreUnavailableError as exc:
        entry = cache.lookup(source.name, ref) if cache is not None else None
        if cache is None or entry is None:
            raise
        if attempt is not None:
            attempt(entry.version)
        check_rollback(source.name, ref, entry.version, highest)
        logger.warning("model %s: store unreachable, serving cached %s after re-verifying it", source.name, entry.version)
        return Fetched(cache.restore(entry, keyring, limits), "cache", exc)
    if attempt is not None:
        attempt(version)
    check_rollback(source.name, ref, version, highest)
    if cache is not None:
        entry = cache.entry(source.name, version)
        if entry is not None:
            try:
                return Fetched(cache.restore(entry, keyring, limits), "cache")
            except (VerificationError, BundleFormatError, OSError) as exc:
                logger.warning("model %s: cached %s failed re-verification (%s); fetching it from the store", source.name, version, exc)
                cache.drop(entry)
    workdir = cache.workdir() if cache is not None else files.private_directory("sealserve-model-")
    try:
        digests = store.fetch(source.name, version, workdir)
        return Fetched(verify_staged(workdir, digests, keyring, name=source.name, version=version), "store")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def check_rollback(name: str, ref: str, version: str, highest: dict[str, Version]) -> None:
    """An alias may not take the service back to an older version; naming the version explicitly may."""
    if version == ref:
        return
    served = highest.get(name)
    try:
        older = served is not None and Version(version) < served
    except InvalidVersion:
        raise StoreError(f"{name}: {ref!r} names {version!r}, which is not a version") from None
    if older:
        raise RollbackError(f"{name}: alias {ref!r} points at {version}, older than {served} already served; pin {version} to roll back")


def construct_class_model(source: ClassSource) -> MLModel:
    module_name, _, class_name = source.class_path.rpartition(".")
    try:
        model_class: Any = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"cannot import model class {source.class_path!r}") from None
    if not (isinstance(model_class, type) and issubclass(model_class, MLModel)):
        raise ConfigError(f"{source.class_path} is not an MLModel subclass")
    model: MLModel = model_class(**source.configuration)
    return model
