"""The compile attempt inside `pack`: skipped for models known not to convert, float32 only for SVMs, bounded in time,
and what native code writes to stderr meanwhile is captured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer
from sklearn.svm import SVR

from sealserve.bundle import keys
from sealserve.bundle.metadata import COMPILED_FILE, BundleMetadata
from sealserve.errors import BundleFormatError
from sealserve.packing.attempt import KNOWN_NOT_TO_CONVERT
from sealserve.packing.build import pack
from sealserve.packing.quiet import native_stderr_captured


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    return frame, frame.a + 2 * frame.b


def packed(model: Any, data: tuple[pd.DataFrame, pd.Series], out: Path, **options: Any) -> tuple[Path, BundleMetadata]:
    frame, target = data
    model.fit(frame.to_numpy(), target if not isinstance(model, LogisticRegression) else target > 0)
    key = keys.generate(keys.Algorithm.ECDSA_P256, "unit")
    bundle = pack(model, name="m", version="1.0.0", private_key=key, out=out, sample=frame, **options)
    return bundle, BundleMetadata.model_validate_json((bundle / "sealserve.json").read_text())


def test_a_quantile_transformer_is_not_tried(data: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    bundle, metadata = packed(make_pipeline(QuantileTransformer(n_quantiles=50), SVR()), data, tmp_path / "b")
    assert metadata.compiled is None
    assert metadata.compiled_skipped == KNOWN_NOT_TO_CONVERT["sklearn.preprocessing.QuantileTransformer"]
    assert not (bundle / COMPILED_FILE).exists()


def test_an_svm_compiles_in_float32(data: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    import onnxruntime

    bundle, metadata = packed(SVR(), data, tmp_path / "b")
    assert metadata.compiled is not None, metadata.compiled_skipped
    session = onnxruntime.InferenceSession(str(bundle / COMPILED_FILE), providers=["CPUExecutionProvider"])
    assert [item.type for item in session.get_inputs()] == ["tensor(float)"]


def test_a_compile_past_the_timeout_is_abandoned_and_leaves_nothing_in_the_bundle(
    data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    bundle, metadata = packed(LogisticRegression(), data, tmp_path / "b", compile_timeout=0.001)
    assert metadata.compiled is None
    assert metadata.compiled_skipped is not None
    assert "0.001 s compile timeout" in metadata.compiled_skipped
    assert not (bundle / COMPILED_FILE).exists()


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_the_timeout_must_be_positive(data: tuple[pd.DataFrame, pd.Series], tmp_path: Path, timeout: float) -> None:
    with pytest.raises(BundleFormatError, match="compile_timeout must be a positive number of seconds"):
        packed(LogisticRegression(), data, tmp_path / "b", compile_timeout=timeout)


def test_native_writes_to_stderr_are_captured_and_stderr_is_restored(capfd: pytest.CaptureFixture[str]) -> None:
    with native_stderr_captured() as captured:
        os.write(2, b"[E:native] written past sys.stderr\n")
    os.write(2, b"after\n")
    assert captured.text == "[E:native] written past sys.stderr\n"
    assert capfd.readouterr().err == "after\n"


def fail_quietly() -> None:
    with native_stderr_captured():
        os.write(2, b"hidden\n")
        raise RuntimeError("boom")


def test_stderr_is_restored_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError):
        fail_quietly()
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"
