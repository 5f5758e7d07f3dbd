"""Columnar validation of a batch: one vectorised pass per feature instead of a dict and a schema check per row.

It accepts only what the model's input schema accepts and otherwise declines (returns None). Declining is never
an error: the caller falls back to per-record validation, which names the offending rows and fields, so the
messages stay the schema's own.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.bundle.metadata import Feature, FeatureKind
from sealserve.bundle.schema import MAX_TEXT_LENGTH

Raw = Sequence[Any] | np.ndarray
Check = Callable[[Raw, bool], "np.ndarray | None"]
EXACT_INTEGERS = float(2**53)  # past this, a float no longer names one integer


@dataclass(frozen=True)
class Columns:
    """A validated batch: one model-facing array per feature (category codes, not labels; no nulls)."""

    rows: int
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.rows

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        names = parts[0].arrays
        return cls(sum(part.rows for part in parts), {name: np.concatenate([part.arrays[name] for part in parts]) for name in names})


class ColumnCheck:
    """The schema's rules for every feature, as vectorised checks built once per loaded model."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.names = tuple(feature.name for feature in features)
        self._checks = [(feature.name, _check_for(feature)) for feature in features]
        self._by_name = operator.itemgetter(*self.names)

    def __call__(self, raw: Mapping[str, Raw], rows: int, *, whole_floats: bool = False) -> Columns | None:
        """`raw`: client values per feature, `rows` each. `whole_floats`: 3.0 counts as an integer (tensor inputs)."""
        arrays = {}
        for name, check in self._checks:
            values = raw[name]
            if len(values) != rows:
                return None
            array = check(values, whole_floats)
            if array is None:
                return None
            arrays[name] = array
        return Columns(rows, arrays)

    def records(self, records: Sequence[Any]) -> Columns | None:
        """JSON records (dicts keyed by feature name, nothing else) as validated columns, or None."""
        width = len(self.names)
        if not all(type(record) is dict and len(record) == width for record in records):
            return None
        try:
            rows = list(map(self._by_name, records))
        except KeyError:
            return None
        if width == 1:
            return self({self.names[0]: rows}, len(records))
        return self(dict(zip(self.names, zip(*rows, strict=True), strict=True)), len(records))


def _check_for(feature: Feature) -> Check:
    if feature.kind is FeatureKind.NUMBER:
        return _bounded(_numbers, feature)
    if feature.kind is FeatureKind.INTEGER:
        return _bounded(_integers, feature)
    if feature.kind is FeatureKind.BOOLEAN:
        return _booleans
    if feature.kind is FeatureKind.CATEGORY:
        return _categories(feature)
    return _texts


def _bounded(check: Check, feature: Feature) -> Check:
    low, high = feature.minimum, feature.maximum
    if low is None and high is None:
        return check

    def bounded(values: Raw, whole_floats: bool) -> np.ndarray | None:
        array = check(values, whole_floats)
        if array is None or (low is not None and not (array >= low).all()) or (high is not None and not (array <= high).all()):
            return None
        return array

    return bounded


def _only(values: Raw, types: frozenset[type]) -> bool:
    return set(map(type, values)) <= types


NUMBER_TYPES = frozenset({float, int})


def _numbers(values: Raw, whole_floats: bool) -> np.ndarray | None:
    """Finite numbers; booleans are not numbers (the schema is strict)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            return None
        array = values.astype(np.float64)
    elif _only(values, NUMBER_TYPES):
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:
            return None
    else:
        return None
    return array if np.isfinite(array).all() else None


def _integers(values: Raw, whole_floats: bool) -> np.ndarray | None:
    """int64 values; with `whole_floats`, floats that are whole numbers count too."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "i" or (values.dtype.kind == "u" and (values.size == 0 or values.max() < 2**63)):
            return values.astype(np.int64)
        if values.dtype.kind != "f" or not whole_floats:
            return None
        floats = values.astype(np.float64)
    elif _only(values, frozenset({int})):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return None
    elif whole_floats and _only(values, NUMBER_TYPES):
        try:
            floats = np.array(values, dtype=np.float64)
        except OverflowError:
            return None
    else:
        return None
    if not (np.isfinite(floats).all() and (np.floor(floats) == floats).all() and (np.abs(floats) <= EXACT_INTEGERS).all()):
        return None
    return floats.astype(np.int64)


def _booleans(values: Raw, whole_floats: bool) -> np.ndarray | None:
    if isinstance(values, np.ndarray):
        return values if values.dtype.kind == "b" else None
    return np.array(values, dtype=bool) if _only(values, frozenset({bool})) else None


def _texts(values: Raw, whole_floats: bool) -> np.ndarray | None:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not _only(values, frozenset({str})) or (len(values) and max(map(len, values)) > MAX_TEXT_LENGTH):
        return None
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _categories(feature: Feature) -> Check:
    """Labels the schema accepts (any text with `allow_unknown`) → the codes the model saw."""
    categories = dict(feature.categories or {})
    coded = any(label != code for label, code in categories.items())

    def check(values: Raw, whole_floats: bool) -> np.ndarray | None:
        texts = _texts(values, whole_floats)
        if texts is None:
            return None
        if not feature.allow_unknown and not set(texts.tolist()) <= categories.keys():
            return None
        if coded:
            texts[:] = [categories.get(label, label) for label in texts.tolist()]
        return texts

    return check
