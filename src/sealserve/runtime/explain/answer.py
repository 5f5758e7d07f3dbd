"""An explained batch as JSON, one object per row: which output is explained, the base value, the output's value, the
contribution of every feature the client sent, and with `top` the largest reasons with the feature's value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.runtime.explain.explainer import Explained

ALL = "all"


class BadChoice(ValueError):
    """The query names a class the model does not have, or a class for a model without classes."""


@dataclass(frozen=True)
class Choice:
    """`top`: how many reasons to list (None: none); `target`: None (the predicted class), "all", or a class label."""

    top: int | None = None
    target: str | None = None


def render(explained: Explained, names: Sequence[str], classification: bool, choice: Choice) -> list[dict[str, Any]]:
    if choice.target is not None and not classification:
        raise BadChoice("?class= applies to classification models; this model's explanation covers every output")
    contributions, base, labels = explained.contributions, explained.base, list(explained.outputs)
    if classification and len(labels) == 1 and explained.output in ("log_odds", "margin"):  # the other class: its negation
        contributions, base = np.concatenate([-contributions, contributions], axis=1), np.concatenate([-base, base], axis=1)
        labels = [explained.classes[0] if explained.classes else None, labels[0]]
    totals = base + contributions.sum(axis=2)
    chosen = _chosen(labels, totals, choice.target if classification else ALL)
    values, bases, sums = contributions.tolist(), base.tolist(), totals.tolist()
    head: dict[str, Any] = {"method": explained.method, "output": explained.output}
    if explained.evaluations is not None:
        head["evaluations"] = explained.evaluations // len(contributions)
    rows = []
    for row, indices in enumerate(chosen):
        parts = [_part(labels[i], values[row][i], bases[row][i], sums[row][i], names, explained.values[row], choice.top) for i in indices]
        answer = dict(head)
        if len(parts) == 1:
            answer.update(parts[0])
        else:
            answer["explanations"] = parts
        rows.append(answer)
    return rows


def _chosen(labels: list[Any], totals: np.ndarray, target: str | None) -> list[list[int]]:
    """Per row, the outputs answered: every one, the largest (the predicted class), or the one named."""
    if target == ALL:
        return [list(range(len(labels)))] * len(totals)
    if target is None:
        return [[int(index)] for index in np.argmax(totals, axis=1)]
    for index, label in enumerate(labels):
        if str(label) == target:
            return [[index]] * len(totals)
    raise BadChoice(f"class {target!r} is not one of the model's classes: {', '.join(str(label) for label in labels)}")


def _part(
    label: Any, values: list[float], base: float, total: float, names: Sequence[str], client: Sequence[Any], top: int | None
) -> dict[str, Any]:
    part: dict[str, Any] = {"explains": label, "base_value": base, "value": total, "contributions": dict(zip(names, values, strict=True))}
    if top is not None:
        order = sorted(range(len(values)), key=lambda i: -abs(values[i]))[:top]
        part["top"] = [{"feature": names[i], "value": client[i], "contribution": values[i]} for i in order]
    return part
