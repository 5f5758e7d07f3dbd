"""Answers as an Arrow IPC stream, for clients that send `Accept: application/vnd.apache.arrow.stream`.

One row per input row: `prediction` (what the JSON answer's `prediction` holds) for classifiers and regressors,
else the model's one-value-per-row V2 outputs (a column per target, `is_outlier` and `score`, a cluster's
`predict`); with probabilities one float64 column per class or cluster, `probability_<label>` (a multi-output
classifier: `probability_<target>_<class>`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from sealserve.runtime.answers import Predictions
from sealserve.serve.request.interface import ModelInterface

PROBABILITY = "probability_"


def accepts_arrow(accept: str, media_type: str) -> bool:
    return any(part.split(";", 1)[0].strip().lower() == media_type for part in accept.split(","))


def answer_table(interface: ModelInterface, outputs: Any, name: str, version: str) -> pa.Table:
    """The answer's columns; the model's name and version also travel in the schema's metadata."""
    metadata = {"model_name": name, "model_version": version}
    if not isinstance(outputs, Predictions):
        return pa.Table.from_pylist(interface.json_outputs(outputs)).replace_schema_metadata(metadata)
    columns: dict[str, pa.Array]
    if outputs.classes.task in ("classification", "regression"):
        columns = {"prediction": _answers(interface, outputs)}
    else:
        columns = {output.name: pa.array(output.extract(outputs)) for output in interface.outputs.values() if output.width is None}
    if outputs.probabilities is not None:
        labels = outputs.classes.labels or [f"{t.name}_{value}" for t in outputs.classes.targets for value in t.classes]
        for index, label in enumerate(labels):
            columns[f"{PROBABILITY}{label}"] = pa.array(np.ascontiguousarray(outputs.probabilities[:, index], dtype=np.float64))
    return pa.table(columns, metadata=metadata)


def _answers(interface: ModelInterface, outputs: Predictions) -> pa.Array:
    if not outputs.classes.classification:
        return pa.array(outputs.values.astype(np.float64))
    return pa.array(interface.predictions(outputs))


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
