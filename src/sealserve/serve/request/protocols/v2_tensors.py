"""Open Inference Protocol (V2) tensors, shared by the REST and gRPC transports.

Inputs arrive as flat values (JSON data, typed gRPC contents or raw little-endian bytes) and leave as
records for `ModelInterface.validate`; outputs leave as JSON data or raw bytes. Two input layouts:
one [N, F] tensor holding every feature in model order (any name, e.g. KServe's "input-0"), or one
[N] (or [N, 1]) tensor per feature, named by the feature.
"""

from __future__ import annotations

import math
import struct
from array import array as c_doubles_of
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.dataplane import Batch, check_rows
from sealserve.serve.request.interface import DATATYPE_OF_KIND, Kind, ModelInterface

NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?",
        "UINT8": "<u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "INT8": "<i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}
DATATYPES = frozenset(NUMPY_TYPES) | {"BYTES"}
NUMERIC = frozenset(name for name in NUMPY_TYPES if name != "BOOL")
ACCEPTED: dict[Kind, frozenset[str]] = {
    Kind.NUMBER: NUMERIC,
    Kind.INTEGER: NUMERIC,
    Kind.BOOLEAN: frozenset({"BOOL"}),
    Kind.STRING: frozenset({"BYTES"}),
    Kind.OTHER: frozenset({"BYTES"}),
}
LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class Tensor:
    """An input tensor decoded to flat, row-major Python values."""

    name: str
    datatype: str
    shape: Sequence[int]
    values: Sequence[Any] | np.ndarray  # raw binary contents stay an array


def check_datatype(name: str, datatype: str) -> None:
    if datatype not in DATATYPES:
        raise ProtocolError(400, f"input {name!r} has unsupported datatype {datatype!r}; use one of {', '.join(sorted(DATATYPES))}")


def element_count(name: str, shape: Sequence[int]) -> int:
    if any(dimension < 0 for dimension in shape):
        raise ProtocolError(400, f"input {name!r} has a negative dimension in shape {list(shape)}")
    return math.prod(shape)


def tensor(name: str, datatype: str, shape: Sequence[int], values: Sequence[Any] | np.ndarray) -> Tensor:
    """A tensor whose value count matches its shape."""
    expected = element_count(name, shape)
    if len(values) != expected:
        raise ProtocolError(400, f"input {name!r} has shape {list(shape)}, which holds {expected} values, but {len(values)} were sent")
    return Tensor(name, datatype, shape, values)


def flatten(name: str, data: list[Any]) -> list[Any]:
    """JSON tensor data, flat or nested row-major, as one flat list."""
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    for item in data:
        if not isinstance(item, list):
            raise ProtocolError(400, f"input {name!r} mixes nested lists and values in its data")
        flat.extend(flatten(name, item))
    return flat


def decode_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> Tensor:
    """Raw little-endian contents (gRPC raw_input_contents, REST binary data) as a tensor."""
    check_datatype(name, datatype)
    count = element_count(name, shape)
    if datatype == "BYTES":
        return tensor(name, datatype, shape, decode_bytes_elements(name, raw))
    dtype = NUMPY_TYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(400, f"input {name!r}: {datatype} shape {list(shape)} needs {count * dtype.itemsize} bytes, got {len(raw)}")
    return Tensor(name, datatype, shape, np.frombuffer(raw, dtype=dtype))


def decode_bytes_elements(name: str, raw: bytes) -> list[Any]:
    values: list[Any] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + LENGTH.size > end:
            raise ProtocolError(400, f"input {name!r}: truncated BYTES element length")
        (size,) = LENGTH.unpack_from(raw, offset)
        offset += LENGTH.size
        if offset + size > end:
            raise ProtocolError(400, f"input {name!r}: BYTES element runs past the end of its content")
        values.append(text(name, raw[offset : offset + size]))
        offset += size
    return values


def text(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(400, f"input {name!r}: BYTES element is not UTF-8 text") from None


def batch(interface: ModelInterface, tensors: Sequence[Tensor], limits: RequestLimits) -> Batch:
    """Decoded input tensors as a batch, in either layout; shape and datatype checked. Columns when the columnar
    check accepts every value, else records keyed by feature (the schema then names what is wrong)."""
    if not tensors:
        features = ", ".join(interface.names)
        raise ProtocolError(400, f"missing input: send one [N, {len(interface.names)}] tensor or one [N] tensor per feature ({features})")
    for item in tensors:
        check_datatype(item.name, item.datatype)
    if len(tensors) == 1 and tensors[0].name not in interface.names:
        return _from_matrix(interface, tensors[0], limits)
    return _from_columns(interface, tensors, limits)


def _from_matrix(interface: ModelInterface, matrix: Tensor, limits: RequestLimits) -> Batch:
    width = len(interface.names)
    if len(matrix.shape) != 2 or matrix.shape[1] != width:
        raise ProtocolError(
            400,
            f"input {matrix.name!r} has shape {list(matrix.shape)}; expected [N, {width}] (N rows of {', '.join(interface.names)}), "
            "or name one [N] tensor per feature",
        )
    for column in interface.inputs:
        _check_carries(matrix, column.name, column.kind)
    rows = matrix.shape[0]
    check_rows(rows, limits)
    values = matrix.values
    if interface.columnar(rows):
        columns = interface.columns(_matrix_columns(interface.names, values, rows), rows, whole_floats=True)
        if columns is not None:
            return columns
    flat = as_list(values)
    return interface.records([flat[start : start + width] for start in range(0, rows * width, width)])


def _from_columns(interface: ModelInterface, tensors: Sequence[Tensor], limits: RequestLimits) -> Batch:
    names = interface.check_names([item.name for item in tensors])
    kinds = {column.name: column.kind for column in interface.inputs}
    rows = None
    for item in tensors:
        if len(item.shape) not in (1, 2) or (len(item.shape) == 2 and item.shape[1] != 1):
            raise ProtocolError(400, f"input {item.name!r} has shape {list(item.shape)}; a per-feature input is [N] or [N, 1]")
        _check_carries(item, item.name, kinds[item.name])
        if rows is None:
            rows = item.shape[0]
        elif item.shape[0] != rows:
            raise ProtocolError(400, f"input {item.name!r} has {item.shape[0]} rows; the other inputs have {rows}")
    check_rows(rows or 0, limits)
    columns = interface.columns({item.name: item.values for item in tensors}, rows or 0, whole_floats=True)
    if columns is not None:
        return columns
    return interface.records([list(row) for row in zip(*(as_list(item.values) for item in tensors), strict=True)], names)


def _matrix_columns(names: Sequence[str], values: Sequence[Any] | np.ndarray, rows: int) -> dict[str, Any]:
    """An [N, F] tensor's columns: views of one array when every value is a number, else strided slices of the list."""
    width = len(names)
    array = values if isinstance(values, np.ndarray) else _float_array(values)
    if array is not None:
        matrix = array.reshape(rows, width)
        return {name: matrix[:, index] for index, name in enumerate(names)}
    return {name: values[index::width] for index, name in enumerate(names)}


def _float_array(values: Sequence[Any]) -> np.ndarray | None:
    """JSON or protobuf numbers (int, float) as one float64 array, in C (`array` refuses text and null); None when a bool
    (which converts to 0 or 1: only those values are looked at), text, null or an int past float range is among them."""
    try:
        array = np.frombuffer(c_doubles_of("d", values), dtype=np.float64)
    except (TypeError, OverflowError):
        return None
    suspects = np.flatnonzero((array == 0.0) | (array == 1.0)).tolist()
    return None if any(type(values[index]) is bool for index in suspects) else array


def as_list(values: Sequence[Any] | np.ndarray) -> list[Any]:
    """Tensor values as plain Python values (JSON data)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _check_carries(item: Tensor, feature: str, kind: Kind) -> None:
    if item.datatype not in ACCEPTED[kind]:
        expected = "a numeric datatype (FP*, INT*, UINT*)" if kind in (Kind.NUMBER, Kind.INTEGER) else " or ".join(sorted(ACCEPTED[kind]))
        raise ProtocolError(
            400, f"input {item.name!r} has datatype {item.datatype}, but feature {feature!r} ({kind.value}) needs {expected}"
        )


def encode_raw(datatype: str, values: list[Any] | np.ndarray) -> bytes:
    if datatype == "BYTES":
        encoded = [value.encode("utf-8") if isinstance(value, str) else bytes(value) for value in values]
        return b"".join(LENGTH.pack(len(item)) + item for item in encoded)
    return np.asarray(values, dtype=NUMPY_TYPES[datatype]).tobytes()


@dataclass(frozen=True)
class ServerInfo:
    """V2 server metadata (REST `GET /v2`, gRPC ServerMetadata)."""

    name: str
    version: str
    extensions: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "extensions": list(self.extensions)}


def model_metadata(served: ServedModel, interface: ModelInterface) -> dict[str, Any]:
    """V2 model metadata: per-feature input tensors and the model's outputs, shapes with -1 for the batch."""
    return {
        "name": served.name,
        "versions": [served.version],
        "platform": interface.platform,
        "inputs": [{"name": column.name, "datatype": DATATYPE_OF_KIND[column.kind], "shape": [-1]} for column in interface.inputs],
        "outputs": [{"name": output.name, "datatype": output.datatype, "shape": output.shape(-1)} for output in interface.outputs.values()],
    }
