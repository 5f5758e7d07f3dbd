"""A class model whose prediction waits for a file to appear (polled, with a deadline): a call held in flight in a server process."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from tests.support.seed_model import RiskInput, RiskOutput, ThresholdRiskModel


class FileGatedRiskModel(ThresholdRiskModel):
    """Writes `entered` when a prediction starts, then answers once the test creates `gate` (or fails after 30 s)."""

    def __init__(self, gate: str, entered: str) -> None:
        super().__init__()
        self._gate, self._entered = Path(gate), Path(entered)

    @property
    def qualified_name(self) -> str:
        return "file_gated_risk"

    @property
    def input_schema(self) -> type[BaseModel]:
        return RiskInput

    def predict(self, data: RiskInput) -> RiskOutput:
        self._entered.touch()
        deadline = time.monotonic() + 30
        while not self._gate.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never created the gate file")
            time.sleep(0.01)
        return super().predict(data)
