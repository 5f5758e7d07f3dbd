"""Signed models that carry code: the published ScoringMonitor bypass (a joblib LogisticRegression whose __setstate__
side effects open a listener inside the server), and function parameters that would fire at predict time.

Each goes through a bundle correctly signed by the trusted key: the signature is not the wall here, the loader is.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import joblib
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.errors import UnsafeModelError
from sealserve.packing.build import sign_folder
from tests.conftest import make_training_frame
from tests.security.conftest import Attempt, Pickled


@pytest.fixture
def transport() -> Any:
    """scikit-learn's callback transport; without it, test_pickle_attacks' SideEffectState covers the same wall."""
    pytest.importorskip("sklearn.callback._scoring_monitor", reason="this scikit-learn has no ScoringMonitor")
    return pytest.importorskip("sklearn.callback._transport", reason="this scikit-learn has no callback transport")


def monitored_model(address: Path) -> LogisticRegression:
    """The bypass: a fitted model carrying a ScoringMonitor whose listener address the bundle chose."""
    from sklearn.callback import _scoring_monitor, _transport

    monitor = _scoring_monitor.ScoringMonitor.__new__(_scoring_monitor.ScoringMonitor)
    handle = _transport.ListenerHandle(address=str(address), authkey=b"k" * 32)
    monitor.__dict__.update(_scoring=None, _log=[], _estimator_scorers={}, _listener_handle=handle)
    frame, target = make_training_frame(rows=40)
    carrier = LogisticRegression(max_iter=500).fit(frame.to_numpy(dtype="float64"), target)
    carrier.monitor_ = monitor
    return carrier


def dump(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.fixture
def listener_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a listener opened by the payload would put its socket: the marker of this attack."""
    folder = tmp_path / "listeners"
    folder.mkdir()
    monkeypatch.setattr("multiprocessing.util.get_temp_dir", lambda: str(folder))
    return folder


def test_control_the_scoring_monitor_opens_a_listener_and_a_thread_when_unpickled(
    transport: Any, tmp_path: Path, listener_dir: Path
) -> None:
    threads = threading.active_count()
    loaded = joblib.load(io.BytesIO(dump(monitored_model(tmp_path / "attacker.sock"))))
    try:
        assert os.listdir(listener_dir), "the payload's __setstate__ opened no listener"
        assert threading.active_count() > threads
        assert loaded.monitor_._listener_handle.address in transport._listeners
    finally:
        transport.close_listener(loaded.monitor_._listener_handle)


def test_a_signed_joblib_model_carrying_a_scoring_monitor_is_refused_before_its_setstate_runs(
    transport: Any, pickled_bundle: Pickled, trusted_keyring: Keyring, attempt: Attempt, tmp_path: Path, listener_dir: Path
) -> None:
    bundle = pickled_bundle(dump(monitored_model(tmp_path / "attacker.sock")))
    listeners = dict(transport._listeners)
    with pytest.raises(UnsafeModelError, match=r"sklearn\.callback\._scoring_monitor\.ScoringMonitor, which is not on the unpickling"):
        attempt(bundle, trusted_keyring)
    assert os.listdir(listener_dir) == []
    assert transport._listeners == listeners


def system_transformer() -> Any:
    return make_pipeline(FunctionTransformer(os.system, validate=False))


def test_control_a_function_parameter_fires_at_predict_time(marker: Path) -> None:
    loaded = joblib.load(io.BytesIO(dump(system_transformer())))
    loaded.transform(f"touch {marker}")
    assert marker.exists()


def test_a_signed_joblib_model_with_a_code_running_parameter_is_refused_at_load(
    pickled_bundle: Pickled, trusted_keyring: Keyring, attempt: Attempt, marker: Path
) -> None:
    with pytest.raises(UnsafeModelError, match=r"refers to posix\.system, which is not on the unpickling allow-list"):
        attempt(pickled_bundle(dump(system_transformer())), trusted_keyring)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("declared", "message"),
    [(["posix.system"], r"types outside the allow-list: posix\.system"), ([], r"metadata does not declare: posix\.system")],
    ids=["declared-but-outside-the-policy", "undeclared"],
)
def test_a_signed_skops_model_with_a_code_running_function_is_refused(
    packed_bundle: Path,
    signing_key: keys.SigningKey,
    trusted_keyring: Keyring,
    attempt: Attempt,
    tmp_path: Path,
    marker: Path,
    declared: list[str],
    message: str,
) -> None:
    bundle = Path(shutil.copytree(packed_bundle, tmp_path / "bundle"))
    (bundle / "model.skops").write_bytes(skops.io.dumps(system_transformer()))
    metadata = json.loads((bundle / "sealserve.json").read_text())
    metadata.update(required_types=declared, compiled=None)
    (bundle / "sealserve.json").write_text(json.dumps(metadata))
    (bundle / "model.onnx").unlink(missing_ok=True)
    sign_folder(bundle, signing_key, subject=metadata["name"])
    with pytest.raises(UnsafeModelError, match=message):
        attempt(bundle, trusted_keyring, allow_pickle=False, trusted_types=())
    assert not marker.exists()


def test_control_the_skops_function_fires_when_trusted(marker: Path) -> None:
    data = skops.io.dumps(system_transformer())
    loaded = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    loaded.transform(f"touch {marker}")
    assert marker.exists()
