"""Client columns → a validated batch: the columnar check when every value passes it, else records the schema names.

The fallback builds one record per row only for batches the vectorised check declines (nulls, a bad value, a
custom model), so a failing column and row get exactly the message a records batch gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sealserve.runtime.columns import Raw
from sealserve.serve.errors import ServingError, shown_all
from sealserve.serve.request.dataplane import Batch
from sealserve.serve.request.interface import ModelInterface


def invalid(message: str, loc: Sequence[str | int] = ()) -> ServingError:
    """A batch that cannot be read as the model's columns: 422, like every schema violation on the native API."""
    return ServingError(422, "validation_error", message, [{"loc": list(loc), "message": message, "type": "value_error"}])


def check_names(interface: ModelInterface, names: Sequence[str]) -> None:
    """Every column a feature, none twice, every required feature present (a nullable one may be left out, as in a record)."""
    known = set(interface.names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise invalid(f"unknown column {shown_all(unknown)}; the model's inputs are {', '.join(interface.names)}", ["columns"])
    if len(set(names)) != len(names):
        raise invalid("a column name appears twice", ["columns"])
    sent = set(names)
    missing = [name for name in required(interface) if name not in sent]
    if missing:
        raise invalid(f"missing column {', '.join(map(repr, missing))}; the model's inputs are {', '.join(interface.names)}", ["columns"])


def required(interface: ModelInterface) -> list[str]:
    return [field.alias or name for name, field in interface.schema.model_fields.items() if field.is_required()]


def batch_of_columns(interface: ModelInterface, columns: Mapping[str, Raw], rows: int, *, whole_floats: bool = False) -> Batch:
    """Checked names and `rows` values per column → `Columns`, or validated records when the columnar check declines."""
    if len(columns) == len(interface.names):
        found = interface.columns(columns, rows, whole_floats=whole_floats)
        if found is not None:
            return found
    names = list(columns)
    values = [_as_list(columns[name]) for name in names]
    records = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    return interface.schema_list.validate_python(records)  # a ValidationError is the records batch's 422, rows and fields named


def _as_list(values: Raw) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
