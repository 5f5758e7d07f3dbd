"""Signed model files that reach past themselves or ask for more memory than they hold, refused by the loaders before
the runtime opens them or anything is allocated:

- ONNX tensors whose data lives in another file (beside the model, outside the bundle, in a subgraph or an attribute),
  operators of custom domains (in the graph, in a subgraph, only imported), and onnxruntime's EPContext file loader;
- joblib arrays declaring a shape their file cannot hold, a second pickle after the first, and skops files declaring
  huge arrays, hiding a compression bomb, or naming one array file from many nodes.

Every bundle is correctly signed by the trusted key: the signature is not the wall here, the loader is. The controls
show each vector is live (onnxruntime reads a file beside the model into the weights) and that a legitimate model of
the same shape loads through the same path.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import skops.io
from joblib import numpy_pickle
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.errors import BundleFormatError, BundleTooLargeError, UnsafeModelError
from sealserve.packing.build import pack, sign_folder
from sealserve.runtime.predict import runtime_for
from sealserve.trust.verify import verify_bundle
from tests.conftest import BUNDLE_NAME, BUNDLE_VERSION
from tests.security.conftest import Attempt, Pickled
from tests.support.tamper import marker_pickle, replace_model_and_sign

WEIGHTS = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
ROWS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
EXPECTED = ROWS @ WEIGHTS + 1.0
HUGE = (10**12,)


# ---------------------------------------------------------------- ONNX


def linear_model() -> onnx.ModelProto:
    """variable = X @ W + B: the legitimate model every ONNX variant below is built from."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"], name="matmul"), helper.make_node("Add", ["XW", "B"], ["variable"], name="bias")],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(np.array([1.0], np.float32), "B")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def external(tensor: TensorProto, location: str) -> TensorProto:
    """The tensor with its bytes moved to `location` (what onnx.save(..., save_as_external_data=True) writes)."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(WEIGHTS.nbytes)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def weights_beside(location: str) -> onnx.ModelProto:
    model = linear_model()
    external(model.graph.initializer[0], location)
    return model


def constant_in_a_branch(location: str | None = None, domain: str = "") -> onnx.ModelProto:
    """W produced by a Constant inside both branches of an If (a subgraph): external data in a tensor attribute, or a
    node of `domain`."""
    model = linear_model()
    weights = numpy_helper.from_array(WEIGHTS, "W_value")
    if location is not None:
        external(weights, location)

    def branch(name: str) -> onnx.GraphProto:
        nodes = [helper.make_node("Constant", [], ["W_" + name], value=weights, name=f"weights_{name}")]
        if domain:
            nodes.append(helper.make_node("Relu", ["W_" + name], ["R_" + name], domain=domain, name=f"custom_{name}"))
        output = "R_" + name if domain else "W_" + name
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(output, TensorProto.FLOAT, [3, 1])])

    model.graph.initializer.pop(0)
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "always"))
    model.graph.node.insert(
        0, helper.make_node("If", ["always"], ["W"], then_branch=branch("then"), else_branch=branch("else"), name="choose")
    )
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


def custom_operator(domain: str = "evil.ops", op_type: str = "Add") -> onnx.ModelProto:
    model = linear_model()
    model.graph.node[1].domain, model.graph.node[1].op_type = domain, op_type
    model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


def custom_import_only() -> onnx.ModelProto:
    model = linear_model()
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    return model


def ep_context() -> onnx.ModelProto:
    model = linear_model()
    node = helper.make_node("EPContext", ["X"], ["context"], domain="com.microsoft", embed_mode=0, ep_cache_context="ctx.bin", name="ctx")
    model.graph.node.append(node)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def local_function() -> onnx.ModelProto:
    """The bias added by a model-local function of its own domain, whose body is a plain Add: allowed."""
    model = linear_model()
    body = [helper.make_node("Add", ["a", "b"], ["c"])]
    model.functions.append(helper.make_function("local.fn", "AddBias", ["a", "b"], ["c"], body, [helper.make_opsetid("", 17)]))
    model.graph.node[1].domain, model.graph.node[1].op_type = "local.fn", "AddBias"
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    return model


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory: pytest.TempPathFactory, training_frame: pd.DataFrame, signing_key: keys.SigningKey) -> Path:
    """The legitimate linear model, packed as a ready-made ONNX regressor and signed; read-only."""
    root = tmp_path_factory.mktemp("onnx")
    (root / "linear.onnx").write_bytes(linear_model().SerializeToString())
    sample = training_frame.astype("float64")
    return pack(root / "linear.onnx", name=BUNDLE_NAME, version=BUNDLE_VERSION, private_key=signing_key, out=root / "bundle", sample=sample)


Signed = Callable[..., Path]


@pytest.fixture
def signed_onnx(onnx_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path) -> Signed:
    """A copy of the ONNX bundle whose model.onnx is `model` (with `extra` files beside it), signed by the trusted key."""

    def make(model: onnx.ModelProto, extra: dict[str, bytes] | None = None) -> Path:
        folder = Path(shutil.copytree(onnx_bundle, tmp_path / "bundle"))
        for name, data in (extra or {}).items():
            (folder / name).write_bytes(data)
        replace_model_and_sign(folder, model.SerializeToString(), signing_key, model_file="model.onnx")
        return folder

    return make


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every onnxruntime session started, and what it was given: a refusal must come before the first."""
    started: list[Any] = []
    real = onnxruntime.InferenceSession

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    return started


def served(bundle: Path, keyring: Keyring) -> np.ndarray[Any, Any]:
    """Load the bundle as the server does and predict ROWS."""
    verified = verify_bundle(bundle, keyring, name=BUNDLE_NAME, version=BUNDLE_VERSION)
    try:
        return np.asarray(runtime_for(verified.load(), verified.metadata)(ROWS.astype("float64")).values)
    finally:
        verified.discard()


def test_control_onnxruntime_reads_weights_from_a_file_beside_the_model(tmp_path: Path) -> None:
    """What the check stops: given the model's path, onnxruntime loads another file of the folder as the weights."""
    (tmp_path / "other-file").write_bytes(np.array([[9.0], [9.0], [9.0]], np.float32).tobytes())
    (tmp_path / "model.onnx").write_bytes(weights_beside("other-file").SerializeToString())
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {"X": ROWS})[0], ROWS.sum(axis=1, keepdims=True) * 9 + 1)


@pytest.mark.parametrize(
    ("variant", "extra", "message"),
    [
        (
            lambda: weights_beside("weights.bin"),
            {"weights.bin": WEIGHTS.tobytes()},
            r"tensor 'W' keeps its data in another file \('weights\.bin'\)",
        ),
        (lambda: weights_beside("../../outside.bin"), {}, r"another file \('\.\./\.\./outside\.bin'\)"),
        (lambda: weights_beside("/etc/passwd"), {}, r"another file \('/etc/passwd'\)"),
        (lambda: weights_beside("x" * 5000), {}, r"another file \('x{100}'… \(5000 characters\)\)"),
        (lambda: constant_in_a_branch(location="weights.bin"), {"weights.bin": WEIGHTS.tobytes()}, r"tensor 'W_value' keeps its data"),
        (lambda: custom_operator(), {}, r"imports the custom operator domain 'evil\.ops'"),
        (lambda: custom_import_only(), {}, r"imports the custom operator domain 'evil\.ops'"),
        (lambda: constant_in_a_branch(domain="evil.ops"), {}, r"imports the custom operator domain 'evil\.ops'"),
        (lambda: ep_context(), {}, r"node 'ctx' is com\.microsoft\.EPContext, which loads a file"),
    ],
    ids=[
        "external-data-inside-the-bundle",
        "external-data-outside",
        "external-data-absolute",
        "external-data-long-location",
        "external-data-in-a-subgraph-attribute",
        "custom-domain",
        "custom-domain-imported-only",
        "custom-domain-in-a-subgraph",
        "ep-context-file",
    ],
)
def test_a_signed_onnx_model_reaching_past_its_file_is_refused_before_onnxruntime_opens_it(
    signed_onnx: Signed,
    trusted_keyring: Keyring,
    attempt: Attempt,
    sessions: list[Any],
    variant: Callable[[], onnx.ModelProto],
    extra: dict[str, bytes],
    message: str,
) -> None:
    bundle = signed_onnx(variant(), extra)
    with pytest.raises(UnsafeModelError, match=message):
        attempt(bundle, trusted_keyring)
    assert sessions == []


def test_a_node_of_a_custom_domain_not_imported_is_refused_by_name(
    signed_onnx: Signed, trusted_keyring: Keyring, attempt: Attempt, sessions: list[Any]
) -> None:
    model = custom_operator()
    model.opset_import.pop()  # the node alone names the domain
    with pytest.raises(UnsafeModelError, match=r"node 'bias' uses 'evil\.ops\.Add', an operator of a custom domain"):
        attempt(signed_onnx(model), trusted_keyring)
    assert sessions == []


@pytest.mark.parametrize("variant", [linear_model, local_function, constant_in_a_branch], ids=["plain", "local-function", "subgraph"])
def test_control_legitimate_onnx_models_of_the_same_shape_load_and_predict(
    signed_onnx: Signed, trusted_keyring: Keyring, sessions: list[Any], variant: Callable[[], onnx.ModelProto]
) -> None:
    assert np.allclose(served(signed_onnx(variant()), trusted_keyring).ravel(), EXPECTED.ravel())
    assert len(sessions) == 1
    assert isinstance(sessions[0], bytes)  # the checked bytes, never a path to resolve files against


def test_packing_a_ready_made_onnx_file_with_external_data_is_refused(
    training_frame: pd.DataFrame, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    (tmp_path / "weights.bin").write_bytes(WEIGHTS.tobytes())
    (tmp_path / "linear.onnx").write_bytes(weights_beside("weights.bin").SerializeToString())
    with pytest.raises(UnsafeModelError, match="keeps its data in another file"):
        pack(tmp_path / "linear.onnx", name="x", version="1.0.0", private_key=signing_key, out=tmp_path / "b", sample=training_frame)


# ---------------------------------------------------------------- joblib


def fitted(frame: pd.DataFrame) -> LogisticRegression:
    target = (frame["bmi"] > frame["bmi"].median()).astype(int)
    return LogisticRegression(max_iter=500).fit(frame.to_numpy(dtype="float64"), target)


def joblib_bytes(model: Any, *, compress: int = 0, declared: tuple[int, ...] | None = None) -> bytes:
    """joblib's file for `model`; with `declared`, the header of its coef_ array claims that shape (the data stays)."""
    real = numpy_pickle.NumpyPickler._create_array_wrapper

    def lying(pickler: Any, array: np.ndarray[Any, Any]) -> Any:
        wrapper = real(pickler, array)
        if array is getattr(model, "coef_", None):
            wrapper.shape = declared
        return wrapper

    buffer = io.BytesIO()
    with pytest.MonkeyPatch.context() as patch:
        if declared is not None:
            patch.setattr(numpy_pickle.NumpyPickler, "_create_array_wrapper", lying)
        joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


@pytest.fixture
def allocations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every array numpy.empty is asked for while loading (joblib allocates what a header declares)."""
    asked: list[int] = []
    real = np.empty

    def spy(shape: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(int(np.prod(shape, dtype=object)))
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", spy)
    return asked


@pytest.mark.parametrize(
    ("compress", "message"),
    [
        (0, r"an array of shape \(1000000000000,\) needs 8000000000000 bytes, but the rest of the file holds \d+"),
        (3, r"an array of shape \(1000000000000,\) needs 8000000000000 bytes, but the file may expand to 16777216 bytes in all"),
    ],
    ids=["uncompressed", "compressed"],
)
def test_a_signed_joblib_model_declaring_a_huge_array_is_refused_before_allocation(
    pickled_bundle: Pickled,
    trusted_keyring: Keyring,
    attempt: Attempt,
    training_frame: pd.DataFrame,
    allocations: list[int],
    compress: int,
    message: str,
) -> None:
    bundle = pickled_bundle(joblib_bytes(fitted(training_frame), compress=compress, declared=HUGE))
    with pytest.raises(BundleTooLargeError, match=message):
        attempt(bundle, trusted_keyring)
    assert max(allocations, default=0) < 10**6


@pytest.mark.parametrize("compress", [0, 3], ids=["uncompressed", "compressed"])
def test_control_the_same_joblib_model_loads_with_its_true_shapes(
    pickled_bundle: Pickled, trusted_keyring: Keyring, training_frame: pd.DataFrame, compress: int
) -> None:
    model = fitted(training_frame)
    verified = verify_bundle(pickled_bundle(joblib_bytes(model, compress=compress)), trusted_keyring)
    try:
        loaded = verified.load(allow_pickle=True)
        rows = training_frame.to_numpy(dtype="float64")
        assert np.array_equal(loaded.predict(rows), model.predict(rows))
    finally:
        verified.discard()


def test_a_signed_joblib_model_followed_by_a_second_pickle_is_refused(
    pickled_bundle: Pickled, trusted_keyring: Keyring, attempt: Attempt, training_frame: pd.DataFrame, marker: Path
) -> None:
    """picklescan's malicious6: a benign pickle, then a payload a scanner reads and one load never would; no byte of
    a signed model file goes unread."""
    bundle = pickled_bundle(joblib_bytes(fitted(training_frame)) + marker_pickle(marker))
    with pytest.raises(BundleFormatError, match=r"model\.joblib carries data after its pickle"):
        attempt(bundle, trusted_keyring)
    assert not marker.exists()


def test_control_a_lying_joblib_header_is_allocated_by_joblib_itself(training_frame: pd.DataFrame, allocations: list[int]) -> None:
    """What the budget stops: joblib asks numpy for the declared shape before reading a byte of it."""
    declared = (4_000_000,)  # 32 MB: allocated, then the file runs out
    with pytest.raises(ValueError, match="EOF"):
        joblib.load(io.BytesIO(joblib_bytes(fitted(training_frame), declared=declared)))
    assert 4_000_000 in allocations


# ---------------------------------------------------------------- skops

SkopsEdit = Callable[[dict[str, bytes], dict[str, Any]], None]


def skops_with(model: Any, edit: SkopsEdit, compression: int = zipfile.ZIP_STORED) -> bytes:
    """`model`'s skops file, its members and parsed schema changed by `edit`, written back as a zip."""
    with zipfile.ZipFile(io.BytesIO(skops.io.dumps(model))) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members.pop("schema.json"))
    edit(members, schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


def coef_file(schema: dict[str, Any]) -> str:
    return str(schema["content"]["content"]["coef_"]["file"])


def npy(array: np.ndarray[Any, Any], declared: tuple[int, ...] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    data = buffer.getvalue()
    if declared is None:
        return data
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": declared}
    )
    return header.getvalue() + array.tobytes()


def huge_coef(members: dict[str, bytes], schema: dict[str, Any]) -> None:
    name = coef_file(schema)
    members[name] = npy(np.load(io.BytesIO(members[name])), declared=HUGE)


def zeros_bomb(members: dict[str, bytes], schema: dict[str, Any]) -> None:
    """The coefficients replaced by 24 MiB of zeros: a few KiB once deflated, honestly declared."""
    members[coef_file(schema)] = npy(np.zeros((1, 3 << 20)))


def many_references(members: dict[str, bytes], schema: dict[str, Any]) -> None:
    """A 128 KiB array named by 400 nodes of distinct ids: each is read (and its array built) once per node."""
    name = coef_file(schema)
    members[name] = npy(np.zeros((1, 16 << 10)))
    node = schema["content"]["content"]["coef_"]
    copies = [{**node, "__id__": 10**9 + index} for index in range(400)]
    schema["content"]["content"]["copies"] = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": copies}


@pytest.fixture
def skops_bundle(packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path) -> Callable[[bytes], Path]:
    def make(model_file: bytes) -> Path:
        folder = Path(shutil.copytree(packed_bundle, tmp_path / "bundle"))
        (folder / "model.skops").write_bytes(model_file)
        metadata = json.loads((folder / "sealserve.json").read_text())
        metadata.update(compiled=None)
        (folder / "sealserve.json").write_text(json.dumps(metadata))
        (folder / "model.onnx").unlink(missing_ok=True)
        sign_folder(folder, signing_key, subject=metadata["name"])
        return folder

    return make


@pytest.fixture(scope="module")
def skops_model(training_frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(training_frame.to_numpy(dtype="float64"), (training_frame["bmi"] > 30).astype(int))


@pytest.mark.parametrize(
    ("edit", "compression", "message"),
    [
        (huge_coef, zipfile.ZIP_STORED, r"\.npy: an array of shape \(1000000000000,\) needs 8000000000000 bytes; the file holds \d+"),
        (
            zeros_bomb,
            zipfile.ZIP_DEFLATED,
            r"loading it would read and allocate 5033\d+ bytes .*; at most 16777216 for a file of \d+ bytes",
        ),
        (many_references, zipfile.ZIP_STORED, r"would read and allocate 1\d{8} bytes .*; at most 3\d{7} for a file of 1\d{5} bytes"),
    ],
    ids=["declared-huge-array", "compression-bomb", "one-array-named-by-many-nodes"],
)
def test_a_signed_skops_model_that_would_allocate_past_its_size_is_refused_before_skops_reads_it(
    skops_bundle: Callable[[bytes], Path],
    skops_model: LogisticRegression,
    trusted_keyring: Keyring,
    attempt: Attempt,
    monkeypatch: pytest.MonkeyPatch,
    edit: SkopsEdit,
    compression: int,
    message: str,
) -> None:
    bundle = skops_bundle(skops_with(skops_model, edit, compression))
    opened: list[Any] = []
    monkeypatch.setattr(skops.io, "get_untrusted_types", lambda **kwargs: opened.append(kwargs) or [])
    monkeypatch.setattr(skops.io, "load", lambda *args, **kwargs: opened.append(args))
    with pytest.raises(BundleTooLargeError, match=message):
        attempt(bundle, trusted_keyring, allow_pickle=False, trusted_types=())
    assert opened == []


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_control_the_same_skops_model_loads_and_predicts(
    skops_bundle: Callable[[bytes], Path],
    skops_model: LogisticRegression,
    trusted_keyring: Keyring,
    training_frame: pd.DataFrame,
    compression: int,
) -> None:
    bundle = skops_bundle(skops_with(skops_model, lambda members, schema: None, compression))
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        rows = training_frame.to_numpy(dtype="float64")
        assert np.array_equal(verified.load().predict(rows), skops_model.predict(rows))
    finally:
        verified.discard()
