"""An Arrow IPC stream from an untrusted client → the model's columns.

The body is already bounded by the HTTP layer. Each message is inspected before it is read: the schema must name
the model's features with plain types a feature can take (no dictionary, extension or nested types), and every
record batch's row count is added up from its metadata, and compressed bodies are refused, so nothing is decompressed
or materialised beyond the body itself. Uncompressed batches are zero-copy views of the body, fully validated
before a value is read. A stream pyarrow cannot read is a 400 naming what failed, never a 500.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from sealserve.runtime.columns import Raw
from sealserve.serve.errors import ServingError
from sealserve.serve.request.columnar.frames import batch_of_columns, check_names, invalid
from sealserve.serve.request.dataplane import Batch, DataPlane
from sealserve.serve.request.interface import Kind, ModelInterface

ARROW_STREAM = "application/vnd.apache.arrow.stream"
Accepts = Callable[[pa.DataType], bool]
ACCEPTED: dict[Kind, tuple[Accepts, str]] = {
    Kind.NUMBER: (lambda kind: pa.types.is_integer(kind) or pa.types.is_floating(kind), "an integer or floating-point type"),
    Kind.INTEGER: (
        lambda kind: pa.types.is_integer(kind) or pa.types.is_floating(kind),
        "an integer type (or floats holding whole numbers)",
    ),
    Kind.BOOLEAN: (pa.types.is_boolean, "bool"),
    Kind.STRING: (lambda kind: pa.types.is_string(kind) or pa.types.is_large_string(kind), "string or large_string"),
    Kind.OTHER: (lambda kind: pa.types.is_string(kind) or pa.types.is_large_string(kind), "string or large_string"),
}


def malformed(message: str) -> ServingError:
    return ServingError(400, "malformed_arrow", message)


def parse_arrow(body: bytes, interface: ModelInterface, dataplane: DataPlane) -> Batch:
    """The stream's rows as one validated batch, checked in the order: schema, row count, contents."""
    with readable():
        reader = ipc.MessageReader.open_stream(pa.BufferReader(pa.py_buffer(body)))
        first = _next(reader)
        if first is None or first.type != "schema":
            raise malformed("an Arrow IPC stream starts with its schema message")
        schema = ipc.read_schema(first)
    check_schema(schema, interface)
    batches = _read_batches(reader, schema, dataplane)
    rows = sum(item.num_rows for item in batches)
    if rows == 0:
        raise invalid("a batch needs at least one record")
    table = pa.Table.from_batches(batches, schema)
    columns: dict[str, Raw] = {}
    for name in schema.names:
        column = table.column(name)
        columns[name] = column.to_pylist() if column.null_count else _values(column)
    return batch_of_columns(interface, columns, rows, whole_floats=True)


def check_schema(schema: pa.Schema, interface: ModelInterface) -> None:
    """Names as for JSON columns; each type one the feature can take (a cast the records path would accept)."""
    check_names(interface, schema.names)
    kinds = {column.name: column.kind for column in interface.inputs}
    for field in schema:
        accepts, wanted = ACCEPTED[kinds[field.name]]
        if pa.types.is_null(field.type) or accepts(field.type):
            continue
        shape = "a dictionary" if pa.types.is_dictionary(field.type) else "an extension" if isinstance(field.type, pa.ExtensionType) else ""
        hint = f" ({shape} type; send the plain values)" if shape else ""
        raise invalid(
            f"column {field.name!r} has Arrow type {field.type}{hint}; feature {field.name!r} ({kinds[field.name].value}) takes {wanted}",
            ["schema", field.name],
        )


def _read_batches(reader: ipc.MessageReader, schema: pa.Schema, dataplane: DataPlane) -> list[pa.RecordBatch]:
    """Record batches after the schema; the total row count is checked from each message's metadata before its batch is read."""
    batches, rows = [], 0
    with readable():
        while (message := _next(reader)) is not None:
            if message.type != "record batch":
                raise malformed(f"unexpected {message.type} message; send one schema and record batches")
            length, compressed = batch_header(message.metadata.to_pybytes())
            if compressed:
                raise malformed("compressed Arrow record batches are not accepted; write the stream without compression")
            rows += length
            dataplane.check_rows(rows)
            batch = ipc.read_record_batch(message, schema)
            batch.validate(full=True)
            if batch.num_rows != length:
                raise malformed("a record batch's length disagrees with its metadata")
            batches.append(batch)
    return batches


@contextmanager
def readable() -> Iterator[None]:
    """pyarrow's failures on a bad stream (ArrowInvalid, and OSError for a truncated one) as the client's 400."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise malformed(f"request body is not a readable Arrow IPC stream: {_first_line(exc)}") from None


def batch_header(metadata: bytes) -> tuple[int, bool]:
    """A RecordBatch message's row count and whether its body is compressed, read from the flatbuffer (Message.fbs)."""
    try:
        message = _Table(metadata, struct.unpack_from("<I", metadata, 0)[0])
        header = message.field(2)
        if header is None:
            raise malformed("a record batch message without its header")
        batch = _Table(metadata, header + struct.unpack_from("<I", metadata, header)[0])
        length_at = batch.field(0)
        length = 0 if length_at is None else struct.unpack_from("<q", metadata, length_at)[0]
    except struct.error:
        raise malformed("a record batch message's metadata is truncated") from None
    if length < 0:
        raise malformed("a record batch with a negative length")
    return length, batch.field(3) is not None


class _Table:
    """A flatbuffer table: where each present field sits (its vtable slot), absent fields None."""

    def __init__(self, data: bytes, position: int) -> None:
        if not 0 <= position < len(data):
            raise struct.error("outside the metadata")
        self.data, self.position = data, position
        self.vtable = position - struct.unpack_from("<i", data, position)[0]
        self.size = struct.unpack_from("<H", data, self.vtable)[0]

    def field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.size:
            return None
        offset = struct.unpack_from("<H", self.data, self.vtable + slot)[0]
        return self.position + offset if offset else None


def _next(reader: ipc.MessageReader) -> ipc.Message | None:
    try:
        return reader.read_next_message()
    except StopIteration:
        return None


def _values(column: pa.ChunkedArray) -> Raw:
    """A column without nulls as numpy (numbers, booleans) or Python strings; no copy for a single numeric chunk."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts: list[str] = column.to_pylist()
        return texts
    array: np.ndarray = column.to_numpy()
    return array.astype(bool) if pa.types.is_boolean(kind) else array


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
