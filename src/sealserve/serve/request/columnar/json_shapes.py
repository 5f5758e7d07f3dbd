"""The native batch route's JSON bodies: an array of records, or the column shapes MLflow's scoring server takes.

`{"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}` (index ignored) and
`{"inputs": {"column": [...], ...}}` go straight to column arrays; the row count is checked before any of them is built.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic_core

from sealserve.serve.errors import ServingError
from sealserve.serve.request.columnar.frames import batch_of_columns, check_names, invalid
from sealserve.serve.request.dataplane import Batch, DataPlane
from sealserve.serve.request.interface import ModelInterface

SHAPES = 'a batch is a JSON array of records, {"dataframe_split": {"columns": [...], "data": [[...]]}} or {"inputs": {"column": [...]}}'
SPLIT_KEYS = frozenset({"columns", "data", "index"})


def parse_batch(body: bytes, interface: ModelInterface, dataplane: DataPlane) -> Batch:
    """Count the rows before validating any: an oversized batch is refused before work proportional to it."""
    parsed = parse_json(body)
    if isinstance(parsed, list):
        return _records(parsed, interface, dataplane)
    if isinstance(parsed, dict) and len(parsed) == 1:
        if "dataframe_split" in parsed:
            return _split(parsed["dataframe_split"], interface, dataplane)
        if "inputs" in parsed:
            return _inputs(parsed["inputs"], interface, dataplane)
    raise invalid(SHAPES)


def parse_json(body: bytes) -> Any:
    """orjson, about twice as fast on large bodies; what it declines (NaN tokens, integers past 64 bits) goes to
    pydantic's parser, so the schema, not the parser, refuses those values as it does on the other routes."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError:
        raise ServingError(400, "malformed_json", "request body is not valid JSON") from None


def _records(items: list[Any], interface: ModelInterface, dataplane: DataPlane) -> Batch:
    """A batch the columnar check accepts skips per-record validation; any other gets the schema's per-field 422."""
    if not items:
        raise invalid("a batch needs at least one record")
    dataplane.check_rows(len(items))
    columns = interface.columns_of_records(items)
    if columns is not None:
        return columns
    return interface.schema_list.validate_python(items)


def _split(split: Any, interface: ModelInterface, dataplane: DataPlane) -> Batch:
    if not isinstance(split, dict) or not {"columns", "data"} <= split.keys() or not split.keys() <= SPLIT_KEYS:
        raise invalid('dataframe_split is an object with "columns" and "data" (and optionally "index")', ["dataframe_split"])
    names, data = split["columns"], split["data"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise invalid("dataframe_split.columns is a list of column names", ["dataframe_split", "columns"])
    if not isinstance(data, list) or not data:
        raise invalid("dataframe_split.data is a non-empty list of rows", ["dataframe_split", "data"])
    dataplane.check_rows(len(data))
    check_names(interface, names)
    width = len(names)
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        index, row = next((index, row) for index, row in enumerate(data) if type(row) is not list or len(row) != width)
        got = f"has {len(row)} values" if isinstance(row, list) else "is not a list"
        raise invalid(f"dataframe_split.data row {index} {got}; expected {width}, one per column", ["dataframe_split", "data", index])
    if width == 1:
        return batch_of_columns(interface, {names[0]: [row[0] for row in data]}, len(data))
    return batch_of_columns(interface, dict(zip(names, zip(*data, strict=True), strict=True)), len(data))


def _inputs(inputs: Any, interface: ModelInterface, dataplane: DataPlane) -> Batch:
    if not isinstance(inputs, dict) or not inputs or not all(isinstance(values, list) for values in inputs.values()):
        raise invalid('inputs is an object of columns: {"column": [value, ...], ...}', ["inputs"])
    lengths = {len(values) for values in inputs.values()}
    rows = max(lengths)
    if rows == 0:
        raise invalid("a batch needs at least one record", ["inputs"])
    dataplane.check_rows(rows)
    check_names(interface, list(inputs))
    if len(lengths) > 1:
        name = next(name for name, values in inputs.items() if len(values) != rows)
        raise invalid(f"column {name!r} has {len(inputs[name])} values; another has {rows}", ["inputs", name])
    return batch_of_columns(interface, inputs, rows)
