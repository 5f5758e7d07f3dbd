"""Production against the candidate on the same inputs: agreement, confusion, probability and value differences,
PSI between their outputs, the candidate's errors and latency, over a bounded window and since start.

Each worker keeps its own; `export` gives a worker's raw counts and window, `summarize` adds several up (the JSON
view of a multi-worker server sums every worker's, as /metrics does). A restart starts a new window and totals.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from sealserve.runtime.answers import Predictions

WINDOW = 1000  # rows (and candidate calls) the recent comparison keeps
MAX_PAIRS = 64  # distinct (production, candidate) label pairs counted; the rest count as "other"
PSI_BINS = 10
EPSILON = 1e-4
OTHER = "other"
TOTAL_KEYS = ("requests", "rows", "agreed", "errors", "dropped", "probability_rows", "calls")
SUM_KEYS = ("probability_sum", "difference_sum", "abs_difference_sum", "seconds_sum")
MAX_KEYS = ("probability_max", "abs_difference_max", "seconds_max")


def _label(value: Any, names: dict[Any, str]) -> str:
    if isinstance(value, np.ndarray):
        return ",".join(_label(item, names) for item in value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    return str(names.get(value, value))


class Rows(NamedTuple):
    """Both versions' answers to the same rows, as columns: labels or values, and |Δ probability| or Δ value."""

    production: list[Any]
    candidate: list[Any]
    differences: np.ndarray | None
    regression: bool


class Comparison:
    """One candidate's comparison in this worker; `record` and `error` run on the shadow runner or a request's thread."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self.totals: dict[str, float] = dict.fromkeys((*TOTAL_KEYS, *SUM_KEYS, *MAX_KEYS), 0)
        self.confusion: Counter[str] = Counter()
        self.production_labels: Counter[str] = Counter()
        self.candidate_labels: Counter[str] = Counter()
        self.regression = False
        self.rows: deque[tuple[Any, Any, float | None]] = deque(maxlen=window)  # production, candidate, |Δp| or Δ
        self.seconds: deque[float] = deque(maxlen=window)
        self.failures: deque[bool] = deque(maxlen=window)

    def record(self, production: Any, candidate: Any, seconds: float, requests: int = 1) -> None:
        """`requests` requests' outputs from both versions, row for row (one candidate call of `seconds` for them all).

        Counted per distinct label pair and with array sums, so a call of many rows costs little more than one."""
        rows = _rows(production, candidate)
        differences = rows.differences
        listed = differences.tolist() if differences is not None else [None] * len(rows.production)
        with self._lock:
            totals = self.totals
            totals["requests"] += requests
            self._timed(seconds, failed=False, count=requests)
            if not rows.production:
                return
            totals["rows"] += len(rows.production)
            self.rows.extend(zip(rows.production, rows.candidate, listed, strict=True))
            if rows.regression:
                assert differences is not None
                self.regression = True
                absolute = np.abs(differences)
                totals["agreed"] += int(np.count_nonzero(differences == 0))
                totals["difference_sum"] += float(differences.sum())
                totals["abs_difference_sum"] += float(absolute.sum())
                totals["abs_difference_max"] = max(totals["abs_difference_max"], float(absolute.max()))
                return
            for (first, second), count in Counter(zip(rows.production, rows.candidate, strict=True)).items():
                totals["agreed"] += count if first == second else 0
                _add(self.confusion, f"{first}|{second}", count)
            for counter, labels in ((self.production_labels, rows.production), (self.candidate_labels, rows.candidate)):
                for label, count in Counter(labels).items():
                    _add(counter, label, count)
            if differences is not None:
                totals["probability_rows"] += len(differences)
                totals["probability_sum"] += float(differences.sum())
                totals["probability_max"] = max(totals["probability_max"], float(differences.max()))

    def error(self, seconds: float) -> None:
        with self._lock:
            self.totals["errors"] += 1
            self._timed(seconds, failed=True)

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self.totals["dropped"] += count

    def _timed(self, seconds: float, *, failed: bool, count: int = 1) -> None:
        totals = self.totals
        totals["calls"] += count
        totals["seconds_sum"] += seconds * count
        totals["seconds_max"] = max(totals["seconds_max"], seconds)
        self.seconds.extend([seconds] * min(count, WINDOW))
        self.failures.extend([failed] * min(count, WINDOW))

    def export(self) -> dict[str, Any]:
        """This worker's counts and window as plain JSON (what another worker adds to its own)."""
        with self._lock:
            return {
                "totals": dict(self.totals),
                "confusion": dict(self.confusion),
                "production_labels": dict(self.production_labels),
                "candidate_labels": dict(self.candidate_labels),
                "regression": self.regression,
                "rows": [list(row) for row in self.rows],
                "seconds": list(self.seconds),
                "failures": list(self.failures),
            }


def _add(counter: Counter[str], key: str, count: int) -> None:
    """Count `key`, or "other" once MAX_PAIRS distinct keys are counted (labels come from models, not bounded)."""
    counter[key if key in counter or len(counter) < MAX_PAIRS else OTHER] += count


def _rows(production: Any, candidate: Any) -> Rows:
    """Labels and the largest |Δ probability| per row for label answers; values and candidate − production for a
    regressor's; a class model's outputs as short text."""
    if isinstance(production, Predictions) and isinstance(candidate, Predictions):
        if production.classes.task == "regression" and production.values.ndim == 1:
            first, second = production.values.astype(float), candidate.values.astype(float)
            return Rows(first.tolist(), second.tolist(), second - first, True)
        first_labels = _labels(production.values, production.classes.label_of)
        second_labels = _labels(candidate.values, candidate.classes.label_of)
        return Rows(first_labels, second_labels, _probability_differences(production, candidate), False)
    return Rows([_plain(a) for a in production], [_plain(b) for b in candidate], None, False)


def _labels(values: np.ndarray, names: dict[Any, str]) -> list[str]:
    """Each row's label, looked up once per distinct value (a multi-output row joins its labels with commas); a dict, not
    np.unique, since sorting an object array of labels cost a millisecond per shadow call."""
    if values.ndim != 1:
        return [_label(row, names) for row in values]
    table: dict[Any, str] = {}
    labels = []
    try:
        for value in values.tolist():
            label = table.get(value)
            if label is None:
                label = table[value] = _label(value, names)
            labels.append(label)
    except TypeError:  # values that cannot be dict keys (lists in an object array)
        return [_label(value, names) for value in values]
    return labels


def _plain(output: Any) -> str:
    dump = getattr(output, "model_dump_json", None)
    return str(dump() if dump is not None else output)[:200]


def _probability_differences(production: Predictions, candidate: Predictions) -> np.ndarray | None:
    """Per row, the largest absolute difference between the two versions' probabilities, classes matched by label."""
    first, second = production.probabilities, candidate.probabilities
    if first is None or second is None:
        return None
    labels, other = production.classes.labels, candidate.classes.labels
    if labels != other:
        common = [label for label in labels if label in other]
        if not common:
            return None
        first = first[:, [labels.index(label) for label in common]]
        second = second[:, [other.index(label) for label in common]]
    return np.asarray(np.abs(np.asarray(first, dtype=float) - np.asarray(second, dtype=float)).max(axis=1))


def summarize(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The comparison over several workers' exports: since start (sums) and over the recent window (all rows kept)."""
    totals: dict[str, float] = dict.fromkeys((*TOTAL_KEYS, *SUM_KEYS, *MAX_KEYS), 0)
    confusion: Counter[str] = Counter()
    labels: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    rows: list[list[Any]] = []
    seconds: list[float] = []
    failures: list[bool] = []
    regression = False
    for part in parts:
        for key, value in part["totals"].items():
            totals[key] = max(totals[key], value) if key in MAX_KEYS else totals[key] + value
        confusion.update(part["confusion"])
        labels[0].update(part["production_labels"])
        labels[1].update(part["candidate_labels"])
        rows += part["rows"]
        seconds += part["seconds"]
        failures += part["failures"]
        regression = regression or part["regression"]
    since_start = _since_start(totals, confusion, labels, regression)
    return {
        "kind": "regression" if regression else "labels",
        "window": _window(rows, seconds, failures, regression),
        "since_start": since_start,
    }


def _since_start(
    totals: dict[str, float], confusion: Counter[str], labels: tuple[Counter[str], Counter[str]], regression: bool
) -> dict[str, Any]:
    rows, calls = int(totals["rows"]), int(totals["calls"])
    view: dict[str, Any] = {
        "requests": int(totals["requests"]),
        "rows": rows,
        "agreement": totals["agreed"] / rows if rows else None,
        "errors": int(totals["errors"]),
        "error_rate": totals["errors"] / calls if calls else None,
        "dropped": int(totals["dropped"]),
        "latency_ms": {"mean": 1000 * totals["seconds_sum"] / calls if calls else None, "max": 1000 * totals["seconds_max"]},
    }
    if regression:
        view["difference"] = {
            "mean": totals["difference_sum"] / rows if rows else None,
            "mean_abs": totals["abs_difference_sum"] / rows if rows else None,
            "max_abs": totals["abs_difference_max"],
        }
        return view
    view["confusion"] = _confusion(confusion)
    view["psi"] = _psi_of_counts(labels[0], labels[1])
    with_probabilities = int(totals["probability_rows"])
    view["probability_difference"] = {
        "mean": totals["probability_sum"] / with_probabilities if with_probabilities else None,
        "max": totals["probability_max"] if with_probabilities else None,
    }
    return view


def _window(rows: list[list[Any]], seconds: list[float], failures: list[bool], regression: bool) -> dict[str, Any]:
    times = np.asarray(seconds, dtype=float) * 1000
    view: dict[str, Any] = {
        "rows": len(rows),
        "agreement": sum(1 for row in rows if row[0] == row[1]) / len(rows) if rows else None,
        "errors": sum(failures),
        "error_rate": sum(failures) / len(failures) if failures else None,
        "latency_ms": _latency(times),
    }
    if regression:
        differences = np.asarray([row[2] for row in rows if row[2] is not None], dtype=float)
        absolute = np.abs(differences)
        view["difference"] = (
            {
                "mean": float(differences.mean()),
                "mean_abs": float(absolute.mean()),
                "max_abs": float(absolute.max()),
                "p50_abs": float(np.percentile(absolute, 50)),
                "p90_abs": float(np.percentile(absolute, 90)),
                "p99_abs": float(np.percentile(absolute, 99)),
            }
            if len(differences)
            else None
        )
        view["psi"] = _psi_of_values(np.asarray([row[0] for row in rows], dtype=float), np.asarray([row[1] for row in rows], dtype=float))
        return view
    view["confusion"] = _confusion(Counter(f"{row[0]}|{row[1]}" for row in rows))
    view["psi"] = _psi_of_counts(Counter(str(row[0]) for row in rows), Counter(str(row[1]) for row in rows))
    probabilities = [row[2] for row in rows if row[2] is not None]
    view["probability_difference"] = {
        "mean": float(np.mean(probabilities)) if probabilities else None,
        "max": float(np.max(probabilities)) if probabilities else None,
    }
    return view


def _latency(times: np.ndarray) -> dict[str, float | None]:
    if not len(times):
        return {"mean": None, "p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(times, [50, 99])
    return {"mean": float(times.mean()), "p50": float(p50), "p99": float(p99), "max": float(times.max())}


def _confusion(pairs: Counter[str]) -> dict[str, dict[str, int]]:
    """production label → candidate label → rows."""
    table: dict[str, dict[str, int]] = {}
    for pair, count in sorted(pairs.items()):
        first, _, second = pair.partition("|") if pair != OTHER else (OTHER, "", OTHER)
        table.setdefault(first, {})[second] = count
    return table


def _psi_of_counts(first: Counter[str], second: Counter[str]) -> float | None:
    total_first, total_second = sum(first.values()), sum(second.values())
    if not total_first or not total_second:
        return None
    return _psi([first[key] / total_first for key in first | second], [second[key] / total_second for key in first | second])


def _psi_of_values(first: np.ndarray, second: np.ndarray) -> float | None:
    """PSI of two value samples over production's deciles."""
    if len(first) < PSI_BINS or len(second) < PSI_BINS:
        return None
    edges = np.unique(np.percentile(first, np.linspace(0, 100, PSI_BINS + 1))[1:-1])
    counts = (np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1) for sample in (first, second))
    expected, actual = (list(count / count.sum()) for count in counts)
    return _psi(expected, actual)


def _psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total
