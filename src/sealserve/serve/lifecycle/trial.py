"""A trial prediction in a child process before a bundle model goes live (docs/security.md, "Trial prediction").

After verification, a fresh interpreter (`python -m sealserve.serve.lifecycle.trial <folder>`, never a fork of the threaded
server) loads the verified folder through the loader the server uses (`build_model`, runtime/build.py) and predicts —
predict, and predict_proba when the model has probabilities — on a few records built from the bundle's schema and
training statistics: each feature's median (or most frequent category), its minimum and its maximum, and nulls where allowed.
A child that dies by a signal, exits non-zero or outlives its timeout fails the load: the model stays unready (or
keeps serving its last good version) and the server stays up. A child whose loader refuses the bundle (a policy
refusal) lets the server's own load raise that refusal with its own type.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, get_args

from sealserve.bundle.metadata import BundleMetadata, Feature, FeatureKind, FeatureStatistics
from sealserve.errors import SealserveError, TrialPredictionError
from sealserve.runtime.build import build_model
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.choice import RuntimeSetting
from sealserve.trust.verify import read_metadata

logger = logging.getLogger("sealserve.trial")

PASSED, FAILED, REFUSED = 0, 4, 3  # the child's exit statuses (1 and 2 are Python's own: an uncaught error, bad arguments)
MAX_OUTPUT = 1 << 20  # the child may write at most this much (RLIMIT_FSIZE; past it SIGXFSZ ends it)
TAIL = 4096  # bytes of the child's stderr kept for the log


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: `refused` holds the loader's refusal (the server's own load raises it), else the rows predicted."""

    seconds: float
    rows: int = 0
    peak_rss_kib: int | None = None
    refused: str | None = None
    raised: tuple[str, ...] = ()  # exception types of trial calls that raised (served as error answers, not crashes)

    @property
    def summary(self) -> str:
        text = f"{self.rows} rows, {self.seconds:.2f}s, child peak RSS {(self.peak_rss_kib or 0) / 1024:.0f} MiB"
        return text + (f"; {len(self.raised)} calls raised {', '.join(sorted(set(self.raised)))}" if self.raised else "")


def run_trial(folder: Path, *, runtime: RuntimeSetting, trusted_types: tuple[str, ...], allow_pickle: bool, timeout: float) -> TrialResult:
    """Run the trial child on a verified folder; raise TrialPredictionError when it crashes, fails or times out."""
    argv = [sys.executable, "-X", "faulthandler", "-m", "sealserve.serve.lifecycle.trial", str(folder), "--runtime", runtime]
    argv += ["--allow-pickle"] if allow_pickle else []
    for name in trusted_types:
        argv += ["--trust", name]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            raise TrialPredictionError(f"cannot start the trial prediction: {exc.strerror}") from None
        try:
            status = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child)
            _log_tail(folder, err)
            raise TrialPredictionError(f"the model did not finish its trial prediction within {timeout:g}s (killed)") from None
        except BaseException:  # shutdown while waiting: never leave the child behind
            _kill(child)
            raise
        seconds = time.perf_counter() - started
        if status < 0:
            _log_tail(folder, err)
            raise TrialPredictionError(f"the model crashed in its trial prediction ({_signal_name(-status)})")
        if status == REFUSED:
            return TrialResult(seconds, refused=(_tail(err).strip().splitlines() or ["refused"])[-1])
        if status != PASSED:
            _log_tail(folder, err)
            last = _tail(err).strip().splitlines()
            reason = last[-1].removeprefix("trial failed: ") if status == FAILED and last else f"exit status {status}"
            raise TrialPredictionError(f"the model failed its trial prediction ({reason})")
        out.seek(0)
        try:
            report = json.loads(out.read(TAIL))
            return TrialResult(seconds, int(report["rows"]), int(report["peak_rss_kib"]), raised=tuple(map(str, report["raised"])))
        except (ValueError, KeyError, TypeError):
            raise TrialPredictionError("the trial prediction ended without its report") from None


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # its own session: whatever it started goes too
    child.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(stream: IO[bytes]) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - TAIL))
    return stream.read(TAIL).decode(errors="replace")


def _log_tail(folder: Path, err: IO[bytes]) -> None:
    err.seek(0)  # at most MAX_OUTPUT bytes (the child's RLIMIT_FSIZE); faulthandler's list of extension modules is left out
    lines = err.read(MAX_OUTPUT).decode(errors="replace").strip().splitlines()
    tail = "\n".join(line for line in lines if not line.startswith("Extension modules:"))[-TAIL:]
    if tail:
        logger.warning("trial prediction of %s: the child's last output:\n%s", folder.name, tail)


# --- records built from the bundle's own schema and statistics --------------------------------------------------------


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


# --- the child ----------------------------------------------------------------------------------------------------


def predict(model: BundleModel) -> tuple[int, list[str]]:
    """The trial records as one batch and one by one: the rows predicted, and the exception types of the calls that
    raised. A raising call is not a failure: in the server it is an error answer, not a crash."""
    records = []
    for record in trial_records(model.metadata):
        try:
            records.append(model.input_schema.model_validate(record))
        except ValueError:  # a record the schema refuses never reaches the model in the server either
            continue
    rows, raised = 0, []
    for batch in [records, *([record] for record in records)]:
        try:
            rows += len(model.predict_records(batch))
        except Exception as exc:
            raised.append(type(exc).__name__)
    return rows, raised


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sealserve.serve.lifecycle.trial", description=__doc__)
    parser.add_argument("folder", type=Path, help="a verified bundle folder")
    parser.add_argument("--runtime", choices=get_args(RuntimeSetting), default="auto")
    parser.add_argument("--trust", action="append", default=[], help="a trusted type (repeatable)")
    parser.add_argument("--allow-pickle", action="store_true")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT, MAX_OUTPUT))
    try:
        metadata = read_metadata(args.folder)
        model = build_model(args.folder, metadata, runtime=args.runtime, trusted_types=tuple(args.trust), allow_pickle=args.allow_pickle)
    except SealserveError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return REFUSED
    try:
        rows, raised = predict(model)
    except Exception as exc:
        traceback.print_exc(limit=-8)
        print(f"trial failed: {type(exc).__name__}", file=sys.stderr)
        return FAILED
    print(json.dumps({"rows": rows, "raised": raised, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    return PASSED


if __name__ == "__main__":
    sys.exit(main())
