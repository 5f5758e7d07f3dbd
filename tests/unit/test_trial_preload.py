"""The trial runner's preload imports each model library on its own: a wheel whose shared library is missing (LightGBM
without libgomp, as in a slim image) costs the models that need it, not every trial."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from sealserve.serve.lifecycle import trial_preload
from sealserve.serve.lifecycle.trial import serves_a_reference, serves_its_reference
from tests.support.bundles import Workspace


def test_a_library_that_raises_oserror_on_import_is_reported_and_the_rest_still_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "native_without_its_library.py").write_text(
        "raise OSError('libgomp.so.1: cannot open shared object file: No such file or directory')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    failed = trial_preload.import_all(("native_without_its_library", "json", "no_such_library_here"))
    assert failed["native_without_its_library"] == "OSError: libgomp.so.1: cannot open shared object file: No such file or directory"
    assert failed["no_such_library_here"].startswith("ModuleNotFoundError")
    assert "json" not in failed
    printed = capsys.readouterr().err
    assert "cannot import native_without_its_library" in printed
    assert "no_such_library_here" not in printed  # an optional library that is not installed is no news


def test_every_preloaded_library_imports_in_this_environment() -> None:
    code = "from sealserve.serve.lifecycle import trial_preload; print(trial_preload.FAILED)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "{}", done.stdout + done.stderr


def test_the_reference_preload_imports_in_this_environment() -> None:
    code = "import sys; from sealserve.serve.lifecycle import trial_preload_reference as p; print(p.FAILED, 'sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "{} True", done.stdout + done.stderr


def test_the_light_preload_leaves_scikit_learn_to_the_children_that_need_it() -> None:
    code = (
        "import sys; from sealserve.serve.lifecycle import trial_child, trial_preload\n"
        "print(sorted(m for m in ('sklearn', 'skops') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_runner_preloads_scikit_learn_only_for_a_configured_reference_model() -> None:
    assert serves_a_reference([SimpleNamespace(trial_prediction=True, runtime="reference")])
    assert not serves_a_reference([SimpleNamespace(trial_prediction=False, runtime="reference")])
    assert not serves_a_reference([SimpleNamespace(trial_prediction=True, runtime="auto"), SimpleNamespace(class_path="x.Y")])


def test_a_bundle_served_by_its_reference_is_told_from_a_compiled_one(tmp_path: Path) -> None:
    """What decides whether the first such trial restarts the runner with scikit-learn preloaded."""
    space = Workspace.create(tmp_path)
    compiled, uncompiled = tmp_path / "compiled", tmp_path / "uncompiled"
    for zipped, folder in ((space.publish("compiled"), compiled), (space.publish("uncompiled", compiled=False), uncompiled)):
        with zipfile.ZipFile(zipped) as archive:
            archive.extractall(folder)
    assert not serves_its_reference(compiled, "auto")
    assert serves_its_reference(compiled, "reference")
    assert serves_its_reference(uncompiled, "auto")
    assert not serves_its_reference(tmp_path / "not-a-bundle", "auto")  # the trial's own load reports that
