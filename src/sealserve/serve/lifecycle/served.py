"""What the server serves: one loaded model with its provenance, and what load hooks attach to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sealserve.bundle.metadata import BundleMetadata
from sealserve.model import MLModel
from sealserve.runtime.bundle_model import BundleModel


@dataclass(frozen=True)
class ServedModel:
    """One loaded model and the provenance every response and status page reports; load hooks attach what serves it."""

    name: str
    model: MLModel
    version: str
    loaded_at: datetime
    signer: str | None = None
    digest: str | None = None
    metadata: BundleMetadata | None = None
    origin: str = "store"
    provenance: dict[str, Any] | None = None  # who signed, how, when, the digest and the trust rule that admitted it
    attachments: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    reports: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)  # signed report files, for the web page

    @property
    def runtime(self) -> str:
        """What executes the model: onnxruntime, scikit-learn, xgboost, lightgbm, or python for a class model."""
        return self.model.runtime_name if isinstance(self.model, BundleModel) else "python"

    def takes_inputs_of(self, other: ServedModel) -> bool:
        """Whether a batch validated for `other` is valid, as is, for this model (the same features, categories and bounds)."""
        return self.metadata is not None and other.metadata is not None and self.metadata.features == other.metadata.features
