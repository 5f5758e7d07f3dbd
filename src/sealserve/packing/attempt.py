"""The compile attempt as `pack` runs it: skipped for models known not to convert, bounded in time, and quiet (what
native libraries print is logged at debug level; the bundle's `compiled_skipped` is the one-line summary)."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sealserve.bundle import files
from sealserve.bundle.metadata import COMPILED_FILE, BundleMetadata, CompiledModel
from sealserve.packing.compile import compile_model
from sealserve.packing.features import public_name
from sealserve.packing.onnx.export import model_parts
from sealserve.packing.quiet import native_stderr_captured

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("sealserve.pack")

DEFAULT_COMPILE_TIMEOUT = 10.0
# Measured on a 2-core machine: skl2onnx's QuantileTransformer converter took 19 s for 100 quantiles of one feature,
# and over 2 minutes at the default 1,000 quantiles; a pipeline holding one never compiles within any sensible bound.
KNOWN_NOT_TO_CONVERT = MappingProxyType(
    {"sklearn.preprocessing.QuantileTransformer": "skl2onnx converts a QuantileTransformer too slowly to try (minutes at 1,000 quantiles)"}
)


def attempt_compile(
    original: Any, estimator: Any, metadata: BundleMetadata, sample: pd.DataFrame | None, folder: Path, *, timeout: float
) -> tuple[CompiledModel | None, str | None]:
    """`compile_model` into `folder`, or why not. A compile running past `timeout` seconds is abandoned: its thread is
    asked to stop, works in its own folder, and nothing it writes afterwards reaches the bundle."""
    known = known_not_to_convert(original)
    if known is not None:
        return None, known
    workdir = files.private_directory("sealserve-compile-")
    outcome: dict[str, Any] = {}
    done, abandoned = threading.Event(), threading.Event()

    def work() -> None:
        try:
            outcome["result"] = compile_model(original, estimator, metadata, sample, workdir, cancelled=abandoned)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()
            if abandoned.is_set():
                shutil.rmtree(workdir, ignore_errors=True)

    with native_stderr_captured() as captured:
        threading.Thread(target=work, name=f"sealserve-compile-{metadata.name}", daemon=True).start()
        finished = done.wait(timeout)
    if captured.text.strip():
        logger.debug("%s: native output while compiling:\n%s", metadata.name, captured.text.rstrip())
    if not finished:
        abandoned.set()
        if done.is_set():
            shutil.rmtree(workdir, ignore_errors=True)
        logger.info("%s: compile abandoned after %gs", metadata.name, timeout)
        return None, f"compiling took longer than the {timeout:g} s compile timeout (compile_timeout, CLI: --compile-timeout)"
    try:
        if "error" in outcome:
            raise outcome["error"]
        compiled, reason = outcome["result"]
        if compiled is not None:
            shutil.move(workdir / COMPILED_FILE, folder / COMPILED_FILE)
        return compiled, reason
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def known_not_to_convert(model: Any) -> str | None:
    """Why the model is not worth a compile attempt, or None."""
    for part in model_parts(model):
        reason = KNOWN_NOT_TO_CONVERT.get(public_name(part))
        if reason is not None:
            return reason
    return None
