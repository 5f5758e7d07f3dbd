"""What an ONNX model may contain, checked on its parsed protobuf before onnxruntime opens it.

An ONNX graph carries no code, but two of its features reach beyond the signed model file:

- **external data**: a tensor whose bytes live in another file, named by its `location` (relative to the model, or a
  path anywhere). onnxruntime reads that file when the session starts: another file of the bundle, or, with a runtime
  that does not confine the path, any file the server can read. A bundle's model must hold all its data.
- **custom operator domains**: operators that no built-in kernel implements, run by a library registered with the
  session. sealserve registers none; refusing them by name gives a clear error before onnxruntime parses the graph.
  Allowed: ONNX (`""`, `ai.onnx`), ONNX-ML (`ai.onnx.ml`) and onnxruntime's own `com.microsoft` operators, which
  skl2onnx uses for some estimators; and model-local functions, whose bodies are checked the same way. The
  `com.microsoft.EPContext` operator is refused: it names a compiled-context file to load.

Every graph is walked: the main graph, subgraphs in node attributes (If, Loop, Scan), function bodies and training
graphs; every tensor: initializers, sparse initializers and tensor attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sealserve.errors import BundleFormatError, UnsafeModelError

BUILT_IN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
FILE_OPERATORS = frozenset({("com.microsoft", "EPContext")})
MAX_QUOTED = 100
ALLOWED = "only ONNX, ONNX-ML and onnxruntime's com.microsoft operators (and model-local functions of them) are served"


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= MAX_QUOTED else f"{text[:MAX_QUOTED]!r}… ({len(text)} characters)"


def check_onnx_model(model: Any, name: str) -> None:
    """Refuse `model` (an onnx.ModelProto) if it refers to external data or needs operators no built-in kernel has."""
    from onnx import AttributeProto, TensorProto

    functions = {(function.domain, function.name) for function in model.functions}
    local_domains = {function.domain for function in model.functions}
    for opset in model.opset_import:
        if opset.domain not in BUILT_IN_DOMAINS and opset.domain not in local_domains:
            raise UnsafeModelError(f"{name} imports the custom operator domain {_quoted(opset.domain)}; {ALLOWED}")
    for tensor in _tensors(model, AttributeProto):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
            raise UnsafeModelError(
                f"{name}: tensor {_quoted(tensor.name)} keeps its data in another file ({_quoted(location)}); "
                "a bundle's ONNX model must hold all its data"
            )
    for node in _nodes(model, AttributeProto):
        operator = (node.domain, node.op_type)
        if operator in FILE_OPERATORS:
            raise UnsafeModelError(f"{name}: node {_quoted(node.name)} is {node.domain}.{node.op_type}, which loads a file")
        if node.domain not in BUILT_IN_DOMAINS and operator not in functions:
            raise UnsafeModelError(
                f"{name}: node {_quoted(node.name)} uses {_quoted(node.domain + '.' + node.op_type)}, an operator of a custom "
                f"domain; {ALLOWED}"
            )


def _graphs(model: Any, attribute_proto: Any) -> Iterator[Any]:
    """Every graph of the model, subgraphs included (iteratively: nesting depth is the file's choice)."""
    pending = [model.graph, *(graph for info in model.training_info for graph in (info.initialization, info.algorithm))]
    pending += [_FunctionBody(function) for function in model.functions]
    while pending:
        graph = pending.pop()
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == attribute_proto.GRAPH:
                    pending.append(attribute.g)
                elif attribute.type == attribute_proto.GRAPHS:
                    pending.extend(attribute.graphs)


class _FunctionBody:
    """A model-local function seen as a graph: nodes only (functions have no initializers)."""

    def __init__(self, function: Any) -> None:
        self.node = function.node
        self.initializer: tuple[Any, ...] = ()
        self.sparse_initializer: tuple[Any, ...] = ()


def _nodes(model: Any, attribute_proto: Any) -> Iterator[Any]:
    for graph in _graphs(model, attribute_proto):
        yield from graph.node


def _tensors(model: Any, attribute_proto: Any) -> Iterator[Any]:
    for graph in _graphs(model, attribute_proto):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == attribute_proto.TENSOR:
                    yield attribute.t
                elif attribute.type == attribute_proto.TENSORS:
                    yield from attribute.tensors
                elif attribute.type == attribute_proto.SPARSE_TENSOR:
                    yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
                elif attribute.type == attribute_proto.SPARSE_TENSORS:
                    for sparse in attribute.sparse_tensors:
                        yield from (sparse.values, sparse.indices)


def parse_onnx(data: bytes, name: str) -> Any:
    """The model's protobuf (nothing else is opened), checked."""
    import onnx

    try:
        model = onnx.ModelProto.FromString(data)
    except Exception:  # protobuf's DecodeError
        raise BundleFormatError(f"{name} is not a loadable ONNX model: not an ONNX protobuf") from None
    check_onnx_model(model, name)
    return model
