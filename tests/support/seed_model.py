"""A model written against the seed's ml_base.MLModel shape; only the import differs."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from sealserve import MLModel, MLModelException


class GeneralHealth(str, Enum):
    """How would you say that in general your health is?"""

    EXCELLENT = "EXCELLENT"
    VERY_GOOD = "VERY_GOOD"
    GOOD = "GOOD"
    FAIR = "FAIR"
    POOR = "POOR"


class RiskInput(BaseModel):
    body_mass_index: int = Field(ge=15, le=60, description="Body Mass Index.")
    general_health: GeneralHealth


class RiskOutput(BaseModel):
    risk_score: float
    high_risk: bool


class ThresholdRiskModel(MLModel):
    """Scores risk with a fixed rule; `threshold` comes from the service configuration."""

    def __init__(self, threshold: float = 0.5) -> None:
        self._threshold = threshold

    @property
    def display_name(self) -> str:
        return "Threshold Risk Model"

    @property
    def qualified_name(self) -> str:
        return "threshold_risk"

    @property
    def description(self) -> str:
        return "Rule-based risk score used to test class-path models."

    @property
    def version(self) -> str:
        return "0.1.0"

    @property
    def input_schema(self) -> type[BaseModel]:
        return RiskInput

    @property
    def output_schema(self) -> type[BaseModel]:
        return RiskOutput

    def predict(self, data: RiskInput) -> RiskOutput:
        if data.body_mass_index == 59:
            raise MLModelException("internal detail that must not reach the client: /secret/path")
        if data.body_mass_index == 58:
            raise RuntimeError("unexpected bug with secret detail")
        health = list(GeneralHealth).index(data.general_health) / 4
        score = min(1.0, (data.body_mass_index - 15) / 45 * 0.5 + health * 0.5)
        return RiskOutput(risk_score=score, high_risk=score >= self._threshold)


class BrokenRiskModel(ThresholdRiskModel):
    """Loads and reports ready, then fails every prediction: what only an error rate can show."""

    @property
    def qualified_name(self) -> str:
        return "broken_risk"

    def predict(self, data: RiskInput) -> RiskOutput:
        raise RuntimeError("a bug in the model's own code")
