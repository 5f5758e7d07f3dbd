"""Building the served model from a verified bundle folder: the runtime choice, then the trust path's loader.

The server and the trial child both load through `build_model`, so the child tries exactly what would go live.
"""

from __future__ import annotations

from pathlib import Path

from sealserve.bundle.metadata import BundleMetadata
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.choice import RuntimeSetting, choose_runtime
from sealserve.runtime.explain.reference import ExplanationSource
from sealserve.trust.verify import load_verified, load_verified_compiled


def build_model(
    folder: Path,
    metadata: BundleMetadata,
    *,
    runtime: RuntimeSetting,
    trusted_types: tuple[str, ...],
    allow_pickle: bool,
    audited: bool = False,
) -> BundleModel:
    """Deserialize a verified bundle folder into what serves it: the server and the trial child both load through here.

    `audited`: the trial child already audited the reference model file with these settings, so a compiled form is
    loaded without auditing it again (the audit reads the whole reference file, which the compiled form never needs).
    """
    choice = choose_runtime(metadata, runtime)
    if choice.compiled:
        estimator = load_verified_compiled(folder, metadata, trusted_types=trusted_types, audited=audited)
    else:
        estimator = load_verified(folder, metadata, trusted_types=trusted_types, allow_pickle=allow_pickle)
    explanation = ExplanationSource.read(folder, metadata, trusted_types, keep_reference=choice.compiled)
    return BundleModel(metadata, estimator, compiled=choice.compiled, compiled_skipped=choice.skipped, explanation=explanation)
