"""`class_path` models are code the operator installed: never verified, so the server says so when it loads one."""

from __future__ import annotations

import logging

import pytest

from sealserve.bundle import files
from sealserve.serve.config import ClassSource
from sealserve.serve.lifecycle.loading import load_source
from sealserve.serve.lifecycle.trial import TrialRunner

CLASS_PATH = "tests.support.seed_model.ThresholdRiskModel"


def test_loading_a_class_model_warns_that_it_is_unverified_trusted_code(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sealserve.loading"):
        served = load_source(ClassSource(class_path=CLASS_PATH, configuration={"threshold": 0.4}), files.BundleLimits(), TrialRunner())
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [f"model class {CLASS_PATH} is trusted code: it is imported and run without bundle verification"]
    assert (served.signer, served.digest) == (None, None)  # nothing was verified: no signer, no signed digest
