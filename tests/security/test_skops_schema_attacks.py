"""The schema audit (trust/policy/skops_schema.py) reports what skops' `get_untrusted_types` reports, on crafted files.

skops itself is the oracle: for every node kind, an untrusted type smuggled into the node's own name and into each of its
child positions is reported by skops (the live positive control) and by the schema audit alike; a schema skops cannot
read is refused by both. The crafted files of the other security tests (a code-running function, the memory attacks)
give the same answer too.
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from sealserve.errors import BundleFormatError
from sealserve.trust.policy.skops_schema import MAX_DEPTH, untrusted_types
from tests.security.test_loader_attacks import huge_coef, many_references, skops_with, zeros_bomb
from tests.security.test_model_attacks import system_transformer
from tools.skops_snapshot import MINIMAL, json_node, list_node, node, skops_file

REFUSED = "refused"
EVIL = {
    "object": node("ObjectNode", "os", "system"),
    "function": node("FunctionNode", "os", "system"),
    "type": node("TypeNode", "builtins", "eval"),
}
SMUGGLED = {"os.system", "builtins.eval"}


def by_skops(data: bytes) -> list[str] | str:
    try:
        return sorted(skops.io.get_untrusted_types(data=data))
    except Exception:
        return REFUSED


def by_schema(data: bytes) -> list[str] | str:
    try:
        return untrusted_types(data)
    except BundleFormatError:
        return REFUSED


def same_answer(schema: dict[str, Any], files: dict[str, bytes] | None = None) -> list[str] | str:
    """Both audits' answer on one crafted file, which must be the same."""
    data = skops_file(schema, files)
    expected = by_skops(data)
    assert by_schema(data) == expected, json.dumps(schema)[:2000]
    return expected


def positions(state: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every node state nested in `state` (not `state` itself)."""
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list) else []
    for key, value in items:
        if isinstance(value, dict) and "__loader__" in value:
            yield (*path, key)
        yield from positions(value, (*path, key))


def replaced(state: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(state)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_a_type_smuggled_into_any_position_of_any_node_kind_is_reported_as_skops_reports_it(kind: str) -> None:
    clean = MINIMAL[kind]
    assert not SMUGGLED & set(same_answer(clean))
    reported = []
    for payload in EVIL.values():
        named = {**clean, "__module__": payload["__module__"], "__class__": payload["__class__"]}
        if kind == "MethodNode":
            named["content"] = {**clean["content"], "obj": {**clean["content"]["obj"], "__module__": "os", "__class__": "system"}}
        reported.append(("self", same_answer(named)))
        for path in positions(clean):
            reported.append((path, same_answer(replaced(clean, path, payload))))
    found = [where for where, answer in reported if answer != REFUSED and SMUGGLED & set(answer)]
    if kind in ("JsonNode", "SliceNode"):  # skops reports nothing for these kinds' own names, and they have no children
        assert found == []
    else:
        assert found, f"no smuggled type reported for {kind}: {reported}"
    assert len(found) + sum(answer == REFUSED for _, answer in reported) >= len(list(positions(clean)))


def test_a_loss_passes_its_trust_down_and_nothing_else_does() -> None:
    loss = "sklearn._loss._loss.CyHalfSquaredError"
    inside = replaced(MINIMAL["LossNode"], ("content",), node("ObjectNode", *loss.rsplit(".", 1)))
    outside = list_node(node("ObjectNode", *loss.rsplit(".", 1)))
    assert same_answer(inside) == []
    assert same_answer(outside) == [loss]
    tree = replaced(MINIMAL["TreeNode"], ("content",), node("ObjectNode", *loss.rsplit(".", 1)))
    assert same_answer(tree) == [loss, "sklearn.tree._tree.Tree"]


def test_a_defaultdict_ignores_the_trust_passed_down_to_it_but_passes_it_on() -> None:
    deep = node(
        "DefaultDictNode", "sklearn._loss._loss", "CyHuberLoss", content={"main": MINIMAL["DictNode"], "default_factory": json_node(None)}
    )
    assert same_answer(replaced(MINIMAL["LossNode"], ("content",), deep)) == ["sklearn._loss._loss.CyHuberLoss"]


def test_a_repeated_id_is_the_first_node_built_and_its_later_content_is_never_read() -> None:
    clean = {**node("ObjectNode", "sklearn.linear_model._base", "LinearRegression"), "__id__": 7}
    evil = {**node("ObjectNode", "os", "system"), "__id__": 7}
    assert same_answer(list_node(clean, evil)) == []
    assert same_answer(list_node(evil, clean)) == ["os.system"]
    nested = {**list_node(clean), "__id__": 8}
    assert same_answer(list_node(nested, {**list_node(evil), "__id__": 8})) == []
    missing_file = {**node("BytesNode", "builtins", "bytes", file="absent.bin"), "__id__": 7}
    assert same_answer(list_node(clean, missing_file)) == []
    assert same_answer(list_node(missing_file, clean)) == REFUSED


def test_cached_nodes_and_cycles_resolve_to_the_node_already_built() -> None:
    cached = node("CachedNode", "os", "system", __id__=5)
    assert same_answer(list_node({**json_node(1), "__id__": 5}, cached)) == []
    assert same_answer(list_node(cached)) == REFUSED
    cycle = {**node("ObjectNode", "os", "system"), "__id__": 9}
    cycle["content"] = {**MINIMAL["DictNode"], "content": {"self": node("CachedNode", "x", "y", __id__=9)}}
    assert same_answer(cycle) == ["os.system"]


def test_methods_and_bit_generators_add_the_names_skops_adds() -> None:
    method = MINIMAL["MethodNode"]
    owner = "sklearn.linear_model._base.LinearRegression"
    assert same_answer(method) == [owner, f"{owner}.predict"]
    assert same_answer(replaced(method, ("content", "func"), "__reduce__")) == [owner, f"{owner}.__reduce__"]
    assert same_answer(replaced(method, ("content", "obj", "__class__"), "Ridge")) == REFUSED
    generator = MINIMAL["RandomGeneratorNode"]
    assert same_answer(generator) == []
    path = ("content", "bit_generator", "content", "bit_generator")
    assert same_answer(replaced(generator, path, json_node("seed"))) == ["numpy.random.seed"]
    assert same_answer(replaced(generator, path, json_node(3))) == REFUSED


@pytest.mark.parametrize(
    "schema",
    [
        {"__loader__": "NoSuchNode", "__module__": "builtins", "__class__": "int"},
        {"__module__": "builtins", "__class__": "list", "content": []},
        node("ListNode", "builtins", "list", content=[["not", "a", "node"]]),
        node("ListNode", "builtins", "list", content=[{**json_node(1), "__id__": [1]}]),
        node("DictNode", "builtins", "dict", content=[]),
        node("SliceNode", "builtins", "slice", content={"start": 1}),
        node("NdArrayNode", "numpy", "ndarray", type="pickle", file="b.bin"),
        node("NdArrayNode", "numpy", "ndarray", type="numpy", file="absent.npy"),
        node("SparseMatrixNode", "scipy.sparse._csr", "csr_matrix", type="pickle", file="b.bin"),
        node("OperatorFuncNode", "os", "system", attrs=MINIMAL["TupleNode"]),
        node("TreeNode", "sklearn.tree._tree", "Tree", content=MINIMAL["DictNode"]),
        node("JsonNode", "builtins", "int"),
        {**MINIMAL["ListNode"], "protocol": 3},
        {**MINIMAL["ListNode"], "protocol": True},
        {**MINIMAL["ListNode"], "protocol": "2"},
    ],
    ids=lambda schema: str(schema.get("__loader__")) + str(schema.get("protocol", "")),
)
def test_a_schema_skops_cannot_read_is_refused(schema: dict[str, Any]) -> None:
    assert same_answer(schema) == REFUSED


def test_an_older_protocol_is_left_to_skops() -> None:
    schema = {**list_node(EVIL["object"]), "protocol": 0}
    assert same_answer(schema) == ["os.system"]


def test_a_member_whose_bytes_are_corrupt_is_refused_as_skops_refuses_it() -> None:
    data = bytearray(skops_file(MINIMAL["BytesNode"], {"b.bin": b"x" * 64}))
    data[data.index(b"x" * 64)] = ord("y")  # the stored CRC no longer matches
    assert by_skops(bytes(data)) == REFUSED
    with pytest.raises(BundleFormatError, match="the skops file is not a readable skops file"):
        untrusted_types(bytes(data))


def test_nesting_past_the_depth_limit_is_refused_with_the_reason() -> None:
    state: dict[str, Any] = json_node(1)
    for _ in range(MAX_DEPTH + 1):
        state = list_node(state)
    with pytest.raises(BundleFormatError, match=f"nests deeper than {MAX_DEPTH} levels"):
        untrusted_types(skops_file(state))
    state = json_node(1)
    for _ in range(MAX_DEPTH - 1):
        state = list_node(state)
    assert by_schema(skops_file(state)) == [] == by_skops(skops_file(state))


@pytest.fixture(scope="module")
def logistic() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return LogisticRegression().fit(X, X[:, 0] > 0)


@pytest.mark.parametrize("edit", [huge_coef, zeros_bomb, many_references], ids=lambda edit: edit.__name__)
def test_the_memory_attack_files_give_skops_answer(logistic: LogisticRegression, edit: Any) -> None:
    data = skops_with(logistic, edit, zipfile.ZIP_DEFLATED)
    assert by_schema(data) == by_skops(data) != REFUSED


def test_the_code_running_function_file_is_reported_as_skops_reports_it() -> None:
    data = skops.io.dumps(system_transformer())
    assert by_schema(data) == by_skops(data)
    assert "posix.system" in by_schema(data)


def test_a_file_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(BundleFormatError, match="is not a readable skops file"):
        untrusted_types(b"\x80\x04not a zip")
