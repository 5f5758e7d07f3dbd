"""`sealserve pack` stays quiet and bounded around the compile attempt: what onnxruntime prints is captured and the
outcome is one summary line; `--no-compile` skips the attempt; `--compile-timeout` abandons a compile that runs long."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sealserve.bundle import keyring
from sealserve.bundle.metadata import COMPILED_FILE, BundleMetadata
from sealserve.packing.compile import NOT_REQUESTED
from tests.support.server import SEALSERVE

SUMMARY = "compiled form skipped: "


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models with their training CSV and a key. `infrequent`'s encoder (no category is rare) ignores unseen labels;
    its ONNX form fails inside onnxruntime on one (onnxruntime prints an error line), so it never compiles. `linear`
    compiles."""
    root = tmp_path_factory.mktemp("quiet")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"city": rng.choice(["a", "b", "c", "d"], 150), "x": rng.normal(size=150), "z": rng.normal(size=150)})
    target = (frame.x + frame.z > 0).astype(int)
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5)
    infrequent = make_pipeline(
        ColumnTransformer([("city", encoder, ["city"]), ("numbers", StandardScaler(), ["x", "z"])]), LogisticRegression()
    )
    skops.io.dump(infrequent.fit(frame, target), root / "infrequent.skops")
    skops.io.dump(LogisticRegression().fit(frame[["x", "z"]].to_numpy(), target), root / "linear.skops")
    frame.to_csv(root / "train.csv", index=False)
    frame[["x", "z"]].to_csv(root / "numbers.csv", index=False)
    keyring.create_signing_key(root / "key.pem", root / "keyring.json", kid="quiet")
    return root


def pack(root: Path, model: str, sample: str, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [SEALSERVE, "pack", model, "--name", "m", "--version", "1.0.0", "--private-key", "key.pem", "--out", out, "--sample", sample]
    return subprocess.run([*command, *extra], cwd=root, capture_output=True, text=True, check=False, timeout=180)


def bundle_state(bundle: Path) -> tuple[bool, str | None]:
    """(whether the bundle carries a compiled file, its recorded reason for not having one)."""
    with zipfile.ZipFile(bundle) as archive:
        metadata = BundleMetadata.model_validate_json(archive.read("sealserve.json"))
        return COMPILED_FILE in archive.namelist(), metadata.compiled_skipped


def summaries(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(SUMMARY)]


def test_a_failed_compile_prints_no_native_error_only_one_summary_line(workdir: Path) -> None:
    result = pack(workdir, "infrequent.skops", "train.csv", "infrequent.zip")
    assert result.returncode == 0, result.stderr
    assert "[E:onnxruntime" not in result.stdout + result.stderr
    assert "onnxruntime" not in result.stderr
    compiled, reason = bundle_state(workdir / "infrequent.zip")
    assert not compiled
    assert reason is not None
    assert "cannot take an unseen 'city'" in reason
    assert summaries(result) == [SUMMARY + reason]


def test_no_compile_packs_without_a_compiled_form(workdir: Path) -> None:
    result = pack(workdir, "linear.skops", "numbers.csv", "plain.zip", "--no-compile")
    assert result.returncode == 0, result.stderr
    assert bundle_state(workdir / "plain.zip") == (False, NOT_REQUESTED)
    assert summaries(result) == [SUMMARY + NOT_REQUESTED]


def test_a_compile_past_the_timeout_is_abandoned_with_a_clear_reason(workdir: Path) -> None:
    compiled = pack(workdir, "linear.skops", "numbers.csv", "compiled.zip")
    assert compiled.returncode == 0, compiled.stderr
    assert bundle_state(workdir / "compiled.zip") == (True, None)  # the same model compiles within the default bound
    assert summaries(compiled) == []
    result = pack(workdir, "linear.skops", "numbers.csv", "abandoned.zip", "--compile-timeout", "0.001")
    assert result.returncode == 0, result.stderr
    has_compiled_file, reason = bundle_state(workdir / "abandoned.zip")
    assert not has_compiled_file
    assert reason == "compiling took longer than the 0.001 s compile timeout (compile_timeout, CLI: --compile-timeout)"
    assert summaries(result) == [SUMMARY + reason]
    verified = subprocess.run(
        [SEALSERVE, "verify", "abandoned.zip", "--keyring", "keyring.json"], cwd=workdir, capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
