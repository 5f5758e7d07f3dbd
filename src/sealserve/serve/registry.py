"""The model registry: loads each configured model (verify first), holds what is served, swaps atomically."""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.version import Version

from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import BundleMetadata
from sealserve.bundle.verify import VerifiedBundle, verify_staged
from sealserve.errors import ConfigError, RollbackError, SealserveError
from sealserve.model import MLModel
from sealserve.serve.bundle_model import BundleModel
from sealserve.serve.config import BundleSource, ClassSource
from sealserve.store import open_store

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


@dataclass
class ModelState:
    """Status of one configured model, including the last failure while an older version keeps serving."""

    key: str
    source: BundleSource | ClassSource
    served: ServedModel | None = None
    error: str | None = None
    attempted: bool = False

    @property
    def ready(self) -> bool:
        return self.served is not None


class UnknownModelError(SealserveError):
    """No configured model has this name."""


class ModelNotReadyError(SealserveError):
    """The model is configured but has no verified, loaded version yet."""


@dataclass
class ModelRegistry:
    """All configured models of one app; no module-level state, so two apps can run side by side."""

    sources: list[BundleSource | ClassSource]
    limits: files.Limits = field(default_factory=files.Limits)

    def __post_init__(self) -> None:
        self._states = [ModelState(_key(source), source) for source in self.sources]
        self._served: dict[str, ServedModel] = {}
        self._highest: dict[str, Version] = {}
        self._lock = threading.Lock()

    def load_all(self) -> None:
        for state in self._states:
            self.load(state)

    def load(self, state: ModelState) -> None:
        """Load the state's source now; on failure keep whatever version was already served."""
        try:
            served = load_source(state.source, self.limits, self._highest)
        except SealserveError as exc:
            state.error = str(exc)
            logger.warning("model %s not loaded: %s", state.key, exc)
        except Exception as exc:  # a broken custom model class must not take the service down
            state.error = f"{type(exc).__name__} while loading"
            logger.exception("model %s failed to load", state.key)
        else:
            with self._lock:
                self._served[served.name] = served
                state.served, state.error = served, None
                if served.metadata is not None:
                    self._highest[served.name] = max(self._highest.get(served.name, Version(served.version)), Version(served.version))
            logger.info("model %s version %s loaded (signer %s)", served.name, served.version, served.signer)
        finally:
            state.attempted = True

    def reload(self, name: str) -> ModelState:
        state = self.state(name)
        self.load(state)
        return state

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


def _key(source: BundleSource | ClassSource) -> str:
    return source.name if isinstance(source, BundleSource) else source.class_path


def load_source(source: BundleSource | ClassSource, limits: files.Limits, highest: dict[str, Version] | None = None) -> ServedModel:
    if isinstance(source, ClassSource):
        model = construct_class_model(source)
        return ServedModel(model.qualified_name, model, model.version, datetime.now(UTC))
    verified = fetch_verified(source, limits, highest or {})
    try:
        estimator = verified.load(trusted_types=source.trusted_types, allow_pickle=source.allow_pickle)
        model = BundleModel(verified.metadata, estimator)
    finally:
        verified.discard()
    return ServedModel(
        source.name, model, verified.metadata.version, datetime.now(UTC), verified.signer.kid, verified.digest, verified.metadata
    )


def fetch_verified(source: BundleSource, limits: files.Limits, highest: dict[str, Version]) -> VerifiedBundle:
    """Resolve the ref, refuse rollbacks, fetch into a private folder and verify; nothing is deserialized."""
    store = open_store(source.store_url)
    version = store.resolve(source.name, source.ref)
    pinned = version == source.ref
    served = highest.get(source.name)
    if not pinned and served is not None and Version(version) < served:
        raise RollbackError(f"{source.name}: alias {source.ref!r} points at {version}, older than {served} already served")
    keyring = Keyring.load(source.keyring)
    workdir = files.private_directory("sealserve-model-")
    try:
        digests = store.fetch(source.name, version, workdir)
        return verify_staged(workdir, digests, keyring, name=source.name, version=version)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


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
