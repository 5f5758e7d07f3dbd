"""Canary routing and the shadow comparison, in process: the split a weight gives, keys stable across processes, and
the figures a known pair of answers yields (the real server's behaviour: tests/serve/test_rollout.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from sealserve.runtime.columns import Columns
from sealserve.serve.rollout.comparison import Comparison, summarize
from sealserve.serve.rollout.routing import Chooser, bucket, sticky_key

REQUESTS = 5000


def test_a_canary_weight_of_a_tenth_sends_a_tenth_of_5000_keyed_requests_to_the_candidate() -> None:
    chooser = Chooser("credit_risk", 0.1, "header:X-User-ID")
    chosen = sum(chooser.candidate({"x-user-id": f"customer-{index}"}, []) for index in range(REQUESTS))
    assert abs(chosen / REQUESTS - 0.1) <= 0.02
    assert 0 < chosen < REQUESTS  # live control: both versions answer


def test_without_a_key_the_split_is_random_at_the_weight() -> None:
    chooser = Chooser("credit_risk", 0.1, None, seed=7)
    chosen = sum(chooser.candidate(None, []) for _ in range(REQUESTS))
    assert abs(chosen / REQUESTS - 0.1) <= 0.02


def test_one_key_gets_one_version_in_every_process() -> None:
    """Python's hash() is salted per process; the bucket is not: another interpreter with another seed agrees."""
    keys = [f"user-{index}" for index in range(50)]
    here = [bucket("demo", key) for key in keys]
    code = f"from sealserve.serve.rollout.routing import bucket; print([bucket('demo', key) for key in {keys!r}])"
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment).stdout
    assert eval(there) == here
    assert len(set(here)) == len(here)


def test_a_batch_is_routed_by_its_first_records_field_whatever_its_form() -> None:
    records = [{"customer_id": 42, "size": 1.0}, {"customer_id": 7, "size": 2.0}]
    columns = Columns(2, {"customer_id": np.array([42.0, 7.0]), "size": np.array([1.0, 2.0])})
    assert sticky_key("field:customer_id", None, records) == sticky_key("field:customer_id", None, columns) == "42"
    assert sticky_key("header:X-User-ID", {"x-user-id": "u1"}, records) == "u1"
    assert sticky_key("header:X-User-ID", {}, records) is None
    assert sticky_key("field:missing", None, records) is None


def test_a_regressors_comparison_reports_the_distribution_of_differences() -> None:
    comparison = Comparison()
    production = list(np.linspace(0.0, 100.0, 200))
    comparison.record(_regression(production), _regression([value + 1.5 for value in production]), 0.002)
    comparison.error(0.004)
    view = summarize([comparison.export(), comparison.export()])  # two workers with the same figures add up
    since_start, window = view["since_start"], view["window"]
    assert view["kind"] == "regression"
    assert since_start["rows"] == 400
    assert since_start["difference"] == pytest.approx({"mean": 1.5, "mean_abs": 1.5, "max_abs": 1.5})
    assert window["difference"]["p99_abs"] == pytest.approx(1.5)
    assert since_start["errors"] == 2
    assert since_start["error_rate"] == pytest.approx(0.5)
    assert 0 < window["psi"] < 0.1  # a small shift of the whole distribution


def _flat(view: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in view.items():
        flat |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def _regression(values: list[float]) -> object:
    from sealserve.runtime.answers import Predictions

    class Classes:
        task, label_of, labels, with_probabilities = "regression", {}, [], False

    return Predictions(Classes(), np.asarray(values), None)  # type: ignore[arg-type]


def test_a_call_for_many_requests_counts_what_one_call_per_request_counts() -> None:
    """The shadow thread records a whole group's rows at once: the figures are those of one record per request."""
    from sealserve.runtime.answers import Predictions
    from sealserve.serve.rollout.trial import joined

    class Classes:
        task, label_of, labels, with_probabilities = "classification", {0: "no", 1: "yes"}, ["no", "yes"], True

    classes = Classes()
    rng = np.random.default_rng(3)
    production = rng.integers(0, 2, 100)
    candidate = np.where(np.arange(100) % 25 < 3, 1 - production, production)  # 12 of 100 rows flipped
    probabilities = rng.random((100, 2))
    parts = [
        (
            Predictions(classes, production[i : i + 1], probabilities[i : i + 1]),
            Predictions(classes, candidate[i : i + 1], probabilities[i : i + 1] / 2),
        )  # type: ignore[arg-type]
        for i in range(100)
    ]
    one_by_one, grouped = Comparison(), Comparison()
    for first, second in parts:
        one_by_one.record(first, second, 0.001)
    grouped.record(joined([first for first, _ in parts]), joined([second for _, second in parts]), 0.001, requests=100)
    alone, together = summarize([one_by_one.export()]), summarize([grouped.export()])
    assert _flat(together) == pytest.approx(_flat(alone))  # sums in another order: equal up to rounding
    assert together["since_start"]["agreement"] == pytest.approx(0.88)
    assert together["since_start"]["requests"] == 100
    assert sum(sum(row.values()) for row in together["since_start"]["confusion"].values()) == 100


def test_a_groups_one_answer_is_given_back_to_each_request_row_for_row() -> None:
    """When production's answers cannot be joined (a reload between them), the candidate's one answer for the group is
    sliced back to each request, in order; answers already one per request stay as they are."""
    from sealserve.serve.rollout.trial import per_part

    parts = [["a"], ["b", "c"], [], ["d"]]
    assert per_part([["A", "B", "C", "D"]], parts) == [["A"], ["B", "C"], [], ["D"]]
    already = [["A"], ["B", "C"], [], ["D"]]
    assert per_part(already, parts) is already
