"""Which runtime serves a bundle: its compiled form (ONNX Runtime) when it carries one within tolerance, else the reference.

Shared by pack (which records parity) and the server (which reads the record); no pandas, no converters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sealserve.bundle.metadata import BundleMetadata, ModelFormat, ParityRecord
from sealserve.errors import ConfigError

COMPILED_TOLERANCE = 1e-5
"""Largest probability difference (absolute) or value difference (relative to the largest value) accepted, at pack and serve."""

BOOSTER_TOLERANCE = 1e-9
"""XGBoost and LightGBM users compare answers with the booster's own: a compiled booster must match it this closely."""

RuntimeSetting = Literal["auto", "reference", "compiled"]
PICKLE_SERVES_ITSELF = "a pickle bundle serves its reference model: allow_pickle is an explicit, per-model choice"


@dataclass(frozen=True)
class RuntimeChoice:
    """`compiled`: serve the bundle's compiled form; otherwise `skipped` says why the reference serves (None: no choice)."""

    compiled: bool
    skipped: str | None = None


def tolerance_for(metadata: BundleMetadata, tolerance: float = COMPILED_TOLERANCE) -> float:
    """The tolerance a compiled form of this bundle must meet: never looser than BOOSTER_TOLERANCE for a booster, or for
    a pipeline ending in one."""
    booster = metadata.format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM) or metadata.booster_step is not None
    return min(tolerance, BOOSTER_TOLERANCE) if booster else tolerance


def parity_problem(parity: ParityRecord, tolerance: float = COMPILED_TOLERANCE) -> str | None:
    """Why a parity record is not good enough, or None when labels all agree and every difference is within `tolerance`."""
    if parity.label_agreement is not None and parity.label_agreement < 1.0:
        return f"parity: labels agree on {parity.label_agreement:.2%} of {parity.rows} sample rows"
    if parity.max_abs_probability_diff is not None and not parity.max_abs_probability_diff <= tolerance:
        return f"parity: max |Δp| {parity.max_abs_probability_diff:.3g} > {tolerance:.3g}"
    if parity.max_abs_value_diff is not None and not parity.max_abs_value_diff <= tolerance:
        return f"parity: max relative |Δy| {parity.max_abs_value_diff:.3g} > {tolerance:.3g}"
    return None


def choose_runtime(metadata: BundleMetadata, setting: RuntimeSetting = "auto", tolerance: float = COMPILED_TOLERANCE) -> RuntimeChoice:
    """auto: the compiled form when present and within `tolerance` (a booster's: `tolerance_for`); reference: never;
    compiled: required (ConfigError without)."""
    if metadata.format is ModelFormat.ONNX:
        return RuntimeChoice(compiled=False)  # the model file is the compiled form: nothing to choose
    if metadata.format is ModelFormat.JOBLIB:
        return RuntimeChoice(compiled=False, skipped=PICKLE_SERVES_ITSELF)
    if setting == "reference":
        return RuntimeChoice(compiled=False, skipped="runtime: reference in the service configuration")
    problem: str | None
    if metadata.compiled is None:
        problem = metadata.compiled_skipped or "the bundle has no compiled model"
    else:
        found = parity_problem(metadata.compiled.parity, tolerance_for(metadata, tolerance))
        problem = None if found is None else f"recorded {found}"
    if problem is None:
        return RuntimeChoice(compiled=True)
    if setting == "compiled":
        raise ConfigError(
            f"{metadata.name} {metadata.version}: the service configuration requires the compiled runtime (runtime: compiled), "
            f"but the bundle cannot serve one: {problem}"
        )
    return RuntimeChoice(compiled=False, skipped=problem)
