"""A compiled XGBoost or LightGBM form serves only when it answers within 1e-9 of the booster itself, else the booster serves."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import sealserve.packing.compile as compiler_module
from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.runtime.choice import BOOSTER_TOLERANCE, COMPILED_TOLERANCE
from sealserve.trust.verify import verify_bundle
from tests.unit.test_compiled import Case, client_records, lightgbm_case, metadata_of, pack, serve, xgboost_case

BOOSTERS: dict[str, Callable[[], Case]] = {"xgboost": xgboost_case, "lightgbm": lightgbm_case}


@pytest.mark.parametrize("library", list(BOOSTERS))
def test_a_compiled_booster_further_than_1e_9_from_the_booster_is_left_out_and_the_booster_answers(
    library: str, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    case = BOOSTERS[library]()
    meta = metadata_of(pack(case, tmp_path / "bundle", signing_key))
    assert meta.compiled is None
    assert meta.compiled_skipped is not None
    assert meta.compiled_skipped.startswith("parity: max |Δp| "), meta.compiled_skipped
    assert meta.compiled_skipped.endswith(f"> {BOOSTER_TOLERANCE:.3g}")
    model = serve(tmp_path / "bundle", trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == (library, meta.compiled_skipped)
    outputs = [output.model_dump() for output in model.predict_batch(client_records(model, case.sample))]
    fitted = case.to_input(case.sample)
    label_of = {item.value: item.label for item in meta.output.classes}
    assert [out["prediction"] for out in outputs] == [label_of[value] for value in case.model.predict(fitted).tolist()]
    served = np.array([list(out["probabilities"].values()) for out in outputs])
    assert served.tolist() == np.asarray(case.model.predict_proba(fitted), dtype=np.float64).tolist()


@pytest.mark.parametrize("library", list(BOOSTERS))
def test_a_booster_bundle_whose_compiled_form_met_only_the_old_tolerance_serves_the_booster(
    library: str, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bundles packed when boosters met the general 1e-5 carry a compiled form float32 rounding keeps apart (~1e-7)."""
    with monkeypatch.context() as older_packer, warnings.catch_warnings():
        older_packer.setattr(compiler_module, "tolerance_for", lambda metadata, tolerance: tolerance)
        bundle = pack(BOOSTERS[library](), tmp_path / "bundle", signing_key)
    meta = metadata_of(bundle)
    assert meta.compiled is not None, meta.compiled_skipped
    assert meta.compiled.parity.tolerance == COMPILED_TOLERANCE
    difference = meta.compiled.parity.max_abs_probability_diff
    assert difference is not None
    assert BOOSTER_TOLERANCE < difference <= COMPILED_TOLERANCE
    if library == "lightgbm":  # LightGBM compares float64 features with float64 thresholds: the graph takes doubles
        verified = verify_bundle(bundle, trusted_keyring)
        try:
            assert [item.type for item in verified.load_compiled().get_inputs()] == ["tensor(double)"]
        finally:
            verified.discard()
    model = serve(bundle, trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == (library, f"recorded parity: max |Δp| {difference:.3g} > 1e-09")
