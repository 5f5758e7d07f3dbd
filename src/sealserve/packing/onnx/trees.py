"""Tree ensembles in ONNX with double thresholds, so a compiled tree splits exactly where the original does.

skl2onnx and onnxmltools write `TreeEnsembleClassifier`/`TreeEnsembleRegressor` thresholds as float attributes:
a float64 input is compared with float32-rounded thresholds, and HistGradientBoosting or LightGBM (which compare
float64 inputs with float64 thresholds) answer differently near a split. Both converters compute the thresholds
in double precision and lose them only when the node is written, so `double_trees()` intercepts that one call and
writes them as ai.onnx.ml opset-3 `*_as_tensor` double attributes instead. skl2onnx's double thresholds for
scikit-learn's own trees already fold in scikit-learn's float32 cast of X (`x <= w` ⇔ `float32(x) <= t`).

`finish()` then checks the result: every tree node must read a double tensor, or the conversion is refused
(`InexactTreesError`); a tree that would compare in float32 is never returned.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
ML_DOMAIN = "ai.onnx.ml"
DOUBLE_ATTRIBUTES = ("nodes_values", "class_weights", "target_weights", "base_values")
FLOAT_SCORES = "_sealserve_float_scores"

# The converters' registries and containers are process-wide: one conversion at a time patches them.
CONVERSION_LOCK = threading.RLock()
_suffixes = itertools.count()


class InexactTreesError(Exception):
    """A tree node would compare in float32, or its thresholds were rounded before they could be kept."""


def has_trees(model: Any) -> bool:
    return any(node.domain == ML_DOMAIN and node.op_type in TREE_OPS for node in model.graph.node)


@contextlib.contextmanager
def double_trees(*, double_scores: bool) -> Iterator[None]:
    """Converters called inside write tree nodes with double thresholds and weights.

    `double_scores`: the graph computes in double (skl2onnx with a float64 input), so a tree's scores, which ONNX
    defines as float, are cast back to double for the nodes after it (`finish` drops casts a float output needs not).
    """
    from skl2onnx.common import _container, _registration
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier as forest

    containers: list[Any] = [_container.ModelComponentContainer]
    with contextlib.suppress(ImportError):
        from onnxmltools.convert.common import _container as onnxmltools_container

        containers.append(onnxmltools_container.ModelComponentContainer)
    with CONVERSION_LOCK:
        originals = [(container, container.add_node) for container in containers]
        # The forest classifier converter (random forests, extra trees, histogram gradient boosting) keeps double
        # attributes only from op_version 3 on, but is registered to be called with its default of 1.
        forests = [entry for entry in _registration._converter_pool.values() if getattr(entry, "_fct", None) is forest]
        try:
            for container, add_node in originals:
                container.add_node = _exact_add_node(add_node, double_scores)
            for entry in forests:
                entry._fct = functools.partial(forest, op_version=3)
            yield
        finally:
            for container, add_node in originals:
                container.add_node = add_node
            for entry in forests:
                entry._fct = forest


def _exact_add_node(add_node: Callable[..., Any], double_scores: bool) -> Callable[..., Any]:
    def exact(self: Any, op_type: str, inputs: Any, outputs: Any, op_domain: str = "", **attrs: Any) -> Any:
        if op_domain != ML_DOMAIN or op_type not in TREE_OPS:
            return add_node(self, op_type, inputs, outputs, op_domain=op_domain, **attrs)
        from onnx import TensorProto, numpy_helper

        for name in DOUBLE_ATTRIBUTES:
            if name in attrs:
                values = np.asarray(attrs.pop(name))
                if values.dtype != np.float64:
                    raise InexactTreesError(f"{op_type} {name} reached the ONNX writer as {values.dtype}, not float64")
                attrs[f"{name}_as_tensor"] = numpy_helper.from_array(values.ravel(), name=name)
        attrs["op_version"] = max(attrs.get("op_version") or 1, 3)
        if not double_scores:
            return add_node(self, op_type, inputs, outputs, op_domain=op_domain, **attrs)
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        position = 1 if op_type == "TreeEnsembleClassifier" else 0
        scores = outputs[position]
        outputs[position] = f"{scores}{FLOAT_SCORES}{next(_suffixes)}"
        add_node(self, op_type, inputs, outputs, op_domain=op_domain, **attrs)
        return add_node(self, "Cast", [outputs[position]], [scores], to=TensorProto.DOUBLE, op_version=13)

    return exact


def finish(model: Any) -> Any:
    """Drop the score casts whose output the graph declares float, then prove every tree node reads doubles."""
    import onnx

    graph = model.graph
    declared = {output.name: output.type.tensor_type.elem_type for output in graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Cast" and FLOAT_SCORES in node.input[0] and declared.get(node.output[0]) == onnx.TensorProto.FLOAT:
            renamed[node.input[0]] = node.output[0]
            continue
        kept.append(node)
    for node in kept:
        for index, name in enumerate(node.output):
            if name in renamed:
                node.output[index] = renamed[name]
    del graph.node[:]
    graph.node.extend(kept)
    check_double_trees(model)
    return model


def double_input(model: Any) -> Any:
    """A float-input graph (onnxmltools' LightGBM) whose input feeds tree nodes only, retyped to take doubles."""
    import onnx

    graph = model.graph
    (source,) = graph.input
    readers = [node for node in graph.node if source.name in node.input]
    if not readers or any(node.domain != ML_DOMAIN or node.op_type not in TREE_OPS for node in readers):
        raise InexactTreesError("the model input feeds more than tree nodes; it cannot be retyped to double")
    source.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    check_double_trees(model)
    return model


def check_double_trees(model: Any) -> None:
    """Every tree node reads a double tensor and holds double thresholds, or InexactTreesError.

    Types come from ONNX shape inference, or from onnxruntime itself for inputs inference leaves untyped (ML-domain
    ops such as Imputer); a graph onnxruntime cannot load fails here with its message.
    """
    import onnx

    trees = [node for node in model.graph.node if node.domain == ML_DOMAIN and node.op_type in TREE_OPS]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {value.name: value.type.tensor_type.elem_type for value in (*inferred.graph.value_info, *inferred.graph.input)}
    untyped = [node.input[0] for node in trees if not types.get(node.input[0])]
    if untyped:
        types |= _runtime_types(model, untyped)
    for node in trees:
        if types.get(node.input[0]) != onnx.TensorProto.DOUBLE:
            raise InexactTreesError(f"{node.op_type} {node.name} would compare a {_type_name(types.get(node.input[0]))} input")
        names = {attribute.name for attribute in node.attribute}
        if "nodes_values" in names or "nodes_values_as_tensor" not in names:
            raise InexactTreesError(f"{node.op_type} {node.name} has float thresholds")


def _runtime_types(model: Any, names: list[str]) -> dict[str, int]:
    """The element types onnxruntime gives `names`, exposed as extra graph outputs of a copy of the model."""
    import onnx
    import onnxruntime

    from sealserve.errors import BundleFormatError

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {output.name for output in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in dict.fromkeys(names) if name not in outputs)
    try:
        session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BundleFormatError(f"onnxruntime cannot load the converted model: {str(exc).split(' : ')[-1]}") from None
    codes = {"tensor(double)": onnx.TensorProto.DOUBLE, "tensor(float)": onnx.TensorProto.FLOAT}
    return {output.name: codes.get(output.type, onnx.TensorProto.UNDEFINED) for output in session.get_outputs()}


def _type_name(elem_type: int | None) -> str:
    import onnx

    return "untyped" if elem_type is None else onnx.TensorProto.DataType.Name(elem_type).lower()
