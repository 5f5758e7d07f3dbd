"""The skops type policy end to end: pack, the CLI, verification and a real server agree on which types a model may need.

The model that needs a type outside the default policy is a pipeline whose FunctionTransformer calls `numpy.nan_to_num`
(a plain numpy function: skops trusts numpy ufuncs such as `log1p` by default, but not this one). On finite data it is
the identity, so the model predicts exactly like a plain logistic regression.

One real server serves every server-side case: the same packed model with and without `trusted_types`, and a correctly
signed decision tree whose node array points outside itself, next to its untampered control.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

import sealserve
import sealserve.packing.build as pack_module
from sealserve.bundle import keyring, keys
from sealserve.bundle.metadata import METADATA_FILE
from sealserve.errors import BundleFormatError, UnsafeModelError
from sealserve.packing.build import sign_folder
from sealserve.trust.policy.trusted_types import DEFAULT_TRUSTED_TYPES
from sealserve.trust.verify import VerifiedBundle, verify_bundle
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve, wait_until

SEALSERVE = str(Path(sys.executable).with_name("sealserve"))
UNTRUSTED = "numpy.nan_to_num"
TREE_TYPE = "sklearn.tree._tree.Tree"
VERSION = "1.0.0"
COLUMNS = ["a", "b", "c"]
RECORD = {"a": 4.5, "b": 3.0, "c": 2.5}


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 5.0, (80, len(COLUMNS)))
    return X, (X.sum(axis=1) > 7.5).astype(int)


def sample() -> pd.DataFrame:
    return pd.DataFrame(training_data()[0], columns=COLUMNS)


def guarded_model() -> Pipeline:
    """Needs `numpy.nan_to_num`, which the default policy does not trust."""
    return make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression()).fit(*training_data())


def tree_model() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(*training_data())


def expected_label(model: Any, record: dict[str, float] = RECORD) -> Any:
    """The class the fitted model predicts, with its JSON type (the bundles declare no readable labels)."""
    return model.predict(np.array([[record[column] for column in COLUMNS]]))[0].item()


def load(bundle: Path, ring: keyring.Keyring, trusted_types: tuple[str, ...] = ()) -> Any:
    verified = verify_bundle(bundle, ring)
    try:
        return verified.load(trusted_types=trusted_types)
    finally:
        verified.discard()


def rewrite_metadata(folder: Path, key: keys.SigningKey, **changes: Any) -> None:
    """Change signed metadata fields and re-sign the folder correctly (what an insider with the key could do)."""
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata.update(changes)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    sign_folder(folder, key, subject=metadata["name"])


def corrupt_tree_nodes(folder: Path, key: keys.SigningKey) -> int:
    """Point the root's left child past the node array inside model.skops, re-sign; return the bad index."""
    model = folder / "model.skops"
    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    bad: int | None = None
    with zipfile.ZipFile(model) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith(".npy"):
                array = np.load(io.BytesIO(data), allow_pickle=False)
                if array.dtype.names is not None and "left_child" in array.dtype.names:
                    array = array.copy()
                    bad = len(array) + 5  # node_count + 5
                    assert array["left_child"][0] != -1, "the root should be a split node"
                    array["left_child"][0] = bad
                    buffer = io.BytesIO()
                    np.save(buffer, array, allow_pickle=False)
                    data = buffer.getvalue()
            entries.append((info, data))
    assert bad is not None, "no .npy with the tree node dtype in model.skops"
    with zipfile.ZipFile(model, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    subject = json.loads((folder / METADATA_FILE).read_text())["name"]
    sign_folder(folder, key, subject=subject)
    return bad


def test_the_example_type_is_outside_the_default_policy() -> None:
    """Guards the premise of this module: skops reports the function and the built-in policy does not list it."""
    assert UNTRUSTED not in DEFAULT_TRUSTED_TYPES
    assert UNTRUSTED in skops.io.get_untrusted_types(data=skops.io.dumps(guarded_model()))


# --- pack (Python API) ---------------------------------------------------------------------------------------------


def test_pack_refuses_an_untrusted_type_by_name_and_packs_with_trust(
    signing_key: keys.SigningKey, trusted_keyring: keyring.Keyring, tmp_path: Path
) -> None:
    model = guarded_model()
    with pytest.raises(UnsafeModelError) as refused:
        sealserve.pack(model, name="guarded", version=VERSION, private_key=signing_key, out=tmp_path / "refused", sample=sample())
    assert UNTRUSTED in str(refused.value)
    assert "--trust" in str(refused.value)
    assert not (tmp_path / "refused").exists()

    bundle = sealserve.pack(
        model, name="guarded", version=VERSION, private_key=signing_key, out=tmp_path / "bundle", sample=sample(), trust=[UNTRUSTED]
    )
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        assert UNTRUSTED in verified.metadata.required_types
        with pytest.raises(UnsafeModelError, match=UNTRUSTED):  # the server's default policy refuses it too
            verified.load()
        loaded = verified.load(trusted_types=(UNTRUSTED,))
    finally:
        verified.discard()
    X, _ = training_data()
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_pack_needs_no_trust_for_a_model_within_the_default_policy(signing_key: keys.SigningKey, tmp_path: Path) -> None:
    """Control: the same pipeline without the function packs with defaults."""
    plain = make_pipeline(LogisticRegression()).fit(*training_data())
    assert sealserve.pack(plain, name="plain", version=VERSION, private_key=signing_key, out=tmp_path / "bundle", sample=sample()).is_dir()


# --- pack (CLI) ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliRuns:
    root: Path
    keyring: Path
    refused: subprocess.CompletedProcess[str]
    trusted: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> CliRuns:
    """`sealserve pack model.skops` without and with `--trust`, run concurrently (each process imports scikit-learn)."""
    root = tmp_path_factory.mktemp("cli")
    space = Workspace.create(root)
    skops.io.dump(guarded_model(), root / "model.skops")
    sample().to_csv(root / "sample.csv", index=False)
    command = [SEALSERVE, "pack", str(root / "model.skops"), "--name", "guarded", "--version", VERSION]
    command += ["--private-key", str(space.private_key), "--sample", str(root / "sample.csv")]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=120, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        refused = pool.submit(run, "--out", str(root / "refused"))
        trusted = pool.submit(run, "--out", str(root / "trusted"), "--trust", UNTRUSTED)
        return CliRuns(root, space.keyring, refused.result(), trusted.result())


def test_cli_pack_refuses_an_untrusted_type_with_one_error_line(cli_runs: CliRuns) -> None:
    result = cli_runs.refused
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error (UnsafeModelError): "), lines[0]
    assert UNTRUSTED in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (cli_runs.root / "refused").exists()


def test_cli_pack_refusal_suggests_the_trust_flag(cli_runs: CliRuns) -> None:
    """The person running `sealserve pack` must learn how to accept the type after review: --trust."""
    assert "--trust" in cli_runs.refused.stderr, cli_runs.refused.stderr


def test_cli_pack_with_trust_writes_a_bundle_that_loads_with_that_trust(cli_runs: CliRuns) -> None:
    result = cli_runs.trusted
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bundle guarded 1.0.0 written to" in result.stdout
    ring = keyring.Keyring.load(cli_runs.keyring)
    with pytest.raises(UnsafeModelError, match=UNTRUSTED):
        load(cli_runs.root / "trusted", ring)
    loaded = load(cli_runs.root / "trusted", ring, trusted_types=(UNTRUSTED,))
    X, _ = training_data()
    assert np.array_equal(loaded.predict(X), guarded_model().predict(X))


# --- signed metadata must declare every type the file needs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "dropped", "trust"),
    [
        pytest.param(guarded_model, UNTRUSTED, (UNTRUSTED,), id="operator-trusted function"),
        pytest.param(tree_model, TREE_TYPE, (), id="default-trusted tree"),
    ],
)
def test_a_file_needing_types_its_metadata_does_not_declare_is_refused(
    model: Any,
    dropped: str,
    trust: tuple[str, ...],
    signing_key: keys.SigningKey,
    trusted_keyring: keyring.Keyring,
    tmp_path: Path,
) -> None:
    """Even when the server's policy would accept the type, a file needing more than its signed metadata says is refused."""
    fitted = model()
    bundle = sealserve.pack(
        fitted, name="declared", version=VERSION, private_key=signing_key, out=tmp_path / "bundle", sample=sample(), trust=trust
    )
    required = json.loads((bundle / METADATA_FILE).read_text())["required_types"]
    assert dropped in required

    control = Path(shutil.copytree(bundle, tmp_path / "control"))
    rewrite_metadata(control, signing_key, required_types=required)  # re-signed, nothing dropped
    assert expected_label(load(control, trusted_keyring, trust)) == expected_label(fitted)

    rewrite_metadata(bundle, signing_key, required_types=[name for name in required if name != dropped])
    verified: VerifiedBundle = verify_bundle(bundle, trusted_keyring)  # correctly signed: verification passes
    try:
        assert dropped not in verified.metadata.required_types
        with pytest.raises(UnsafeModelError) as refused:
            verified.load(trusted_types=trust)
    finally:
        verified.discard()
    assert dropped in str(refused.value)
    assert "declare" in str(refused.value)


# --- a crafted tree index ------------------------------------------------------------------------------------------


def test_a_signed_tree_with_an_out_of_range_child_verifies_but_is_refused_at_load(
    signing_key: keys.SigningKey, trusted_keyring: keyring.Keyring, tmp_path: Path
) -> None:
    fitted = tree_model()
    bundle = sealserve.pack(fitted, name="tree", version=VERSION, private_key=signing_key, out=tmp_path / "bundle", sample=sample())
    control = Path(shutil.copytree(bundle, tmp_path / "control"))
    assert expected_label(load(control, trusted_keyring)) == expected_label(fitted)

    bad = corrupt_tree_nodes(bundle, signing_key)
    verified = verify_bundle(bundle, trusted_keyring)  # the signature is fine
    try:
        with pytest.raises(UnsafeModelError) as refused:
            verified.load()
    finally:
        verified.discard()
    message = str(refused.value)
    for part in ("Tree", str(bad), "crafted"):
        assert part in message, message


# --- pack's reload check -------------------------------------------------------------------------------------------


class ShiftedProbabilities:
    """Predicts like the model it wraps, but its probabilities are off by 1e-6."""

    def __init__(self, model: Any) -> None:
        self.model, self.classes_ = model, model.classes_

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> Any:
        probabilities = np.array(self.model.predict_proba(X))
        probabilities[:, 0] += 1e-6
        probabilities[:, 1] -= 1e-6
        return probabilities


@pytest.mark.parametrize(
    ("reload", "complaint"),
    [
        pytest.param(lambda model, X, y: LogisticRegression().fit(X, 1 - y), "different values", id="labels"),
        pytest.param(lambda model, X, y: ShiftedProbabilities(model), "different probabilities", id="probabilities"),
    ],
)
def test_pack_refuses_a_model_whose_reload_answers_differently(
    reload: Any, complaint: str, signing_key: keys.SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = training_data()
    model = LogisticRegression().fit(X, y)
    real_loader = pack_module.load_model_file
    calls: list[Path] = []

    def honest(path: Path, *args: Any, **kwargs: Any) -> Any:
        calls.append(path)
        return real_loader(path, *args, **kwargs)

    monkeypatch.setattr(pack_module, "load_model_file", honest)  # control: the real reload through the same hook
    sealserve.pack(model, name="roundtrip", version=VERSION, private_key=signing_key, out=tmp_path / "control", sample=sample())
    assert len(calls) == 1

    monkeypatch.setattr(pack_module, "load_model_file", lambda *args, **kwargs: reload(model, X, y))
    with pytest.raises(BundleFormatError, match=complaint):
        sealserve.pack(model, name="roundtrip", version=VERSION, private_key=signing_key, out=tmp_path / "refused", sample=sample())
    assert not (tmp_path / "refused").exists()


# --- a real server ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    server: RunningServer
    client: httpx.Client
    guarded: Pipeline
    tree: DecisionTreeClassifier
    bad_index: int


# These cases are about the skops file, so they serve the reference runtime: with the default (auto) a bundle whose
# model compiles serves its signed model.onnx and never deserializes the skops file at all.
REFERENCE = {"runtime": "reference"}
SERVED = {
    "guarded_untrusted": REFERENCE,  # the config does not trust numpy.nan_to_num
    "guarded": {"trusted_types": [UNTRUSTED], **REFERENCE},
    "tree": REFERENCE,  # control for tree_crafted
    "tree_crafted": REFERENCE,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("server")
    space = Workspace.create(root)
    guarded, tree = guarded_model(), tree_model()
    bad_index = 0
    for name in SERVED:
        model, trust = (guarded, [UNTRUSTED]) if name.startswith("guarded") else (tree, [])
        out = root / "bundles" / name
        bundle = sealserve.pack(model, name=name, version=VERSION, private_key=space.key, out=out, sample=sample(), trust=trust)
        if name == "tree_crafted":
            bad_index = corrupt_tree_nodes(bundle, space.key)
        space.store.push(bundle)
        space.store.promote(name, VERSION, "production")
    config = space.config(root / "service.yaml", *({"name": name, **options} for name, options in SERVED.items()))
    with serve(config, root, ready=False) as server, server.client() as client:

        def every_model_attempted() -> bool:
            states = [client.get(f"/api/models/{name}").json() for name in SERVED]
            return all(state["ready"] or state["error"] for state in states)

        wait_until(every_model_attempted, timeout=60)
        yield World(server, client, guarded, tree, bad_index)
        assert "Traceback" not in server.log(), server.log()


def test_server_without_the_trust_keeps_the_model_unready_and_names_the_type(world: World) -> None:
    state = world.client.get("/api/models/guarded_untrusted").json()
    assert state["ready"] is False
    assert UNTRUSTED in state["error"], state
    response = world.client.post("/api/models/guarded_untrusted/prediction", json=RECORD)
    assert response.status_code == 503, response.text
    assert UNTRUSTED in response.text


def test_server_with_trusted_types_serves_the_model(world: World) -> None:
    state = world.client.get("/api/models/guarded").json()
    assert state["ready"] is True, state
    assert UNTRUSTED in state["metadata"]["required_types"]
    response = world.client.post("/api/models/guarded/prediction", json=RECORD)
    assert response.status_code == 200, response.text
    assert response.json()["output"]["prediction"] == expected_label(world.guarded)


def test_server_refuses_a_crafted_tree_and_stays_up(world: World) -> None:
    state = world.client.get("/api/models/tree_crafted").json()
    assert state["ready"] is False
    for part in ("Tree", str(world.bad_index), "crafted"):
        assert part in state["error"], state
    assert world.client.post("/api/models/tree_crafted/prediction", json=RECORD).status_code == 503
    assert world.server.process.poll() is None, world.server.log()
    assert world.client.get("/api/health").status_code == 200
    assert world.client.get("/api/health/ready").status_code == 503  # not every configured model is loaded


def test_server_serves_the_untampered_tree(world: World) -> None:
    assert world.client.get("/api/models/tree").json()["ready"] is True
    response = world.client.post("/api/models/tree/prediction", json=RECORD)
    assert response.status_code == 200, response.text
    assert response.json()["output"]["prediction"] == expected_label(world.tree)
