"""Boosters met inside a user's model file (a pipeline saved with joblib or skops), rebuilt from the model their state
carries after the structural checks, instead of running their __setstate__, which hands the file's bytes to the
native loader unchecked. Pack time and the restricted unpickler use it; a bundle's booster is its own file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zipfile import ZipFile

import numpy as np

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.lightgbm_text import check_lightgbm_text
from sealserve.trust.boosters.served import LGB_BOOSTER, XGB_BOOSTER, booster_library, qualified_name
from sealserve.trust.boosters.summary import Malformed
from sealserve.trust.boosters.ubjson import read_ubjson
from sealserve.trust.boosters.xgboost_json import xgboost_summary


def rebuilds_state(instance: Any) -> bool:
    """Whether `instance` is a library's own Booster, whose state is rebuilt here rather than set."""
    return booster_library(instance) is not None and qualified_name(instance) in (XGB_BOOSTER, LGB_BOOSTER)


def rebuild_booster(instance: Any, state: Any, name: str) -> None:
    """Initialise `instance` (made by the stream with __new__ only) from its pickled state's model, checked first."""
    if qualified_name(instance) == XGB_BOOSTER:
        handle = state.get("handle") if isinstance(state, dict) else None
        if not isinstance(handle, bytes | bytearray):
            raise BundleFormatError(f"{name}: a stored XGBoost Booster carries no serialized model")
        try:
            document = read_ubjson(bytes(handle))
            model = document.get("Model") if isinstance(document, dict) else None
            xgboost_summary(model)
        except Malformed as exc:
            raise BundleFormatError(f"{name}: a stored XGBoost Booster is not a well-formed model: {exc}") from None
        _initialise(instance, name, model_file=bytearray(json.dumps(model).encode("utf-8")))
        return
    text = state.get("_handle") if isinstance(state, dict) else None
    if not isinstance(text, str):
        raise BundleFormatError(f"{name}: a stored LightGBM Booster carries no model text")
    check_lightgbm_text(text.encode("utf-8"), f"{name} (a stored LightGBM Booster)")
    _initialise(instance, name, model_str=text)


def _initialise(instance: Any, name: str, **source: Any) -> None:
    """The library's own constructor on checked bytes, then one all-missing row (XGBoost checks some parameters only then)."""
    try:
        type(instance).__init__(instance, **source)
        if qualified_name(instance) == XGB_BOOSTER:
            import xgboost

            instance.predict(xgboost.DMatrix(np.full((1, instance.num_features()), np.nan)), validate_features=False)
        else:
            instance.predict(np.full((1, instance.num_feature()), np.nan))
    except Exception as exc:
        raise BundleFormatError(f"{name}: the booster's library refused its model: {type(exc).__name__}") from None


SPLIT_READ_TYPES = frozenset(
    {
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
        "collections.OrderedDict",
    }
)
"""What reading a skops pipeline that ends in a booster needs beyond the policy: safe here because every Booster in
the file is rebuilt from its checked model (`load_skops_rebuilding_boosters`), never given state by skops."""


def load_skops_rebuilding_boosters(path: Path, trusted: list[str]) -> Any:
    """skops' own load of `path` with `trusted` types (its schema reader, tree and audit), except that each XGBoost or
    LightGBM Booster node is built by `rebuild_booster` from its state's model instead of __new__ + __setstate__."""
    from skops.io._audit import audit_tree, get_tree
    from skops.io._utils import read_schema

    with ZipFile(path, "r") as archive:
        schema, context = read_schema(archive)
        tree = get_tree(schema, context, trusted=trusted)
        audit_tree(tree, trusted=trusted)
        for node in _nodes(tree):
            if f"{getattr(node, 'module_name', '')}.{getattr(node, 'class_name', '')}" in (XGB_BOOSTER, LGB_BOOSTER):
                node._construct = _rebuilt(node, path.name)
        return tree.construct()


def _nodes(tree: Any) -> list[Any]:
    """Every node of a skops tree once (children may be nodes, or lists and dicts of nodes)."""
    found: list[Any] = []
    pending, seen = [tree], set()
    while pending:
        node = pending.pop()
        if isinstance(node, list | tuple):
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())
        elif hasattr(node, "children") and id(node) not in seen:
            seen.add(id(node))
            found.append(node)
            pending.extend(node.children.values())
    return found


def _rebuilt(node: Any, name: str) -> Callable[[], Any]:
    def construct() -> Any:
        instance: Any
        if node.module_name == "xgboost.core":
            import xgboost

            instance = xgboost.core.Booster.__new__(xgboost.core.Booster)
        else:
            import lightgbm

            instance = lightgbm.basic.Booster.__new__(lightgbm.basic.Booster)
        rebuild_booster(instance, node.attrs.construct() if node.attrs is not None else None, name)
        return instance

    return construct
