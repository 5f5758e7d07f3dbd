"""Loading a verified model file: each format behind its own allow-list, unsafe content refused instead of run."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from sealserve.bundle.metadata import ModelFormat
from sealserve.errors import BundleFormatError, UnsafeModelError
from sealserve.trust.load import load_joblib, load_model_file


@pytest.fixture(scope="module")
def mixed_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"dose": rng.normal(size=80), "site": rng.choice(["north", "south", "east"], 80)})
    return frame, np.where(frame["dose"] > 0, "responder", "non_responder")


@pytest.fixture
def custom_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A model class from the user's own package (not in any allow-list)."""
    module = types.ModuleType("acme_models")

    class TunedRegression(LogisticRegression):
        pass

    TunedRegression.__module__ = "acme_models"
    TunedRegression.__qualname__ = "TunedRegression"
    module.TunedRegression = TunedRegression  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme_models", module)
    return module


def test_skops_loads_plain_scikit_learn_models(tmp_path: Path, mixed_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, target = mixed_data
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame[["dose"]], target)
    skops.io.dump(forest, tmp_path / "model.skops")
    loaded = load_model_file(tmp_path / "model.skops", ModelFormat.SKOPS)
    assert list(loaded.predict(frame[["dose"]])) == list(forest.predict(frame[["dose"]]))


def test_skops_refuses_functions_outside_the_allow_list(tmp_path: Path) -> None:
    rows = np.abs(np.random.default_rng(0).normal(size=(20, 2)))
    model = make_pipeline(FunctionTransformer(os.system), LogisticRegression())
    model.steps[1] = ("logisticregression", LogisticRegression().fit(rows, rows[:, 0] > 0.5))
    skops.io.dump(model, tmp_path / "model.skops")
    with pytest.raises(UnsafeModelError, match=r"model\.skops needs types outside the allow-list: .*system"):
        load_model_file(tmp_path / "model.skops", ModelFormat.SKOPS)


def test_skops_refuses_custom_classes_unless_the_operator_trusts_them(tmp_path: Path, custom_module: types.ModuleType) -> None:
    rows = np.random.default_rng(0).normal(size=(30, 2))
    model = custom_module.TunedRegression().fit(rows, rows[:, 0] > 0)
    skops.io.dump(model, tmp_path / "model.skops")
    with pytest.raises(UnsafeModelError, match=r"acme_models\.TunedRegression"):
        load_model_file(tmp_path / "model.skops", ModelFormat.SKOPS)
    loaded = load_model_file(tmp_path / "model.skops", ModelFormat.SKOPS, trusted_types=["acme_models.TunedRegression"])
    assert type(loaded).__name__ == "TunedRegression"


@pytest.mark.parametrize(
    ("model_format", "message"), [(ModelFormat.SKOPS, "not a readable skops file"), (ModelFormat.ONNX, "not a loadable ONNX model")]
)
def test_unreadable_model_files_are_format_errors(tmp_path: Path, model_format: ModelFormat, message: str) -> None:
    path = tmp_path / model_format.filename
    path.write_bytes(b"PK\x03\x04 definitely not a model")
    with pytest.raises(BundleFormatError, match=message):
        load_model_file(path, model_format)


def test_pickle_based_files_are_never_loaded_without_allow_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(), path)
    with pytest.raises(UnsafeModelError, match="loading it needs allow_pickle: true"):
        load_model_file(path, ModelFormat.JOBLIB)


@pytest.mark.parametrize("compress", [0, 3])
def test_restricted_unpickler_loads_common_scikit_learn_models(
    tmp_path: Path, mixed_data: tuple[pd.DataFrame, np.ndarray], compress: int
) -> None:
    """String categories and labels (object arrays), numpy dtypes as parameters, trees, bit generators."""
    frame, target = mixed_data
    models: dict[str, tuple[Pipeline | RandomForestClassifier | HistGradientBoostingClassifier, pd.DataFrame]] = {
        "pipeline": (
            make_pipeline(make_column_transformer((OneHotEncoder(), ["site"]), (StandardScaler(), ["dose"])), LogisticRegression()).fit(
                frame, target
            ),
            frame,
        ),
        "forest": (RandomForestClassifier(n_estimators=3, random_state=0).fit(frame[["dose"]], target), frame[["dose"]]),
        "boosting": (HistGradientBoostingClassifier(max_iter=3).fit(frame[["dose"]], target), frame[["dose"]]),
    }
    for name, (model, rows) in models.items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path, compress=compress)
        loaded = load_model_file(path, ModelFormat.JOBLIB, allow_pickle=True)
        assert list(loaded.predict(rows)) == list(model.predict(rows)), name


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("builtins", "open"), ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("numpy", "load")],
)
def test_globals_outside_the_allow_list_are_refused_naming_them(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(f"c{module}\n{name}\n(Vignored\ntR.".encode())
    with pytest.raises(UnsafeModelError, match=rf"model\.joblib refers to {module}\.{name}, which is not on the unpickling allow-list"):
        load_joblib(path, set())


def test_a_private_name_in_an_allowed_package_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"csklearn.base\n__builtins__\n.")
    with pytest.raises(UnsafeModelError, match=r"sklearn\.base\.__builtins__"):
        load_joblib(path, set())


def test_a_function_in_an_allowed_package_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"csklearn.utils\nresample\n.")
    with pytest.raises(UnsafeModelError, match=r"sklearn\.utils\.resample"):
        load_joblib(path, set())


def test_a_truncated_pickle_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BundleFormatError, match=r"model\.joblib could not be unpickled"):
        load_joblib(path, set())


def test_first_loads_on_several_threads_at_once_all_succeed(tmp_path: Path) -> None:
    """The server loads models side by side; the first skops or joblib load imports the whole sklearn catalog, and
    threads doing that at once must not trip over each other (pkgutil raised KeyError before the catalog lock)."""
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    model = LogisticRegression().fit(X, y)
    skops.io.dump(model, tmp_path / "model.skops")
    joblib.dump(model, tmp_path / "model.joblib")
    script = f"""
import threading
from pathlib import Path
from sealserve.bundle.metadata import ModelFormat
from sealserve.trust.load import load_model_file

folder, start, failures = Path({str(tmp_path)!r}), threading.Barrier(8), []

def load(index):
    start.wait()
    try:
        if index % 2:
            load_model_file(folder / "model.joblib", ModelFormat.JOBLIB, allow_pickle=True)
        else:
            load_model_file(folder / "model.skops", ModelFormat.SKOPS, trusted_types=[])
    except Exception as exc:
        failures.append(repr(exc))

threads = [threading.Thread(target=load, args=(index,)) for index in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(failures)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
