"""The service configuration's `explain:` section (docs/explanations.md), kept beside the explainer it bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Explain(BaseModel):
    """Per-prediction explanations: the model-agnostic budget, when explainers are built, and the scope they need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_evaluations: int = Field(default=20_000, gt=0, le=10_000_000, description="Model evaluations a model-agnostic request may make.")
    load: Literal["lazy", "eager"] = Field(default="lazy", description="eager: build each explainer (and reference model) at load.")
    scope: Literal["predict", "explain"] = Field(default="predict", description="The scope explanations need (explain or explain:<model>).")
