"""Malicious pickles against the restricted unpickler: published scanner bypasses, stdlib and numpy gadgets, and the
state hooks and container opcodes of allowed classes.

Every payload writes a marker file in the test's temp dir when it runs. `test_control_*` proves each one fires under
plain pickle or joblib; the matching test proves the restricted unpickler refuses it with UnsafeModelError and that the
marker is absent. Classes defined here stand for an operator-trusted class (`trusted_types`) with a dangerous hook.
"""

from __future__ import annotations

import builtins
import contextlib
import copyreg
import functools
import importlib
import io
import operator
import os
import pickle
import pkgutil
import pydoc
import runpy
import shutil
import subprocess
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import Any

import joblib
import numpy as np
import pytest
from numpy.random import _pickle as numpy_random_pickle
from numpy.testing._private.utils import runstring
from sklearn.neighbors import _kd_tree

from sealserve.errors import UnsafeModelError
from sealserve.trust.load import load_joblib


class Call:
    """Pickles as `function(*args)`; a Call as the function makes the unpickler call the result of another call."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.args

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError("only its pickled form is ever called")


def code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


class MarkerCall:
    """A trusted class whose instances write the marker when called."""

    def __call__(self, path: str, *rest: object) -> None:
        Path(path).write_text("called")


class Gadget:
    """A trusted class whose instance, passed where a class is expected, writes the marker from __new__ or __init__."""

    path = ""

    def __new__(cls, *args: Any) -> Any:
        if isinstance(cls, Gadget) and cls.path:
            Path(cls.path).write_text("new")
        return object.__new__(Gadget)

    def __init__(self, *args: Any) -> None:
        if len(args) == 2 and isinstance(args[1], str):
            Path(args[1]).write_text("init")


def gadget(path: str) -> Gadget:
    value = Gadget()
    value.path = path
    return value


class Hashed:
    """A trusted class whose __hash__ writes the marker (a dict lookup of it runs code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __hash__(self) -> int:
        Path(self.path).write_text("hashed")
        return 0


class SideEffectState:
    """A trusted class whose __setstate__ acts (as ScoringMonitor's opens sockets and threads)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["path"]).write_text("setstate")


class LooksUpState:
    """No __setstate__, but __getattr__ answers for it: BUILD would call what it returns."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __getattr__(self, name: str) -> Any:
        if name == "__setstate__":
            return lambda state: Path(state["path"]).write_text("getattr")
        raise AttributeError(name)


class Slotted:
    """A property setter that acts: BUILD's slot state goes through setattr."""

    __slots__ = ("_path",)

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        Path(value).write_text("setter")

    def __reduce__(self) -> tuple[Any, ...]:
        return copyreg.__newobj__, (Slotted,), (None, {"path": self._path})  # type: ignore[attr-defined]


class Appender:
    """APPEND and APPENDS call .append or .extend on whatever object is on the stack."""

    def __init__(self, path: str = "") -> None:
        self.path = path

    def append(self, item: str) -> None:
        Path(item).write_text("append")

    def extend(self, items: list[str]) -> None:
        Path(items[0]).write_text("extend")

    def __reduce__(self) -> tuple[Any, ...]:
        return Appender, (), None, iter([self.path, self.path])


class ItemSetter:
    """SETITEMS calls __setitem__ on whatever object is on the stack."""

    def __init__(self, path: str = "") -> None:
        self.path = path

    def __setitem__(self, key: str, value: str) -> None:
        Path(key).write_text("setitem")

    def __reduce__(self) -> tuple[Any, ...]:
        return ItemSetter, (), None, None, iter([(self.path, "x")])


class Adder:
    """ADDITEMS calls .add on whatever object is on the stack."""

    def add(self, item: str) -> None:
        Path(item).write_text("add")


class ClassState:
    """BUILD applied to the class object itself calls its __setstate__ function with the state as `self`."""

    def __setstate__(*args: Any) -> None:
        Path(args[-1]["path"]).write_text("class state")


TRUSTED = {
    f"{__name__}.{cls.__name__}"
    for cls in (MarkerCall, Gadget, Hashed, SideEffectState, LooksUpState, Slotted, Appender, ItemSetter, Adder, ClassState)
}


def additems_on(marker: Path) -> bytes:
    """ADDITEMS on an instance of a trusted class with an `add` method (no pickler writes this; a crafted stream can)."""
    name = str(marker).encode()
    return b"\x80\x04c" + __name__.encode() + b"\nAdder\n)\x81(X" + len(name).to_bytes(4, "little") + name + b"\x90."


def slotted(marker: Path) -> Slotted:
    value = Slotted.__new__(Slotted)
    object.__setattr__(value, "_path", str(marker))
    return value


def build_on_class(marker: Path) -> bytes:
    state = pickle.dumps({"path": str(marker)}, protocol=2)[2:-1]
    return b"\x80\x02c" + __name__.encode() + b"\nClassState\n" + state + b"b."


@dataclass(frozen=True)
class Payload:
    """A pickle stream that writes `marker` when unpickled without restriction."""

    make: Callable[[Path], bytes]
    refusal: str


def dumps(build: Callable[[Path], Any]) -> Callable[[Path], bytes]:
    return lambda marker: pickle.dumps(build(marker), protocol=4)


def nested_object_array(marker: Path) -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"coef_": np.array([Call(open, str(marker), "w")], dtype=object)}, buffer)
    return buffer.getvalue()


def touch(marker: Path) -> str:
    return f"touch {marker}"


def copy_into(marker: Path) -> Call:
    source = marker.with_name("source")
    source.write_text("copied")
    return Call(shutil.copyfile, str(source), str(marker))


PAYLOADS: dict[str, Payload] = {
    "os-system": Payload(dumps(lambda m: Call(os.system, touch(m))), r"refers to posix\.system"),
    "subprocess-check-call": Payload(dumps(lambda m: Call(subprocess.check_call, ["touch", str(m)])), r"subprocess\.check_call"),
    "subprocess-getoutput": Payload(dumps(lambda m: Call(subprocess.getoutput, touch(m))), r"subprocess\.getoutput"),
    "eval": Payload(dumps(lambda m: Call(eval, code(m))), r"builtins\.eval"),
    "exec": Payload(dumps(lambda m: Call(exec, code(m))), r"builtins\.exec"),
    "exec-compile": Payload(dumps(lambda m: Call(exec, Call(compile, code(m), "<payload>", "exec"))), r"builtins\.exec"),
    "open": Payload(dumps(lambda m: Call(open, str(m), "w")), r"io\.open"),
    "getattr-import": Payload(dumps(lambda m: Call(Call(getattr, Call(__import__, "os"), "system"), touch(m))), r"builtins\.getattr"),
    "getattr-importlib": Payload(
        dumps(lambda m: Call(Call(builtins.getattr, Call(importlib.import_module, "os"), "system"), touch(m))), r"builtins\.getattr"
    ),
    "importlib-attrgetter": Payload(
        dumps(lambda m: Call(Call(operator.attrgetter("system"), Call(importlib.import_module, "os")), touch(m))), r"operator\.attrgetter"
    ),
    "methodcaller": Payload(
        dumps(lambda m: Call(operator.methodcaller("system", touch(m)), Call(importlib.import_module, "os"))), r"operator\.methodcaller"
    ),
    "methodcaller-path-touch": Payload(dumps(lambda m: Call(operator.methodcaller("touch"), PosixPath(m))), r"operator\.methodcaller"),
    "pkgutil-resolve-name": Payload(dumps(lambda m: Call(Call(pkgutil.resolve_name, "os:system"), touch(m))), r"pkgutil\.resolve_name"),
    "pydoc-locate": Payload(dumps(lambda m: Call(Call(pydoc.locate, "os.system"), touch(m))), r"pydoc\.locate"),
    "timeit": Payload(dumps(lambda m: Call(timeit.timeit, code(m), "pass", time.perf_counter, 1)), r"timeit\.timeit"),
    "numpy-runstring": Payload(dumps(lambda m: Call(runstring, code(m), {})), r"numpy\.testing\._private\.utils\.runstring"),
    "runpy-run-code": Payload(dumps(lambda m: Call(runpy._run_code, code(m), {})), r"runpy\._run_code"),  # type: ignore[attr-defined]
    "shutil-copyfile": Payload(dumps(copy_into), r"shutil\.copyfile"),
    "os-mkdir": Payload(dumps(lambda m: Call(os.mkdir, str(m))), r"posix\.mkdir"),
    "functools-partial": Payload(dumps(lambda m: Call(functools.partial(os.system, touch(m)))), r"posix\.system"),
    "nested-object-array": Payload(nested_object_array, r"io\.open"),
    "copyreg-reconstructor-gadget": Payload(
        dumps(lambda m: Call(copyreg._reconstructor, list, Gadget(), str(m))),  # type: ignore[attr-defined]
        r"passes a Gadget object to copyreg\._reconstructor",
    ),
    "randomstate-ctor-gadget": Payload(
        dumps(lambda m: Call(numpy_random_pickle.__randomstate_ctor, str(m), MarkerCall())),
        r"passes a MarkerCall object built in the stream to numpy\.random\._pickle\.__randomstate_ctor",
    ),
    "generator-ctor-gadget": Payload(
        dumps(lambda m: Call(numpy_random_pickle.__generator_ctor, str(m), MarkerCall())),
        r"passes a MarkerCall object built in the stream",
    ),
    "bit-generator-ctor-hash-gadget": Payload(
        dumps(lambda m: Call(numpy_random_pickle.__bit_generator_ctor, Hashed(str(m)))),
        r"passes a Hashed object to numpy\.random\._pickle\.__bit_generator_ctor",
    ),
    "kd-tree-newobj-gadget": Payload(
        dumps(lambda m: Call(_kd_tree.newObj, gadget(str(m)))),
        r"passes a Gadget object to sklearn\.neighbors\._kd_tree\.newObj",
    ),
    "calls-an-instance": Payload(
        dumps(lambda m: Call(MarkerCall(), str(m))), "calls a MarkerCall object that is not an allow-listed global"
    ),
    "setstate-side-effect": Payload(dumps(lambda m: SideEffectState(str(m))), r"SideEffectState state hook is not data-only"),
    "getattr-answers-setstate": Payload(dumps(lambda m: LooksUpState(str(m))), r"LooksUpState state hook is not data-only"),
    "slot-state-setter": Payload(dumps(slotted), "sets slot attributes of a"),
    "build-on-a-class": Payload(build_on_class, r"sets the state of .*ClassState, which is not an instance built by the stream"),
    "appends-on-an-object": Payload(dumps(lambda m: Appender(str(m))), r"adds items to a .*Appender, which is not a list"),
    "setitems-on-an-object": Payload(dumps(lambda m: ItemSetter(str(m))), r"sets items on a .*ItemSetter, which is not a plain dict"),
    "additems-on-an-object": Payload(additems_on, r"adds items to a .*Adder, which is not a set"),
}


def unrestricted_load(data: bytes) -> Any:
    return joblib.load(io.BytesIO(data))


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_control_each_payload_fires_without_the_restricted_unpickler(payload: Payload, marker: Path) -> None:
    data = payload.make(marker)
    with contextlib.suppress(Exception):  # some payloads fail after their side effect (their result is not a model)
        unrestricted_load(data)
    assert marker.exists()


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_each_payload_is_refused_before_it_runs(payload: Payload, marker: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(payload.make(marker))
    with pytest.raises(UnsafeModelError, match=payload.refusal):
        load_joblib(path, TRUSTED)
    assert not marker.exists()
