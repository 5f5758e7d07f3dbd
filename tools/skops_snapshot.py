"""Write src/sealserve/trust/policy/skops_defaults.py: what skops trusts by default, per node kind, read from skops' own
node classes for the installed skops, scikit-learn, numpy and scipy.

Run `python -m tools.skops_snapshot` after upgrading any of them, and review the diff. Each node kind is built from a
small valid state (MINIMAL) with nothing trusted and with a probe name trusted: what it trusts, whether the probe adds
to that (or is ignored), and what its children are given beyond their own defaults. A node kind skops has and
MINIMAL lacks stops the run: teach trust/policy/skops_schema.py its children first.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

from sealserve.trust.policy.skops_schema import CHILDREN, NEEDS_SKOPS

PACKAGES = ("numpy", "scikit-learn", "scipy", "skops")
TARGET = Path(__file__).resolve().parents[1] / "src/sealserve/trust/policy/skops_defaults.py"
PROBE = "probe.Trusted"
FILES = {"b.bin": b"bytes", "s.npz": b"not read by the audit"}


def node(kind: str, module: str, cls: str, **fields: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": kind, **fields}


def json_node(value: Any) -> dict[str, Any]:
    return node("JsonNode", "builtins", type(value).__name__, content=json.dumps(value), is_json=True)


def list_node(*items: dict[str, Any], kind: str = "ListNode", cls: str = "list") -> dict[str, Any]:
    return node(kind, "builtins", cls, content=list(items))


def dict_node(**items: dict[str, Any]) -> dict[str, Any]:
    return node("DictNode", "builtins", "dict", content=items, key_types=list_node(*(TYPE_STR for _ in items)))


TYPE_STR = node("TypeNode", "builtins", "str")
ARRAY = node("NdArrayNode", "numpy", "ndarray", type="numpy", file="b.bin")
OBJECT_ARRAY = node(
    "NdArrayNode", "numpy", "ndarray", type="json", content=[json_node(1)], shape=list_node(json_node(1), kind="TupleNode", cls="tuple")
)
TUPLE = list_node(json_node(1), kind="TupleNode", cls="tuple")
# A small state skops builds without error for each node kind, every child position filled.
MINIMAL: dict[str, dict[str, Any]] = {
    "BytearrayNode": node("BytearrayNode", "builtins", "bytearray", file="b.bin"),
    "BytesNode": node("BytesNode", "builtins", "bytes", file="b.bin"),
    "ConstructorFromReduceNode": node("ConstructorFromReduceNode", "datetime", "timedelta", content=TUPLE),
    "DTypeNode": node("DTypeNode", "numpy", "dtype", content=ARRAY),
    "DefaultDictNode": node("DefaultDictNode", "collections", "defaultdict", content={"main": dict_node(), "default_factory": TYPE_STR}),
    "DictNode": dict_node(a=json_node(1)),
    "FunctionNode": node("FunctionNode", "numpy", "add"),
    "JsonNode": json_node(1),
    "ListNode": list_node(json_node(1)),
    "LossNode": node("LossNode", "sklearn._loss._loss", "CyHalfSquaredError", content=dict_node(), __reduce__={"args": TUPLE}),
    "MaskedArrayNode": node("MaskedArrayNode", "numpy.ma.core", "MaskedArray", content={"data": ARRAY, "mask": ARRAY}),
    "MethodNode": node(
        "MethodNode",
        "sklearn.linear_model._base",
        "LinearRegression",
        content={"func": "predict", "obj": node("ObjectNode", "sklearn.linear_model._base", "LinearRegression", content=dict_node())},
    ),
    "NdArrayNode": OBJECT_ARRAY,
    "ObjectNode": node("ObjectNode", "sklearn.linear_model._base", "LinearRegression", content=dict_node(a=json_node(1))),
    "OperatorFuncNode": node("OperatorFuncNode", "operator", "itemgetter", attrs=TUPLE),
    "PartialNode": node(
        "PartialNode",
        "functools",
        "partial",
        content={"func": node("FunctionNode", "numpy", "add"), "args": TUPLE, "kwds": dict_node(), "namespace": json_node(None)},
    ),
    "RandomGeneratorNode": node(
        "RandomGeneratorNode",
        "numpy.random._generator",
        "Generator",
        content={"bit_generator": dict_node(bit_generator=json_node("PCG64")), "seed_seq": dict_node()},
    ),
    "RandomStateNode": node("RandomStateNode", "numpy.random.mtrand", "RandomState", content=dict_node()),
    "SetNode": list_node(json_node(1), kind="SetNode", cls="set"),
    "SliceNode": node("SliceNode", "builtins", "slice", content={"start": None, "stop": 1, "step": None}),
    "SparseMatrixNode": node("SparseMatrixNode", "scipy.sparse._csr", "csr_matrix", type="scipy", file="s.npz"),
    "TreeNode": node("TreeNode", "sklearn.tree._tree", "Tree", content=dict_node(), __reduce__={"args": TUPLE}),
    "TupleNode": TUPLE,
    "TypeNode": TYPE_STR,
}


def skops_file(schema: dict[str, Any], files: dict[str, bytes] | None = None) -> bytes:
    """A skops file (protocol 2 unless `schema` says otherwise) holding `schema` and `files` (FILES by default)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps({"protocol": 2, **schema}))
        for name, data in (FILES if files is None else files).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def build(kind: str, trusted: list[str] | None) -> Any:
    """skops' node for MINIMAL[kind], built as `get_untrusted_types` builds it (nothing trusted) or with `trusted`."""
    from skops.io._audit import get_tree
    from skops.io._utils import LoadContext

    archive = zipfile.ZipFile(io.BytesIO(skops_file({})))
    return get_tree(MINIMAL[kind], LoadContext(src=archive, protocol=2), trusted=trusted)


def child_nodes(node: Any) -> list[Any]:
    from skops.io._audit import Node

    found = []
    for child in node.children.values():
        items = child if isinstance(child, list) else list(child.values()) if isinstance(child, dict) else [child]
        found.extend(item for item in items if isinstance(item, Node))
    return found


def capture() -> dict[str, Any]:
    """The snapshot's content, read from the installed skops as a server imports it: in a fresh interpreter (skops
    trusts scikit-learn's experimental estimators only when they were enabled before it was imported)."""
    if "skops.io" in sys.modules or any(name.startswith("sklearn.experimental.enable_") for name in sys.modules):
        raise SystemExit("capture the snapshot in a fresh interpreter: `python -m tools.skops_snapshot`")
    import skops.io  # registers every node kind
    from skops.io import _numpy, _protocol
    from skops.io._audit import NODE_TYPE_MAPPING

    kinds = {loader for loader, protocol in NODE_TYPE_MAPPING if protocol == _protocol.PROTOCOL} - {"CachedNode"} - NEEDS_SKOPS
    if kinds != set(MINIMAL) or kinds != set(CHILDREN):
        raise SystemExit(
            f"skops {skops.__version__} node kinds differ from what the schema audit knows: new {sorted(kinds - set(CHILDREN))}, "
            f"gone {sorted(set(CHILDREN) - kinds)}. Teach src/sealserve/trust/policy/skops_schema.py (CHILDREN) and MINIMAL here."
        )
    defaults = {kind: set(build(kind, None).trusted) for kind in kinds}
    probed_defaults = {kind: set(build(kind, [PROBE]).trusted) for kind in kinds}
    replaces = sorted(kind for kind in kinds if probed_defaults[kind] == defaults[kind])
    for kind in kinds:
        if kind not in replaces and probed_defaults[kind] != defaults[kind] | {PROBE}:
            raise SystemExit(f"{kind}: trusting {PROBE} gives {sorted(probed_defaults[kind])}; neither adding to its own nor ignored")
    passes_down = {}
    for kind in sorted(kinds):
        plain, probed = build(kind, None), build(kind, [PROBE])
        extra: set[str] = set()
        for child, probed_child in zip(child_nodes(plain), child_nodes(probed), strict=True):
            extra |= set(child.trusted) - defaults[type(child).__name__]
            if PROBE not in probed_child.trusted and type(child).__name__ not in replaces:
                raise SystemExit(f"{kind} does not pass what it is given to its {type(child).__name__} child")
        if extra:
            passes_down[kind] = sorted(extra)
    tree = build("TreeNode", None).children["constructor"]
    from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES

    return {
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "protocol": _protocol.PROTOCOL,
        "trusted": {kind: sorted(names) for kind, names in defaults.items()},
        "replaces": replaces,
        "passes_down": passes_down,
        "tree_constructor": f"{tree.module_name}.{tree.class_name}",
        "bit_generators": sorted(_numpy.NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES),
        "estimators": list(SKLEARN_ESTIMATOR_TYPE_NAMES),
    }


def names(values: list[str], indent: int) -> str:
    """Space-separated names as a string literal, wrapped in parentheses over lines when long."""
    text = " ".join(values)
    lines = textwrap.wrap(text, width=130 - indent, break_long_words=False, break_on_hyphens=False)
    if len(lines) <= 1:
        return json.dumps(text)
    pad = " " * (indent + 4)
    return (
        "(\n"
        + "".join(f"{pad}{json.dumps(line + (' ' if i < len(lines) - 1 else ''))}\n" for i, line in enumerate(lines))
        + " " * indent
        + ")"
    )


def render(snapshot: dict[str, Any]) -> str:
    def table(entries: dict[str, list[str]]) -> str:
        return "{\n" + "".join(f"    {json.dumps(kind)}: {names(values, 4)},\n" for kind, values in sorted(entries.items())) + "}"

    return f'''"""skops' default trusted names per node kind, for exactly these versions. Generated by `python -m tools.skops_snapshot`:
do not edit. trust/policy/skops_schema.py reads it only when the installed versions are these; otherwise skops audits."""

VERSIONS = {json.dumps(snapshot["versions"])}
PROTOCOL = {snapshot["protocol"]}
TREE_CONSTRUCTOR = {json.dumps(snapshot["tree_constructor"])}
REPLACES = ({"".join(json.dumps(kind) + ", " for kind in snapshot["replaces"]).strip()})
BIT_GENERATORS = {names(snapshot["bit_generators"], 0)}
# scikit-learn's estimators as skops lists them when it is imported (sklearn's all_estimators), in its order
ESTIMATORS = {names(snapshot["estimators"], 0)}
# node kind → the names it trusts, space-separated
TRUSTED = {table(snapshot["trusted"])}
# node kind → the names it adds to the trust of every node below it
PASSES_DOWN = {table(snapshot["passes_down"])}
'''


def main() -> int:
    TARGET.write_text(render(capture()))
    print(f"wrote {TARGET}; review its diff")
    return 0


if __name__ == "__main__":
    sys.exit(main())
