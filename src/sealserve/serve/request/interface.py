"""A model's inputs and outputs as every protocol sees them: rows → records → validated records, outputs → values.

Validation is the model's own `input_schema` (the same pydantic model the native API uses: bounds, categories,
NaN/Infinity, unknown fields), applied once for all protocols by the data plane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from sealserve.bundle.schema import input_records
from sealserve.model import MLModel
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.columns import ColumnCheck, Columns, Raw
from sealserve.runtime.encoders import Output, SeldonAnswer
from sealserve.serve.errors import ProtocolError, shown_all

logger = logging.getLogger("sealserve.protocols")
MAX_REPORTED_ERRORS = 5
COLUMNAR_ROWS = 16


class Kind(str, Enum):
    """How a feature's (or output field's) values travel: decides tensor datatypes and conversions."""

    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    OTHER = "other"


def kind_of(annotation: Any) -> Kind:
    """The kind of a field's annotation; a nullable field (`X | None`) has the kind of X."""
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kind_of(members[0]) if len(members) == 1 else Kind.OTHER
    if get_origin(annotation) is Annotated:
        return kind_of(get_args(annotation)[0])
    if annotation is bool:
        return Kind.BOOLEAN
    if annotation is int:
        return Kind.INTEGER
    if annotation is float:
        return Kind.NUMBER
    if annotation is str:
        return Kind.STRING
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return Kind.STRING if all(isinstance(member.value, str) for member in annotation) else Kind.OTHER
    if get_origin(annotation) is Literal and all(isinstance(arg, str) for arg in get_args(annotation)):
        return Kind.STRING
    return Kind.OTHER


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


DATATYPE_OF_KIND = {Kind.NUMBER: "FP64", Kind.INTEGER: "INT64", Kind.BOOLEAN: "BOOL", Kind.STRING: "BYTES", Kind.OTHER: "BYTES"}


class ModelInterface:
    """A model's inputs and outputs as protocols see them, computed once per loaded model."""

    def __init__(self, model: MLModel) -> None:
        schema = model.input_schema
        self.inputs = tuple(Column(field.alias or name, kind_of(field.annotation)) for name, field in schema.model_fields.items())
        self.names = tuple(column.name for column in self.inputs)
        self._kinds = {column.name: column.kind for column in self.inputs}
        self._converter_cache: dict[tuple[tuple[str, ...], bool], list[tuple[int, Callable[[Any], Any]]]] = {}
        self.schema = schema
        records = input_records(model.metadata.name, model.metadata.features) if isinstance(model, BundleModel) else schema
        self.schema_list: TypeAdapter[list[Any]] = TypeAdapter(list[records])  # type: ignore[valid-type]  # bundle batches: dicts
        self.column_check = ColumnCheck(model.metadata.features) if isinstance(model, BundleModel) else None
        if isinstance(model, BundleModel):
            self.platform = f"sealserve_{model.metadata.format.value}"
            encoders = model.encoders
            outputs = list(encoders.outputs)
            self.default_outputs = encoders.default_outputs
            self._predictions: Callable[[Any], list[Any]] = encoders.per_row
            self._native: Callable[[Any], list[Any]] = encoders.native
            self._seldon: Callable[[Any], SeldonAnswer] = encoders.seldon
        else:
            self.platform = "sealserve_python"
            outputs = _field_outputs(model.output_schema)
            self.default_outputs = tuple(output.name for output in outputs)
            self._predictions = self._native = _dump_all
            self._seldon = _seldon_objects
        self.outputs = {output.name: output for output in outputs}

    def records(
        self,
        rows: Sequence[Any],
        names: Sequence[str] | None = None,
        *,
        objects: bool = False,
        numeric_strings: bool = False,
        item: str = "row",
    ) -> list[Any]:
        """Positional rows (in `names` order, default: the model's feature order) as records keyed by feature.

        Rows are arrays, often built from numpy floats, so a whole-valued float (3.0) becomes an int for an
        integer feature; with `numeric_strings` (Seldon's untyped ndarray) "55" becomes a number too. With
        `objects`, a row may already be a record (an object keyed by feature name) and is passed on as is.
        Every other check is the schema's, in `validate`.
        """
        order = self.names if names is None else self.check_names(names)
        width = len(order)
        active = self._converters(tuple(order), numeric_strings)
        records: list[Any] = []
        for index, row in enumerate(rows):
            if isinstance(row, list) and len(row) == width:
                records.append(dict(zip(order, _convert_row(row, active) if active else row, strict=True)))
            elif objects and isinstance(row, dict):
                records.append(row)
            else:
                got = f"has {len(row)} values" if isinstance(row, list) else "is not a list"
                alternative = ", or an object keyed by feature name" if objects else ""
                raise ProtocolError(400, f"{item} {index} {got}; expected {width} values in the order {', '.join(order)}{alternative}")
        return records

    def _converters(self, order: tuple[str, ...], numeric_strings: bool) -> list[tuple[int, Callable[[Any], Any]]]:
        key = (order, numeric_strings)
        found = self._converter_cache.get(key)
        if found is None:
            found = [
                (position, convert) for position, name in enumerate(order) if (convert := _converter(self._kinds[name], numeric_strings))
            ]
            if len(self._converter_cache) < 64:  # orders come from clients: keep a few
                self._converter_cache[key] = found
        return found

    def check_names(self, names: Sequence[str]) -> Sequence[str]:
        unknown = [name for name in names if name not in self._kinds]
        if unknown:
            raise ProtocolError(400, f"unknown input {shown_all(unknown)}; the model's inputs are {', '.join(self.names)}")
        if len(set(names)) != len(names):
            raise ProtocolError(400, "an input name appears twice")
        missing = [name for name in self.names if name not in set(names)]
        if missing:
            raise ProtocolError(400, f"missing input {', '.join(map(repr, missing))}; the model's inputs are {', '.join(self.names)}")
        return names

    def validate(self, records: Sequence[Any], item: str = "row") -> list[Any]:
        """Validate all records in one call against the model's input schema; 400 names rows and fields."""
        try:
            return self.schema_list.validate_python(records)
        except ValidationError as exc:
            raise ProtocolError(400, describe(exc, item)) from None

    def columns(self, raw: Mapping[str, Raw], rows: int, *, whole_floats: bool = False) -> Columns | None:
        """Client values per feature as a validated columnar batch; None sends the caller to per-record validation
        (also below COLUMNAR_ROWS, where one check per feature costs more than the schema's check per record)."""
        if self.column_check is None or not self.columnar(rows):
            return None
        return self.column_check(raw, rows, whole_floats=whole_floats)

    def columns_of_records(self, records: Sequence[Any]) -> Columns | None:
        if self.column_check is None or not self.columnar(len(records)):
            return None
        return self.column_check.records(records)

    def columnar(self, rows: int) -> bool:
        """Whether `columns` would try a batch of this many rows (callers skip building its columns otherwise)."""
        return self.column_check is not None and rows >= COLUMNAR_ROWS

    def predictions(self, outputs: Any) -> list[Any]:
        """One JSON value per row (KServe V1 `predictions`, Seldon without probabilities): for bundles the class label
        when the bundle declares readable labels, else the class value or number; for custom models the output object."""
        return self._predictions(outputs)

    def json_outputs(self, outputs: Any) -> list[Any]:
        """The native API's output objects, one per row."""
        return self._native(outputs)

    def seldon(self, outputs: Any) -> SeldonAnswer:
        """Seldon's column names, flat values and values per row (None: one): a model with probabilities answers them
        with its class labels as names (like Seldon's sklearn server), a multi-output model its targets."""
        return self._seldon(outputs)

    def select(self, names: Sequence[str] | None) -> list[Output]:
        if not names:
            return [self.outputs[name] for name in self.default_outputs]
        unknown = [name for name in names if name not in self.outputs]
        if unknown:
            raise ProtocolError(400, f"unknown output {shown_all(unknown)}; the model's outputs are {', '.join(self.outputs)}")
        return [self.outputs[name] for name in names]


def describe(exc: ValidationError, item: str) -> str:
    """pydantic errors as one line: row index, field, message; never the offending input value."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        location = list(error["loc"])
        where = f"{item} {location.pop(0)}" if location and isinstance(location[0], int) else "input"
        field = ".".join(str(part) for part in location)
        parts.append(f"{where}, {field!r}: {error['msg']}" if field else f"{where}: {error['msg']}")
    more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
    return "; ".join(parts) + more


def _converter(kind: Kind, numeric_strings: bool) -> Callable[[Any], Any] | None:
    if kind is Kind.INTEGER:
        return _to_integer_lenient if numeric_strings else _whole_float_to_int
    if kind is Kind.NUMBER and numeric_strings:
        return _to_number_lenient
    return None


def _convert_row(row: list[Any], converters: list[tuple[int, Callable[[Any], Any]]]) -> list[Any]:
    row = list(row)
    for position, convert in converters:
        row[position] = convert(row[position])
    return row


def _whole_float_to_int(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


def _to_number_lenient(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _to_integer_lenient(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = _to_number_lenient(value)
    return _whole_float_to_int(value)


def _field_outputs(schema: type[BaseModel]) -> list[Output]:
    """A custom model's outputs: one per field of its output schema."""
    return [_field_output(field.alias or name, name, kind_of(field.annotation)) for name, field in schema.model_fields.items()]


def _field_output(name: str, attribute: str, kind: Kind) -> Output:
    def plain(outputs: Sequence[Any]) -> list[Any]:
        return [getattr(output, attribute) for output in outputs]

    def text(outputs: Sequence[Any]) -> list[Any]:
        return [_as_text(getattr(output, attribute)) for output in outputs]

    return Output(name, DATATYPE_OF_KIND[kind], None, plain if kind in (Kind.NUMBER, Kind.INTEGER, Kind.BOOLEAN) else text)


def _as_text(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    return value if isinstance(value, str) else orjson.dumps(to_jsonable_python(value)).decode()


def _dump_all(outputs: Sequence[Any]) -> list[Any]:
    return [output.model_dump(mode="json") for output in outputs]


def _seldon_objects(outputs: Sequence[Any]) -> SeldonAnswer:
    return [], _dump_all(outputs), None
