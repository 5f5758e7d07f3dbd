"""Answers as an Arrow IPC stream, for clients that send `Accept: application/vnd.apache.arrow.stream`.

One row per input row: `prediction` (what the JSON answer's `prediction` holds), and for classifiers with
probabilities one float64 column per class, `probability_<label>`. Built from the prediction arrays, not per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from sealserve.runtime.bundle_model import Predictions
from sealserve.serve.request.interface import ModelInterface

PROBABILITY = "probability_"


def accepts_arrow(accept: str, media_type: str) -> bool:
    return any(part.split(";", 1)[0].strip().lower() == media_type for part in accept.split(","))


def answer_table(interface: ModelInterface, outputs: Any, name: str, version: str) -> pa.Table:
    """The answer's columns; the model's name and version also travel in the schema's metadata."""
    metadata = {"model_name": name, "model_version": version}
    if not isinstance(outputs, Predictions):
        return pa.Table.from_pylist(interface.json_outputs(outputs)).replace_schema_metadata(metadata)
    columns: dict[str, pa.Array] = {"prediction": _answers(outputs)}
    if outputs.probabilities is not None:
        for index, label in enumerate(outputs.classes.labels):
            columns[f"{PROBABILITY}{label}"] = pa.array(np.ascontiguousarray(outputs.probabilities[:, index], dtype=np.float64))
    return pa.table(columns, metadata=metadata)


def _answers(outputs: Predictions) -> pa.Array:
    if not outputs.classes.classification:
        return pa.array(outputs.values.astype(np.float64))
    distinct, rows = outputs.coded_answers()
    return pa.array(distinct).take(pa.array(rows))


def ipc_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream: bytes = sink.getvalue().to_pybytes()
    return stream


class ColumnsExchange:
    """An exchange with an Arrow side, as JSON for the hooks that record bodies (rendered only when they ask): an Arrow
    request as `{"inputs": {column: values}}`, the answer as the JSON answer the same request would have had."""

    def __init__(self, request: bytes, arrow_request: bool, response: Callable[[], bytes]) -> None:
        self.request, self.arrow_request, self.response = request, arrow_request, response

    def request_json(self) -> bytes:
        if not self.arrow_request:
            return self.request
        table = ipc.open_stream(pa.py_buffer(self.request)).read_all()
        return orjson.dumps({"inputs": table.to_pydict()}, option=orjson.OPT_SERIALIZE_NUMPY)

    def response_json(self) -> bytes:
        return self.response()
