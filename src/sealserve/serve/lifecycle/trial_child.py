"""The trial prediction's child: forked from the warm trial runner, it loads a verified folder through the server's own
loader (`build_model`) and predicts on records built from the bundle's schema and training statistics."""

from __future__ import annotations

import faulthandler
import json
import math
import multiprocessing
import os
import resource
import signal
import sys
import threading
import traceback
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from sealserve.bundle.metadata import BundleMetadata, Feature, FeatureKind, FeatureStatistics
from sealserve.errors import BundleFormatError, SealserveError
from sealserve.runtime.build import build_model
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.choice import RuntimeSetting
from sealserve.trust.verify import read_metadata

PASSED, FAILED, REFUSED = 0, 4, 3  # exit statuses (1 is an uncaught error)
MAX_OUTPUT = 1 << 20  # the child may write at most this much (RLIMIT_FSIZE; past it SIGXFSZ ends it)


def run(
    folder: Path, runtime: RuntimeSetting, trusted_types: tuple[str, ...], allow_pickle: bool, memory: int, out: Path, err: Path
) -> None:
    """The child's whole life: its own session, bounded output and memory, the load, the predictions, the report."""
    os.setsid()  # one process group: a kill reaches whatever the model started
    _die_with_the_server()
    _redirect(out, 1)
    _redirect(err, 2)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT, MAX_OUTPUT))
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    sys.exit(_trial(folder, runtime, trusted_types, allow_pickle))


def _trial(folder: Path, runtime: RuntimeSetting, trusted_types: tuple[str, ...], allow_pickle: bool) -> int:
    try:
        metadata = read_metadata(folder)
        model = build_model(folder, metadata, runtime=runtime, trusted_types=trusted_types, allow_pickle=allow_pickle)
    except SealserveError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return REFUSED
    except MemoryError:
        print("trial failed: MemoryError", file=sys.stderr, flush=True)
        return FAILED
    try:
        rows, raised = predict(model)
    except BundleFormatError as exc:  # the encoders' own message: which protocol cannot answer, and why
        print(f"trial failed: {exc}", file=sys.stderr, flush=True)
        return FAILED
    except Exception as exc:
        traceback.print_exc(limit=-8)
        print(f"trial failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        return FAILED
    report = {"rows": rows, "raised": raised, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    print(json.dumps(report), flush=True)
    return PASSED


def _die_with_the_server() -> None:
    """A watchdog: when the process that asked for this trial exits, even by SIGKILL, the trial ends with it."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch(sentinel: int) -> None:
        wait([sentinel])
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, args=(parent.sentinel,), daemon=True).start()


def _redirect(path: Path, fd: int) -> None:
    target = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(target, fd)
    os.close(target)


def trial_records(metadata: BundleMetadata) -> list[dict[str, Any]]:
    """Typical, lowest and highest values of every feature (a record each), and one with every nullable feature null."""
    columns = [(feature, _values(feature, metadata.statistics.get(feature.name))) for feature in metadata.features]
    records = [{feature.name: values[i] for feature, values in columns} for i in range(3)]
    if any(feature.nullable for feature in metadata.features):
        records.append({feature.name: None if feature.nullable else values[0] for feature, values in columns})
    return records


def _values(feature: Feature, stats: FeatureStatistics | None) -> tuple[Any, Any, Any]:
    """(typical, low, high) for one feature, within its declared bounds and categories."""
    if feature.kind is FeatureKind.CATEGORY:
        labels = list(feature.categories or {})
        frequent = [label for label, _ in sorted((stats.frequencies or {}).items(), key=lambda item: -item[1])] if stats else []
        known = [label for label in frequent if label in labels or feature.allow_unknown]
        label = known[0] if known else (labels[0] if labels else "unknown")
        return label, labels[0] if labels else label, labels[-1] if labels else label
    if feature.kind is FeatureKind.TEXT:
        return "sealserve trial prediction", "", "x" * 1000
    if feature.kind is FeatureKind.BOOLEAN:
        return bool(stats is not None and (stats.mean or 0.0) >= 0.5), False, True
    typical = _median(stats)
    low = stats.minimum if stats is not None and stats.minimum is not None else typical
    high = stats.maximum if stats is not None and stats.maximum is not None else typical
    values = [_bounded(feature, value) for value in (typical, low, high)]
    if feature.kind is FeatureKind.INTEGER:
        return _whole(feature, values[0]), _whole(feature, values[1]), _whole(feature, values[2])
    return values[0], values[1], values[2]


def _median(stats: FeatureStatistics | None) -> float:
    if stats is None:
        return 0.0
    if stats.bin_edges:  # decile edges: the middle one is the median
        return float(stats.bin_edges[len(stats.bin_edges) // 2])
    return float(stats.mean) if stats.mean is not None else 0.0


def _whole(feature: Feature, value: float) -> int:
    whole = round(value)
    if feature.minimum is not None and whole < feature.minimum:
        whole = math.ceil(feature.minimum)
    if feature.maximum is not None and whole > feature.maximum:
        whole = math.floor(feature.maximum)
    return whole


def _bounded(feature: Feature, value: float) -> float:
    if feature.minimum is not None:
        value = max(value, feature.minimum)
    if feature.maximum is not None:
        value = min(value, feature.maximum)
    return float(value)


def predict(model: BundleModel) -> tuple[int, list[str]]:
    """The trial records as one batch and one by one: the rows predicted, and the exception types of the calls that
    raised. A raising call is not a failure: in the server it is an error answer, not a crash. An answer the protocols'
    encoders cannot shape is one: every request would fail the same way."""
    records = []
    for record in trial_records(model.metadata):
        try:
            records.append(model.input_schema.model_validate(record))
        except ValueError:  # a record the schema refuses never reaches the model in the server either
            continue
    rows, raised = 0, []
    for batch in [records, *([record] for record in records)]:
        try:
            predictions = model.predict_records(batch)
        except MemoryError:  # past the trial's memory limit: a failure, never an error answer
            raise
        except Exception as exc:
            raised.append(type(exc).__name__)
            continue
        model.check_answers(predictions)
        rows += len(predictions)
    return rows, raised
