"""The schema audit's snapshot is skops' own defaults for the installed versions, the audit needs neither skops nor
scikit-learn, and with any other installed version it is skops that audits."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from sealserve.trust.policy.skops_schema import SNAPSHOT, SkopsDefaults, installed_versions, snapshot_estimators, untrusted_types

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `python -m tools.skops_snapshot` to regenerate src/sealserve/trust/policy/skops_defaults.py, and review its diff"


def python(code: str) -> str:
    """Run `code` in a fresh interpreter (this tree's sealserve and tools) and return what it printed."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A skops file of a model whose file needs a type skops does not trust by default (a callable)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    model = LogisticRegression().fit(X, X[:, 0] > 0)
    model.scorer_ = np.mean
    path = tmp_path_factory.mktemp("skops") / "model.skops"
    skops.io.dump(model, path)
    return path


def test_the_snapshot_is_skops_own_defaults_for_the_installed_versions() -> None:
    assert installed_versions(tuple(sorted(SNAPSHOT.versions))) == SNAPSHOT.versions, (
        f"installed {installed_versions(tuple(sorted(SNAPSHOT.versions)))}, snapshot {dict(SNAPSHOT.versions)}: {REGENERATE}"
    )
    live = json.loads(python("import json; from tools.skops_snapshot import capture; print(json.dumps(capture()))"))
    snapshot = {
        "versions": dict(SNAPSHOT.versions),
        "protocol": SNAPSHOT.protocol,
        "trusted": {kind: sorted(names) for kind, names in SNAPSHOT.trusted.items()},
        "replaces": sorted(SNAPSHOT.replaces),
        "passes_down": {kind: sorted(names) for kind, names in SNAPSHOT.passes_down.items()},
        "tree_constructor": SNAPSHOT.tree_constructor,
        "bit_generators": sorted(SNAPSHOT.bit_generators),
        "estimators": list(SNAPSHOT.estimators),
    }
    for field in live:
        assert snapshot[field] == live[field], f"{field} differs from skops' live defaults: {REGENERATE}"
    assert len(SNAPSHOT.trusted["ObjectNode"]) > 200
    assert len(SNAPSHOT.trusted["FunctionNode"]) > 300


def test_auditing_a_model_file_imports_neither_skops_nor_scikit_learn(model_file: Path) -> None:
    printed = python(
        "import sys; from pathlib import Path; from sealserve.trust.load import audit_skops\n"
        f"print(audit_skops(Path({str(model_file)!r}), ['numpy.mean']))\n"
        "print(sorted(name for name in ('skops', 'sklearn', 'scipy') if name in sys.modules))"
    )
    assert printed.splitlines() == [repr(sorted(skops.io.get_untrusted_types(file=model_file))), "[]"]
    assert "numpy.mean" in printed


def test_with_any_other_installed_version_skops_audits(model_file: Path) -> None:
    """Each package's version differing (or a package missing) hands the file to skops, imported for it."""
    variants = [{"skops": "0.15.0"}, {"scikit-learn": "1.0.0"}, {"numpy": "1.26.4"}, {"scipy": "1.0"}, {"no-such-package": "1.0"}]
    code = (
        "import dataclasses, sys; from pathlib import Path\n"
        "from sealserve.trust.policy.skops_schema import SNAPSHOT, untrusted_types\n"
        f"path = Path({str(model_file)!r})\n"
        "print(untrusted_types(path), 'skops.io' in sys.modules)\n"
        f"for versions in {variants!r}:\n"
        "    other = dataclasses.replace(SNAPSHOT, versions={**SNAPSHOT.versions, **versions})\n"
        "    print(untrusted_types(path, other), 'skops.io' in sys.modules)\n"
    )
    expected = repr(sorted(skops.io.get_untrusted_types(file=model_file)))
    lines = python(code).splitlines()
    assert lines == [f"{expected} False"] + [f"{expected} True"] * len(variants)


def test_the_fallback_is_skops_answer_even_where_the_snapshot_would_differ(model_file: Path) -> None:
    """A snapshot that trusted the file's callable would hide it; a version mismatch hands the file to skops, which does not."""
    lenient = dataclasses.replace(SNAPSHOT, trusted={**SNAPSHOT.trusted, "FunctionNode": SNAPSHOT.trusted["FunctionNode"] | {"numpy.mean"}})
    assert "numpy.mean" not in untrusted_types(model_file, lenient)  # the control: this snapshot would hide it
    stale = dataclasses.replace(lenient, versions={**SNAPSHOT.versions, "skops": "0.0.1"})
    assert "numpy.mean" in untrusted_types(model_file, stale)


def test_the_snapshot_parses_into_frozen_name_sets() -> None:
    assert SkopsDefaults.snapshot() == SNAPSHOT
    assert "sklearn.linear_model._logistic.LogisticRegression" in SNAPSHOT.trusted["ObjectNode"]
    assert SNAPSHOT.trusted["DefaultDictNode"] == {"collections.defaultdict"}
    assert SNAPSHOT.replaces == {"DefaultDictNode"}
    assert set(SNAPSHOT.passes_down) == {"LossNode"}


LISTED = """
import json, sys
{imports}
from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES
print(json.dumps([SKLEARN_ESTIMATOR_TYPE_NAMES, sorted(name for name in sys.modules if name.startswith("sklearn."))]))
"""


def test_skops_imported_with_the_snapshots_listing_trusts_the_same_estimators_and_imports_less() -> None:
    """Through skops_schema.skops_io, skops lists the estimators from the snapshot: the same names, in the same order, as
    skops' own import lists in a fresh interpreter, with fewer scikit-learn modules imported (the listing was used)."""
    own, own_modules = json.loads(python(LISTED.format(imports="import skops.io")))
    through = "from sealserve.trust.policy.skops_schema import skops_io; skops_io()"
    listed, listed_modules = json.loads(python(LISTED.format(imports=through)))
    assert listed == own
    assert len(own) > 150
    assert set(listed_modules) < set(own_modules)


def test_the_snapshots_listing_is_used_only_for_its_versions_and_without_experimental_estimators(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.startswith("sklearn.experimental.enable_")]:  # other tests' imports
        monkeypatch.delitem(sys.modules, name)
    assert snapshot_estimators() == SNAPSHOT.estimators
    other = dataclasses.replace(SNAPSHOT, versions={**SNAPSHOT.versions, "scikit-learn": "0.0.1"})
    assert snapshot_estimators(other) is None
    monkeypatch.setitem(sys.modules, "sklearn.experimental.enable_iterative_imputer", sys.modules[__name__])
    assert snapshot_estimators() is None
