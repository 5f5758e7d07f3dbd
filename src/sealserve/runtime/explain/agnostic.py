"""The model-agnostic method: permutation sampling of Shapley values over a background sample, within an evaluation budget.

Each sampled feature order walks from a background row to the explained row one client feature at a time, so the
contributions of one walk add up exactly to f(row) − f(background row); the answer averages the walks. Every model
evaluation of a request is counted against `max_evaluations` before any is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Predict = Callable[[list[dict[str, Any]]], np.ndarray]  # client-shaped records → outputs [rows, outputs]


class BudgetTooSmall(Exception):
    """The request needs more model evaluations than `max_evaluations` allows."""


@dataclass(frozen=True)
class Plan:
    """How one row is explained within its share of the budget: background rows used and orders walked per row."""

    background: int
    orders: int

    def evaluations(self, features: int) -> int:
        return self.background * self.orders * (features + 1)


def plan(rows: int, features: int, background: int, max_evaluations: int) -> Plan:
    """The largest walk that fits: every background row once when the budget allows, more orders with what is left."""
    per_row = max_evaluations // rows
    walk = features + 1
    if per_row < walk:
        raise BudgetTooSmall(
            f"explaining {rows} row(s) of {features} features needs at least {rows * walk} model evaluations; "
            f"explain.max_evaluations is {max_evaluations}"
        )
    used = min(background, per_row // walk)
    return Plan(used, max(1, per_row // (walk * used)))


def permutation_shap(
    predict: Predict,
    rows: Sequence[dict[str, Any]],
    names: Sequence[str],
    background: Sequence[dict[str, Any]],
    chosen: Plan,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Contributions [rows, outputs, features] and base values [rows, outputs] (the mean output over the background used)."""
    rng = np.random.default_rng(seed)
    used = [background[i] for i in sorted(rng.choice(len(background), chosen.background, replace=False))]
    features = len(names)
    orders = [rng.permutation(features) for _ in range(chosen.orders)]
    walks: list[dict[str, Any]] = []
    for row in rows:
        for order in orders:
            for start in used:
                current = dict(start)
                walks.append(dict(current))
                for position in order:
                    current[names[position]] = row.get(names[position])
                    walks.append(dict(current))
    outputs = np.asarray(predict(walks), dtype=np.float64)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    steps = outputs.reshape(len(rows), chosen.orders, chosen.background, features + 1, outputs.shape[1])
    deltas = np.diff(steps, axis=3)  # [rows, orders, background, step, outputs]: the change as each feature joins
    contributions = np.zeros((len(rows), outputs.shape[1], features))
    for index, order in enumerate(orders):
        contributions[:, :, order] += deltas[:, index].mean(axis=1).transpose(0, 2, 1)
    contributions /= chosen.orders
    base = steps[:, 0, :, 0, :].mean(axis=1)
    return contributions, base
