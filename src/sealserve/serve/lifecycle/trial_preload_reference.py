"""Imported by the trial runner's forkserver too when a configured model's trial serves its reference model
(`runtime: reference`): scikit-learn (through skops.io), XGBoost and LightGBM once in the runner, not in every child.

Each on its own, as in trial_preload.py: a library that cannot load costs only the models that need it.
"""

from __future__ import annotations

from sealserve.serve.lifecycle.trial_preload import import_all

MODULES = ("skops.io", "xgboost", "lightgbm")
FAILED = import_all(MODULES)
