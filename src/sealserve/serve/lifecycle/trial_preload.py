"""Imported by the trial runner's forkserver only: the model libraries, each on its own.

The forkserver skips a preloaded module that raises ImportError but dies on any other error, and with it every trial:
LightGBM's wheel without libgomp.so.1 raises OSError, which left a scikit-learn model unready in a slim image. Here a
library that cannot load costs only the models that need it, and the reason goes to the server's log.
"""

from __future__ import annotations

import importlib
import sys

# skops.io is most of it: the reference file's audit needs it, and importing it runs scikit-learn's `all_estimators`,
# which imports every scikit-learn module (scipy.stats and pandas with them), so no scikit-learn package is listed.
# onnx is the ONNX policy's parser (trust/policy/onnx_graph.py), run before onnxruntime gets a compiled file.
MODULES = (
    "numpy",
    "onnx",
    "onnxruntime",
    "skops.io",
    "xgboost",
    "lightgbm",
)


def import_all(modules: tuple[str, ...] = MODULES) -> dict[str, str]:
    """Import each module; the ones that failed, with why (a missing optional library included)."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a wheel whose shared library is missing raises OSError; any error must not kill the server
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"sealserve trial runner: cannot import {name} ({failed[name]}); models that need it fail their trial", file=sys.stderr)
    return failed


FAILED = import_all()
