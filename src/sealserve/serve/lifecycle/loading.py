"""Getting one model ready to serve: resolve its ref, refuse rollbacks, fetch (store or verified cache),
verify, and only then deserialize. The registry calls these; `openapi` and the benchmarks reuse them."""

from __future__ import annotations

import importlib
import logging
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Tracer
from packaging.version import Version

from sealserve import errors
from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.errors import (
    BundleFormatError,
    ConfigError,
    SealserveError,
    StoreError,
    TrialPredictionError,
    VerificationError,
)
from sealserve.model import MLModel
from sealserve.runtime.build import build_model
from sealserve.serve.config import BundleSource, ClassSource
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.lifecycle.trial import TrialRunner
from sealserve.store import Credentials, Store, StoreUnavailableError, open_store
from sealserve.store.cache import BundleCache
from sealserve.trust.identity.policy import TrustPolicy
from sealserve.trust.rollback import check_rollback
from sealserve.trust.verify import VerifiedBundle, verify_staged

logger = logging.getLogger("sealserve.loading")


def stage(tracer: Tracer | None, name: str, **attributes: str) -> AbstractContextManager[object]:
    """A span for one step of a model load, under the load's span, when tracing is on (registry.py starts that one)."""
    return tracer.start_as_current_span(name, attributes=attributes) if tracer is not None else nullcontext()


def credentials_of(source: BundleSource) -> Credentials | None:
    given = source.store_credentials
    if given is None:
        return None
    token = given.session_token.get_secret_value() if given.session_token is not None else None
    return Credentials(given.access_key_id, given.secret_access_key.get_secret_value(), token)


def load_source(
    source: BundleSource | ClassSource, limits: files.BundleLimits, trials: TrialRunner, highest: dict[str, Version] | None = None
) -> ServedModel:
    if isinstance(source, ClassSource):
        logger.warning("model class %s is trusted code: it is imported and run without bundle verification", source.class_path)
        model = construct_class_model(source)
        return ServedModel(model.qualified_name, model, model.version, datetime.now(UTC))
    return serve_verified(source, fetch_verified(source, limits, highest or {}), trials)


def serve_verified(
    source: BundleSource,
    verified: VerifiedBundle,
    trials: TrialRunner,
    *,
    origin: str = "store",
    keep: Callable[[VerifiedBundle], None] | None = None,
    tracer: Tracer | None = None,
) -> ServedModel:
    """Deserialize a verified bundle (allow-listed loaders only), then keep it in the cache or discard its folder."""
    runtime, trusted, allow_pickle = source.runtime, source.trusted_types, source.allow_pickle
    try:
        trial = None  # a child process loads and predicts first (trial.py): a crash there costs this model, not the server
        if source.trial_prediction:
            with stage(tracer, "trial"):
                trial = trials.run(
                    verified.path,
                    runtime=runtime,
                    trusted_types=trusted,
                    allow_pickle=allow_pickle,
                    timeout=source.trial_timeout,
                    memory=source.trial_memory_mb << 20,
                )
        if trial is not None and trial.refused is not None:  # the child's loader refused it: nothing is deserialized here
            raise refusal_of(trial.refused)
        with stage(tracer, "load", **{"sealserve.model.format": verified.metadata.format}):
            model = build_model(
                verified.path,
                verified.metadata,
                runtime=runtime,
                trusted_types=trusted,
                allow_pickle=allow_pickle,
                audited=trial is not None,  # the child audited the reference file; a compiled form then needs no skops here
            )
        if trial is not None:
            log = logger.warning if trial.raised else logger.info  # a raising call is an error answer in the server, not a crash
            log("model %s %s: trial prediction passed (%s)", source.name, verified.metadata.version, trial.summary)
        reports = read_reports(verified)
        if keep is not None:
            try:
                keep(verified)
            except (OSError, SealserveError) as exc:
                logger.warning("model %s: cannot keep %s in the cache: %s", source.name, verified.metadata.version, exc)
    finally:
        verified.discard()
    return ServedModel(
        source.name,
        model,
        verified.metadata.version,
        datetime.now(UTC),
        verified.signer.label,
        verified.digest,
        verified.metadata,
        origin,
        provenance=verified.provenance.describe(),
        reports=reports,
    )


def refusal_of(refused: str) -> SealserveError:
    """The trial child's refusal ("UnsafeModelError: message") as the error this process's loader would have raised."""
    name, _, message = refused.partition(": ")
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, SealserveError) and message:
        return kind(message)
    return TrialPredictionError(f"the trial prediction's loader refused the bundle: {refused}")


def read_reports(verified: VerifiedBundle) -> dict[str, bytes]:
    """The bundle's report files (signed and verified like the model), kept in memory for the web page; one past
    MAX_REPORT_BYTES, or past MAX_REPORTS_BYTES in all, is left out and logged."""
    reports: dict[str, bytes] = {}
    total = 0
    for name in verified.metadata.reports:
        if name not in verified.file_digests:
            continue
        path = verified.path / name
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES or total + size > MAX_REPORTS_BYTES:
            logger.info("model %s: report %s (%d bytes) is too large for the web page", verified.metadata.name, name, size)
            continue
        reports[name] = path.read_bytes()
        total += size
    return reports


MAX_REPORT_BYTES = 8 << 20
MAX_REPORTS_BYTES = 32 << 20


@dataclass(frozen=True)
class Fetched:
    """A verified bundle, where it came from, and the store failure that sent us to the cache (if any)."""

    verified: VerifiedBundle
    origin: str
    storage_error: StoreError | None = None


def fetch_verified(source: BundleSource, limits: files.BundleLimits, highest: dict[str, Version]) -> VerifiedBundle:
    """Resolve the ref, refuse rollbacks, fetch into a private folder and verify; nothing is deserialized."""
    return fetch_bundle(source, limits, highest).verified


def fetch_bundle(
    source: BundleSource,
    limits: files.BundleLimits,
    highest: dict[str, Version],
    *,
    ref: str | None = None,
    store: Store | None = None,
    cache: BundleCache | None = None,
    attempt: Callable[[str], None] | None = None,
    tracer: Tracer | None = None,
) -> Fetched:
    """Resolve, refuse rollbacks, then verify a copy from the cache (when it holds that version) or the store.

    With the store unreachable, the version the ref last served is taken from the cache — after full
    re-verification, never on trust. Nothing is deserialized here.
    """
    ref = ref or source.ref
    store = store or open_store(source.store_url, credentials=credentials_of(source), limits=limits)
    keyring = trust_of(source)
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
        with stage(tracer, "verify", **{"sealserve.origin": "cache"}):
            return Fetched(cache.restore(entry, keyring, limits), "cache", exc)
    if attempt is not None:
        attempt(version)
    check_rollback(source.name, ref, version, highest)
    if cache is not None:
        entry = cache.entry(source.name, version)
        if entry is not None:
            try:
                with stage(tracer, "verify", **{"sealserve.origin": "cache"}):
                    return Fetched(cache.restore(entry, keyring, limits), "cache")
            except (VerificationError, BundleFormatError, OSError) as exc:
                logger.warning("model %s: cached %s failed re-verification (%s); fetching it from the store", source.name, version, exc)
                cache.drop(entry)
    workdir = cache.workdir() if cache is not None else files.private_directory("sealserve-model-")
    try:
        with stage(tracer, "fetch", **{"sealserve.model.version": version}):
            digests = store.fetch(source.name, version, workdir)
        with stage(tracer, "verify", **{"sealserve.origin": "store"}):
            return Fetched(verify_staged(workdir, digests, keyring, name=source.name, version=version), "store")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def trust_of(source: BundleSource) -> Keyring | TrustPolicy:
    """Who may sign this model, read at every load so a rotated keyring, policy or trusted root applies."""
    if source.trust_policy is not None:
        return TrustPolicy.load(source.trust_policy)
    assert source.keyring is not None  # the config requires one of the two
    return Keyring.load(source.keyring)


def construct_class_model(source: ClassSource) -> MLModel:
    module_name, _, class_name = source.class_path.rpartition(".")
    try:
        model_class: Any = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"cannot import model class {source.class_path!r}") from None
    if not (isinstance(model_class, type) and issubclass(model_class, MLModel)):
        raise ConfigError(f"{source.class_path} is not an MLModel subclass")
    model: MLModel = model_class(**source.configuration)
    if source.qualified_name is not None and source.qualified_name != model.qualified_name:
        raise ConfigError(
            f"{source.class_path}: the configuration names the model {source.qualified_name!r}, "
            f"but the constructed model's qualified_name is {model.qualified_name!r}"
        )
    return model
