"""Redaction of inference bodies before they leave the process. The body keeps its shape and only values change:
record fields by name on the native API and KServe V1 (a row given as a list by the model's feature order), whole
named inputs and outputs on V2 (a column of an [N, F] input too) and named columns on Seldon."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sealserve.serve.request.paths import Protocol

REDACTED = "[REDACTED]"
V2 = (Protocol.V2_REST, Protocol.V2_GRPC)


class Redaction:
    """The names to hide, applied to a parsed request or response body of any protocol."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def request(self, protocol: Protocol, body: Any, features: Sequence[str]) -> Any:
        if protocol is Protocol.NATIVE:
            return self._native(body)
        if protocol is Protocol.KSERVE_V1 and isinstance(body, dict):
            key = "instances" if body.get("instances") is not None else "inputs"  # which one the adapter read
            return {**body, key: self._rows(body.get(key), features)} if key in body else body
        if protocol in V2 and isinstance(body, dict):
            return {**body, "inputs": [self._tensor(item, features) for item in body.get("inputs") or []]}
        if protocol is Protocol.SELDON:
            return self._seldon(body, features)
        return body

    def response(self, protocol: Protocol, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        if protocol is Protocol.NATIVE:
            return {key: self._records(value) if key in ("output", "outputs") else value for key, value in body.items()}
        if protocol is Protocol.KSERVE_V1 and "predictions" in body:
            return {**body, "predictions": self._records(body["predictions"])}
        if protocol in V2:
            return {**body, "outputs": [self._tensor(item, ()) for item in body.get("outputs") or []]}
        if protocol is Protocol.SELDON:
            return self._seldon(body, ())
        return body

    def _native(self, body: Any) -> Any:
        """Records, or a batch in columns: `{"inputs": {column: values}}` (Arrow bodies are logged so) or `dataframe_split`."""
        if isinstance(body, dict) and isinstance(body.get("inputs"), dict):
            return {**body, "inputs": {name: blank(values) if name in self.names else values for name, values in body["inputs"].items()}}
        split = body.get("dataframe_split") if isinstance(body, dict) else None
        if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
            hidden = self._positions([str(name) for name in split["columns"]])
            data = [self._row(row, hidden) if isinstance(row, list) else row for row in split["data"]]
            return {**body, "dataframe_split": {**split, "data": data}}
        return self._records(body)

    def _records(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._records(item) for item in value]
        if isinstance(value, dict):
            return {key: REDACTED if key in self.names else item for key, item in value.items()}
        return value

    def _rows(self, rows: Any, features: Sequence[str]) -> Any:
        """Rows as objects (by key) or as lists (by the model's feature order)."""
        if not isinstance(rows, list):
            return rows
        hidden = self._positions(features)
        return [self._row(row, hidden) if isinstance(row, list) else self._records(row) for row in rows]

    def _positions(self, names: Sequence[str]) -> frozenset[int]:
        return frozenset(index for index, name in enumerate(names) if name in self.names)

    @staticmethod
    def _row(row: list[Any], hidden: frozenset[int]) -> list[Any]:
        return [REDACTED if index in hidden else value for index, value in enumerate(row)]

    def _tensor(self, tensor: Any, features: Sequence[str]) -> Any:
        if not isinstance(tensor, dict) or "data" not in tensor:
            return tensor
        if tensor.get("name") in self.names:
            return {**tensor, "data": blank(tensor["data"])}
        shape = tensor.get("shape")
        hidden = self._positions(features)
        if not hidden or tensor.get("name") in features or not (isinstance(shape, list) and len(shape) == 2 and shape[1] == len(features)):
            return tensor
        data = tensor["data"]  # one [N, F] input holding every feature: hide the named features' columns
        if data and all(isinstance(row, list) for row in data):
            return {**tensor, "data": [self._row(row, hidden) for row in data]}
        width = len(features)
        return {**tensor, "data": [REDACTED if index % width in hidden else value for index, value in enumerate(data)]}

    def _seldon(self, body: Any, features: Sequence[str]) -> Any:
        """A SeldonMessage's columns: named by `data.names`, else (a request) by the model's feature order."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return body
        names = data.get("names") or features
        hidden = self._positions(names)
        if not hidden:
            return body
        if isinstance(data.get("ndarray"), list):
            ndarray = data["ndarray"]
            rows = [self._row(row, hidden) if isinstance(row, list) else row for row in ndarray]
            redacted = rows if any(isinstance(row, list) for row in ndarray) else self._row(ndarray, hidden)
            return {**body, "data": {**data, "ndarray": redacted}}
        tensor = data.get("tensor")
        if isinstance(tensor, dict) and isinstance(tensor.get("values"), list):
            width = len(names)
            values = [REDACTED if index % width in hidden else value for index, value in enumerate(tensor["values"])]
            return {**body, "data": {**data, "tensor": {**tensor, "values": values}}}
        return body


def blank(value: Any) -> Any:
    """Every value replaced, nesting kept (a tensor's data keeps its length and shape)."""
    if isinstance(value, list):
        return [blank(item) for item in value]
    return REDACTED
