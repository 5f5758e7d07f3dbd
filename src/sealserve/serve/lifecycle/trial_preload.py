"""Imported by the trial runner's forkserver only: the model libraries, each on its own.

The forkserver skips a preloaded module that raises ImportError but dies on any other error, and with it every trial:
LightGBM's wheel without libgomp.so.1 raises OSError, which left a scikit-learn model unready in a slim image. Here a
library that cannot load costs only the models that need it, and the reason goes to the server's log.
"""

from __future__ import annotations

import importlib
import sys

from sealserve.trust.policy.catalog import collection_paused
from sealserve.trust.policy.skops_schema import installed_versions

# What every compiled (ONNX-served) model's trial needs: onnx is the ONNX policy's parser (trust/policy/onnx_graph.py),
# run before onnxruntime gets a compiled file. The reference file's audit reads its skops schema without skops
# (trust/policy/skops_schema.py), so scikit-learn, skops (whose import lists every scikit-learn estimator: about 3 s of
# CPU), xgboost and lightgbm are imported by the child whose model is served from them, not by the runner.
MODULES = (
    "numpy",
    "onnx",
    "onnxruntime",
)


def import_all(modules: tuple[str, ...] = MODULES) -> dict[str, str]:
    """Import each module; the ones that failed, with why (a missing optional library included)."""
    failed = {}
    for name in modules:
        try:
            with collection_paused():
                importlib.import_module(name)
        except ImportError as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a wheel whose shared library is missing raises OSError; any error must not kill the server
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"sealserve trial runner: cannot import {name} ({failed[name]}); models that need it fail their trial", file=sys.stderr)
    return failed


FAILED = import_all()
installed_versions()  # read once here (~5 ms of package metadata), not again by every child's skops audit
