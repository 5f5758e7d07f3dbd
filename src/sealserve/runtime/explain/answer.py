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
    single_logit = classification and len(explained.outputs) == 1 and explained.output in ("log_odds", "margin")
    labels = list(explained.outputs)
    rows = []
    for row in range(len(explained.contributions)):
        contributions, base = explained.contributions[row], explained.base[row]
        outputs: list[tuple[Any, np.ndarray, float]] = [(labels[i], contributions[i], float(base[i])) for i in range(len(labels))]
        if single_logit:
            negative = (explained.classes[0] if explained.classes else None, -contributions[0], -float(base[0]))
            outputs = [negative, outputs[0]]
        if classification:
            outputs = _chosen(outputs, choice.target)
        parts = [_part(label, values, base_value, names, explained.values[row], choice.top) for label, values, base_value in outputs]
        answer: dict[str, Any] = {"method": explained.method, "output": explained.output}
        if explained.evaluations is not None:
            answer["evaluations"] = explained.evaluations // len(explained.contributions)
        if len(parts) == 1:
            answer.update(parts[0])
        else:
            answer["explanations"] = parts
        rows.append(answer)
    return rows


def _chosen(outputs: list[tuple[Any, np.ndarray, float]], target: str | None) -> list[tuple[Any, np.ndarray, float]]:
    if target == ALL:
        return outputs
    if target is None:
        return [max(outputs, key=lambda output: output[2] + float(output[1].sum()))]
    for output in outputs:
        if str(output[0]) == target:
            return [output]
    raise BadChoice(f"class {target!r} is not one of the model's classes: {', '.join(str(output[0]) for output in outputs)}")


def _part(label: Any, values: np.ndarray, base: float, names: Sequence[str], client: Sequence[Any], top: int | None) -> dict[str, Any]:
    part: dict[str, Any] = {
        "explains": label,
        "base_value": base,
        "value": base + float(values.sum()),
        "contributions": {name: float(value) for name, value in zip(names, values, strict=True)},
    }
    if top is not None:
        order = np.argsort(-np.abs(values), kind="stable")[:top]
        part["top"] = [{"feature": names[i], "value": client[i], "contribution": float(values[i])} for i in order]
    return part
