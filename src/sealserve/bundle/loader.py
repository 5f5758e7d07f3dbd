"""Deserialize a verified model file, each format behind its own allow-list."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sealserve.bundle.boosters import check_booster_file, load_booster
from sealserve.bundle.integrity import check_structures
from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.bundle.type_policy import refused_types
from sealserve.errors import BundleFormatError, UnsafeModelError

SAFE_BUILTINS = (
    "slice",
    "set",
    "frozenset",
    "complex",
    "bytearray",
    "range",
    "dict",
    "list",
    "tuple",
    "int",
    "float",
    "str",
    "bool",
    "bytes",
)
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("builtins", name) for name in SAFE_BUILTINS}
    | {
        ("collections", "OrderedDict"),
        ("copyreg", "_reconstructor"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
SAFE_CLASS_MODULE_PREFIXES: tuple[str, ...] = ("sklearn.", "scipy.sparse.")


def load_model_file(
    path: Path,
    model_format: ModelFormat,
    *,
    trusted_types: Iterable[str] = (),
    allow_pickle: bool = False,
    metadata: BundleMetadata | None = None,
) -> Any:
    """Load a model file that has already been verified; unsafe content is refused, not run.

    The policy is the built-in allow-list plus `trusted_types`. With `metadata`, a skops file must need no type its
    signed metadata does not declare, and XGBoost/LightGBM files must be the model the metadata describes.
    """
    if model_format is ModelFormat.ONNX:
        return load_onnx(path)
    if model_format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        if metadata is None:
            raise BundleFormatError(f"{path.name} is loaded from its bundle's metadata only")
        classes = [item.value for item in metadata.output.classes] if metadata.output.task == "classification" else None
        return load_booster(path, model_format.value, metadata.estimator, classes=classes, n_features=len(metadata.features))
    if model_format is ModelFormat.SKOPS:
        return load_skops(path, trusted_types, metadata.required_types if metadata is not None else None)
    if not allow_pickle:
        raise UnsafeModelError(f"{path.name} is pickle-based (joblib); loading it needs allow_pickle: true")
    return load_joblib(path, set(trusted_types))


def audit_model_file(path: Path, metadata: BundleMetadata, *, trusted_types: Iterable[str] = ()) -> None:
    """Everything loading would check before constructing the reference model, without constructing it."""
    if metadata.format is ModelFormat.SKOPS:
        audit_skops(path, trusted_types, metadata.required_types)
    elif metadata.format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        check_booster_file(path, "xgboost" if metadata.format is ModelFormat.XGBOOST else "lightgbm")
    elif metadata.format is ModelFormat.JOBLIB:
        raise UnsafeModelError(f"{path.name} is pickle-based; it serves only as itself, with allow_pickle")


def load_skops(path: Path, trusted_types: Iterable[str] = (), declared: Iterable[str] | None = None) -> Any:
    """Audit before construct: a bundle's declared types must be within the policy, and its file may need no more."""
    import skops.io

    untrusted = audit_skops(path, trusted_types, declared)
    try:
        model = skops.io.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise BundleFormatError(f"{path.name} could not be loaded by skops: {type(exc).__name__}") from None
    check_structures(model)
    return model


def audit_skops(path: Path, trusted_types: Iterable[str] = (), declared: Iterable[str] | None = None) -> list[str]:
    """The types a skops file needs, read from its schema; refused unless declared (when `declared`) and within the policy."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception:
        raise BundleFormatError(f"{path.name} is not a readable skops file") from None
    if declared is not None:
        undeclared = sorted(set(untrusted) - set(declared))
        if undeclared:
            raise UnsafeModelError(f"{path.name} needs types its signed metadata does not declare: {', '.join(undeclared)}")
    refused = refused_types(untrusted if declared is None else declared, path, extra_trusted=trusted_types)
    if refused:
        raise UnsafeModelError(f"{path.name} needs types outside the allow-list: {', '.join(refused)} (review them; trusted_types)")
    return list(untrusted)


def load_onnx(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BundleFormatError(f"{path.name} is not a loadable ONNX model: {type(exc).__name__}") from None


def load_joblib(path: Path, extra_globals: set[str]) -> Any:
    """Unpickle with joblib's array support but only allow-listed globals (module.name strings in config).

    Only objects that came out of `find_class` may be called while unpickling, so a stream cannot call an
    instance it built (gadget chains), and object arrays' nested pickle streams get the same restrictions.
    """
    import pickle

    from joblib import numpy_pickle

    allowed = SAFE_GLOBALS | {tuple(name.rsplit(".", 1)) for name in extra_globals if "." in name}
    parent = numpy_pickle.NumpyUnpickler.dispatch

    class RestrictedArrayWrapper(numpy_pickle.NumpyArrayWrapper):  # type: ignore[misc]
        def read_array(self, unpickler: Any, *args: Any) -> Any:
            if not self.dtype.hasobject:
                return super().read_array(unpickler, *args)
            return RestrictedUnpickler(str(path), unpickler.file_handle, True).load()

    class RestrictedUnpickler(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        dispatch = parent.copy()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.resolved: dict[int, Any] = {}

        def find_class(self, module: str, name: str) -> Any:
            found = self.resolve(module, name)
            self.resolved[id(found)] = found
            return found

        def resolve(self, module: str, name: str) -> Any:
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return RestrictedArrayWrapper
            if (module, name) in allowed:
                return super().find_class(module, name)
            if module == "numpy" and _is_numpy_scalar_type(name):
                return super().find_class(module, name)
            if module.startswith(SAFE_CLASS_MODULE_PREFIXES) and "__" not in name:
                found = getattr(importlib.import_module(module), name, None)
                # Defined in that module, not merely imported there (sklearn modules import GzipFile, Thread, …).
                if isinstance(found, type) and found.__module__ == module:
                    return found
            raise UnsafeModelError(f"{path.name} refers to {module}.{name}, which is not on the unpickling allow-list")

        def check_callable(self, target: Any) -> None:
            if self.resolved.get(id(target)) is not target:
                raise UnsafeModelError(f"{path.name} calls a {type(target).__name__} object that is not an allow-listed global")

        def load_reduce(self) -> None:
            self.check_callable(self.stack[-2])
            parent[pickle.REDUCE[0]](self)

        def load_newobj(self) -> None:
            self.check_callable(self.stack[-2])
            parent[pickle.NEWOBJ[0]](self)

        def load_newobj_ex(self) -> None:
            self.check_callable(self.stack[-3])
            parent[pickle.NEWOBJ_EX[0]](self)

        def load_obj(self) -> None:
            if self.stack:
                self.check_callable(self.stack[0])
            parent[pickle.OBJ[0]](self)

        dispatch[pickle.REDUCE[0]] = load_reduce
        dispatch[pickle.NEWOBJ[0]] = load_newobj
        dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
        dispatch[pickle.OBJ[0]] = load_obj

    with path.open("rb") as handle, numpy_pickle._validate_fileobject_and_memmap(handle, str(path), None) as (stream, _):
        if isinstance(stream, str):
            raise UnsafeModelError(f"{path.name} uses joblib's pre-0.10 format, which is refused")
        try:
            model = RestrictedUnpickler(str(path), stream, True).load()
        except UnsafeModelError:
            raise
        except Exception as exc:
            raise BundleFormatError(f"{path.name} could not be unpickled: {type(exc).__name__}") from None
    check_structures(model)
    return model


def _is_numpy_scalar_type(name: str) -> bool:
    """numpy.float64, numpy.int32, …: estimators keep these as `dtype` parameters."""
    import numpy

    found = getattr(numpy, name, None)
    return isinstance(found, type) and issubclass(found, numpy.generic)
