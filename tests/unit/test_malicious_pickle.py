"""A pickle whose loading writes a marker file: refused at verification, by the restricted unpickler, or by allow_pickle.

The positive control proves the payload is live: when an operator explicitly trusts `builtins.open`, loading it does
create the marker. Every other test shows the marker never appears.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.errors import DigestMismatchError, UnknownKeyError, UnsafeModelError
from sealserve.packing.build import pack
from sealserve.trust.load import load_joblib
from sealserve.trust.verify import verify_bundle
from tests.support.tamper import flip_byte, marker_pickle, padding_offset, replace_model_and_sign


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "markers" / "pwned"


@pytest.fixture
def benign_pickle_bundle(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, tmp_path: Path
) -> Path:
    return pack(
        fitted_model,
        name="risk",
        version="1.0.0",
        private_key=signing_key,
        out=tmp_path / "bundle",
        sample=training_frame,
        format="joblib",
        allow_pickle=True,
    )


@pytest.fixture
def evil_bundle(benign_pickle_bundle: Path, signing_key: keys.SigningKey, marker: Path) -> Path:
    """Correctly signed by the trusted key, but its model file is the marker-writing pickle."""
    marker.parent.mkdir()
    replace_model_and_sign(benign_pickle_bundle, marker_pickle(marker), signing_key)
    return benign_pickle_bundle


def test_control_the_payload_runs_when_its_global_is_explicitly_trusted(evil_bundle: Path, trusted_keyring: Keyring, marker: Path) -> None:
    verified = verify_bundle(evil_bundle, trusted_keyring)
    try:
        verified.load(allow_pickle=True, trusted_types=("builtins.open",))
    finally:
        verified.discard()
    assert marker.exists()


def test_untrusted_signer_is_refused_before_the_pickle_is_read(evil_bundle: Path, marker: Path) -> None:
    stranger = keys.generate(keys.Algorithm.ECDSA_P256, "stranger")
    replace_model_and_sign(evil_bundle, (evil_bundle / "model.joblib").read_bytes(), stranger)
    with pytest.raises(UnknownKeyError, match="'stranger'"):
        verify_bundle(evil_bundle, Keyring())
    assert not marker.exists()


def test_swapping_the_pickle_into_a_signed_bundle_is_refused(benign_pickle_bundle: Path, trusted_keyring: Keyring, marker: Path) -> None:
    marker.parent.mkdir()
    (benign_pickle_bundle / "model.joblib").write_bytes(marker_pickle(marker))
    with pytest.raises(DigestMismatchError, match=r"model\.joblib"):
        verify_bundle(benign_pickle_bundle, trusted_keyring)
    assert not marker.exists()


def test_one_flipped_byte_in_a_live_payload_is_refused(evil_bundle: Path, trusted_keyring: Keyring, marker: Path) -> None:
    model = evil_bundle / "model.joblib"
    flip_byte(model, padding_offset(model.read_bytes()))
    pickle.loads(model.read_bytes())  # still a valid, live pickle: it runs when unpickled without restriction
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DigestMismatchError, match=r"model\.joblib"):
        verify_bundle(evil_bundle, trusted_keyring)
    assert not marker.exists()


def test_a_correctly_signed_payload_is_refused_by_the_restricted_unpickler(
    evil_bundle: Path, trusted_keyring: Keyring, marker: Path
) -> None:
    verified = verify_bundle(evil_bundle, trusted_keyring)
    try:
        with pytest.raises(UnsafeModelError, match=r"refers to builtins\.open, which is not on the unpickling allow-list"):
            verified.load(allow_pickle=True)
    finally:
        verified.discard()
    assert not marker.exists()


def test_a_correctly_signed_payload_is_not_even_read_without_allow_pickle(
    evil_bundle: Path, trusted_keyring: Keyring, marker: Path
) -> None:
    verified = verify_bundle(evil_bundle, trusted_keyring)
    try:
        with pytest.raises(UnsafeModelError, match="needs allow_pickle: true"):
            verified.load(trusted_types=("builtins.open",))
    finally:
        verified.discard()
    assert not marker.exists()


def test_dangerous_classes_re_exported_by_allowed_packages_are_refused(tmp_path: Path) -> None:
    """sklearn.datasets._covtype imports gzip.GzipFile; naming it there must not make it allowed."""
    marker = tmp_path / "created-by-gzipfile"
    path = tmp_path / "model.joblib"
    path.write_bytes(marker_pickle(marker, module="sklearn.datasets._covtype", name="GzipFile").replace(b"Vw\n", b"Vwb\n"))
    with pytest.raises(UnsafeModelError, match=r"sklearn\.datasets\._covtype\.GzipFile"):
        load_joblib(path, set())
    assert not marker.exists()


class Greeter:
    """A class the operator trusts (extra global); its instances are callable."""

    def __call__(self, *args: object) -> str:
        return "called"


class CallGreeter:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (Greeter(), ())


GREETER = f"{__name__}.Greeter"


def test_calling_an_object_built_inside_the_stream_is_refused(tmp_path: Path) -> None:
    """Only allow-listed globals may be called: an instance of an allowed class is not a callable gadget."""
    stream = pickle.dumps(CallGreeter(), protocol=5)
    assert pickle.loads(stream) == "called"  # a plain unpickler calls the instance
    path = tmp_path / "model.joblib"
    path.write_bytes(stream)
    with pytest.raises(UnsafeModelError, match="calls a Greeter object that is not an allow-listed global"):
        load_joblib(path, {GREETER})


class WriteMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_object_arrays_nested_pickle_streams_get_the_same_restrictions(tmp_path: Path) -> None:
    """joblib writes object arrays as a nested pickle stream; it must not escape the allow-list."""
    marker = tmp_path / "created-by-nested-stream"
    globals_path, calls_path = tmp_path / "globals.joblib", tmp_path / "calls.joblib"
    joblib.dump({"coef_": np.array([WriteMarker(marker)], dtype=object)}, globals_path)
    joblib.dump({"coef_": np.array([CallGreeter()], dtype=object)}, calls_path)
    with pytest.raises(UnsafeModelError, match="not on the unpickling allow-list"):
        load_joblib(globals_path, set())
    assert not marker.exists()
    with pytest.raises(UnsafeModelError, match="calls a Greeter object"):
        load_joblib(calls_path, {GREETER})
