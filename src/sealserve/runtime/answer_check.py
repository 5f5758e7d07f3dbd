"""Proof that a model's predictions can be answered: every protocol's encoder run on them, as the server would.

Pack runs it on the reloaded model's answer to the sample, the trial prediction on the served model's answer, so a
prediction the encoders cannot shape (a vector where a number is declared, a missing score) fails before it serves.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from sealserve.errors import BundleFormatError
from sealserve.runtime.answers import Predictions
from sealserve.runtime.encoders import Encoders, Output

TENSOR_TYPES: dict[str, tuple[type, ...]] = {"FP64": (int, float), "INT64": (int,), "BOOL": (bool,), "BYTES": (str,)}


def check_answers(encoders: Encoders, output_schema: type[BaseModel], predictions: Predictions) -> None:
    """Raise BundleFormatError naming the protocol whose answer this batch cannot become."""
    rows = len(predictions)
    _on("the native API", lambda: _native(encoders, output_schema, predictions))
    _on("KServe V1", lambda: _json(encoders.per_row(predictions), rows))
    for output in encoders.outputs:
        _on(f"V2 output {output.name!r}", lambda output=output: _tensor(output, predictions, rows))
    _on("Seldon", lambda: _seldon(encoders, predictions, rows))


def _on(protocol: str, check: Any) -> None:
    try:
        check()
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, orjson.JSONEncodeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleFormatError(f"the model's prediction cannot be answered on {protocol}: {message}") from None


def _native(encoders: Encoders, output_schema: type[BaseModel], predictions: Predictions) -> None:
    objects = encoders.native(predictions)
    _json(objects, len(predictions))
    for item in objects:
        try:
            output_schema.model_validate(item)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{where}: {first['msg']} (the bundle's output schema)") from None


def _json(values: list[Any], rows: int) -> None:
    if len(values) != rows:
        raise ValueError(f"{len(values)} answers for {rows} rows")
    orjson.dumps(values)


def _tensor(output: Output, predictions: Predictions, rows: int) -> None:
    values, datatype, expected = output.extract(predictions), output.datatype, rows * (output.width or 1)
    if len(values) != expected:
        raise ValueError(f"{len(values)} values where its shape holds {expected}")
    accepted = TENSOR_TYPES[datatype]
    for value in values:
        if not isinstance(value, accepted) or (datatype != "BOOL" and isinstance(value, bool)):
            raise ValueError(f"{datatype} cannot hold the {type(value).__name__} value {value!r}")


def _seldon(encoders: Encoders, predictions: Predictions, rows: int) -> None:
    names, values, width = encoders.seldon(predictions)
    if len(values) != rows * (width or 1) or (names and len(names) != width):
        raise ValueError(f"{len(values)} values, {len(names)} names for {rows} rows of width {width}")
    orjson.dumps([names, values])
