"""A second seed-shaped class, so one rest_model_service YAML can list a model with and one without endpoints."""

from __future__ import annotations

from tests.support.seed_model import ThresholdRiskModel


class InternalRiskModel(ThresholdRiskModel):
    """The same rule under another name; the seed lists such helper models with `create_endpoint: false`."""

    @property
    def display_name(self) -> str:
        return "Internal Risk Model"

    @property
    def qualified_name(self) -> str:
        return "internal_risk"
