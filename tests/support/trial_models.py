"""A test-only trusted type for the trial prediction tests: a logistic regression that, when its signed state says so,
crashes the process (SIGSEGV) or hangs in `predict`.

It stands in for a segfault-class bug that structure validation does not catch (every index-bearing structure
scikit-learn trusts is validated at load, integrity.py): the server only loads it when the operator lists it in
`trusted_types`, and the behaviour is data in the signed model file (`behaviour`), so the crashing bundle and its
control differ in one signed string, not in code.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

TYPE = f"{__name__}.TrialClassifier"
ALLOCATE = 1 << 30


class TrialClassifier(LogisticRegression):
    """`behaviour`: "predict" (a plain logistic regression), "crash" (SIGSEGV), "hang" (blocks until killed) or
    "allocate" (takes ALLOCATE bytes of memory, then predicts)."""

    behaviour = "predict"

    def predict(self, X: Any) -> Any:
        if self.behaviour == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.behaviour == "hang":
            threading.Event().wait()
        if self.behaviour == "allocate":
            np.ones(ALLOCATE // 8)  # written, so it is really taken
        return super().predict(X)
