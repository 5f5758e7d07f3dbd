"""A class model whose predictions wait for the test to open a gate: a long batch, without sleeps."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from tests.support.seed_model import RiskInput, RiskOutput, ThresholdRiskModel

GATE = threading.Event()
ENTERED = threading.Event()


class GatedRiskModel(ThresholdRiskModel):
    @property
    def qualified_name(self) -> str:
        return "gated_risk"

    @property
    def input_schema(self) -> type[BaseModel]:
        return RiskInput

    def predict(self, data: RiskInput) -> RiskOutput:
        ENTERED.set()
        if not GATE.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().predict(data)
