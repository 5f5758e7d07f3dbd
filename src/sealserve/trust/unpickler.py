"""A joblib unpickler that resolves, calls and sets state only as the pickle policy allows, before anything runs.

Every opcode that runs code is covered: globals (find_class), calls (REDUCE, NEWOBJ, OBJ, INST, and the classes or
callables passed to numpy/copyreg helpers), state (BUILD: only reviewed __setstate__; an XGBoost or LightGBM Booster is
rebuilt from its structurally checked model instead), and the container opcodes that
call methods on whatever object is on the stack (APPEND, SETITEM, ADDITEMS: only real containers).
"""

from __future__ import annotations

import functools
import importlib
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

from joblib import numpy_pickle

from sealserve.errors import UnsafeModelError
from sealserve.trust.boosters.rebuild import rebuild_booster, rebuilds_state
from sealserve.trust.policy.memory import ArrayBudget
from sealserve.trust.policy.pickle_rules import CLASS_ARGUMENTS, DATA_ONLY_STATE, PicklePolicy
from sealserve.trust.policy.trusted_types import PARTIAL, PARTIAL_FUNCTIONS

PARENT = numpy_pickle.NumpyUnpickler.dispatch
DICT_SETITEMS = (dict.__setitem__, OrderedDict.__setitem__)


def qualified_name(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def state_hooks(cls: type, hook: str) -> list[str]:
    """The classes in `cls`'s MRO defining `hook`: BUILD runs __setstate__ (and each may call super), or, without
    one, looks it up through __getattr__."""
    return [qualified_name(owner) for owner in cls.__mro__ if hook in vars(owner)]


class RestrictedArrayWrapper(numpy_pickle.NumpyArrayWrapper):  # type: ignore[misc]
    """joblib's array placeholder; its fields come from the stream, so they are checked before an array is read."""

    def read_array(self, unpickler: Any, *args: Any) -> Any:
        import numpy

        shape_ok = isinstance(self.shape, tuple) and all(isinstance(n, int) and n >= 0 for n in self.shape)
        plain = self.subclass in (numpy.ndarray, numpy.matrix, numpy.memmap) and self.order in ("C", "F")
        if not (isinstance(self.dtype, numpy.dtype) and shape_ok and plain):
            raise UnsafeModelError(f"{unpickler.path.name}: an array header is not a plain ndarray description")
        if not self.dtype.hasobject:
            unpickler.budget.take(self.shape, self.dtype.itemsize)  # before joblib allocates what the header declares
            return super().read_array(unpickler, *args)
        return RestrictedUnpickler(unpickler.path, unpickler.file_handle, unpickler.policy, unpickler.budget).load()


class RestrictedUnpickler(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
    """Only objects that came out of `find_class` may be called, and only constructors among them."""

    dispatch = PARENT.copy()

    def __init__(self, path: Path, stream: Any, policy: PicklePolicy, budget: ArrayBudget) -> None:
        super().__init__(str(path), stream, True)
        self.path = path
        self.policy = policy
        self.budget = budget
        self.resolved: dict[int, tuple[Any, str]] = {}

    def refuse(self, reason: str) -> UnsafeModelError:
        return UnsafeModelError(f"{self.path.name} {reason}")

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            found: Any = RestrictedArrayWrapper
        elif self.policy.allows(qualified):
            found = getattr(importlib.import_module(module), name, None)
            if found is None or (isinstance(found, type) and getattr(found, "__module__", None) != module):
                raise self.refuse(f"refers to {qualified}, which is not defined there")  # imported there (GzipFile, Thread, …)
        else:
            raise self.refuse(f"refers to {qualified}, which is not on the unpickling allow-list")
        self.resolved[id(found)] = (found, qualified)
        return found

    def name_of(self, target: Any) -> str | None:
        entry = self.resolved.get(id(target))
        return entry[1] if entry is not None and entry[0] is target else None

    def check_call(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
        """`target(*args)` may run only for a listed constructor; callables it is given must be listed too."""
        name = self.name_of(target)
        if name is None:
            raise self.refuse(f"calls a {type(target).__name__} object that is not an allow-listed global")
        if name not in self.policy.constructors:
            raise self.refuse(f"calls {name}, which is allow-listed as a value only, never called while unpickling")
        for value in [*args, *(kwargs or {}).values()]:
            if callable(value) and self.name_of(value) is None:
                raise self.refuse(f"passes a {type(value).__name__} object built in the stream to {name}")
        for position in CLASS_ARGUMENTS.get(name, ()):
            if position < len(args) and not self.inert_or_constructor(args[position]):
                what = self.name_of(args[position]) or f"a {type(args[position]).__name__} object"
                raise self.refuse(f"passes {what} to {name}, which would call or instantiate it")
        if name == PARTIAL:
            self.check_partial(args[0] if args else None)

    def inert_or_constructor(self, value: Any) -> bool:
        """A helper's class argument: a listed constructor, a name it looks up itself, or a bit generator it wraps."""
        import numpy

        return self.name_of(value) in self.policy.constructors or isinstance(value, str | numpy.random.BitGenerator)

    def check_partial(self, function: Any) -> None:
        name = self.name_of(function)
        if name not in PARTIAL_FUNCTIONS:
            raise self.refuse(f"wraps {name or type(function).__name__} in {PARTIAL}; only {', '.join(PARTIAL_FUNCTIONS)} may be")

    def check_state(self, instance: Any, state: Any) -> None:
        """BUILD runs the class's state hooks: every one in its MRO must be reviewed as data-only."""
        if isinstance(instance, type) or self.name_of(instance) is not None:
            what = self.name_of(instance) or qualified_name(instance)
            raise self.refuse(f"sets the state of {what}, which is not an instance built by the stream")
        setters = state_hooks(type(instance), "__setstate__")
        unreviewed = [hook for hook in setters or state_hooks(type(instance), "__getattr__") if hook not in DATA_ONLY_STATE]
        if unreviewed:
            raise self.refuse(f"sets the state of a {qualified_name(type(instance))}, whose {unreviewed[0]} state hook is not data-only")
        if not setters and isinstance(state, tuple):
            raise self.refuse(f"sets slot attributes of a {qualified_name(type(instance))}, which would run its setters")
        if isinstance(instance, functools.partial):
            self.check_partial(state[0] if isinstance(state, tuple) and state else None)

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        self.check_call(klass, tuple(args))
        super()._instantiate(klass, args)

    def load_reduce(self) -> None:
        self.check_call(self.stack[-2], tuple(self.stack[-1]) if isinstance(self.stack[-1], tuple) else ())
        PARENT[pickle.REDUCE[0]](self)

    def load_newobj(self) -> None:
        self.check_class(self.stack[-2], self.stack[-1], {})
        PARENT[pickle.NEWOBJ[0]](self)

    def load_newobj_ex(self) -> None:
        self.check_class(self.stack[-3], self.stack[-2], self.stack[-1])
        PARENT[pickle.NEWOBJ_EX[0]](self)

    def check_class(self, target: Any, args: Any, kwargs: Any) -> None:
        if not isinstance(target, type) or not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise self.refuse(f"creates an object of a {type(target).__name__}, which is not a class")
        self.check_call(target, args, kwargs)

    def load_build(self) -> None:
        if rebuilds_state(self.stack[-2]):  # an XGBoost or LightGBM Booster: built from its checked model, not its state
            rebuild_booster(self.stack[-2], self.stack.pop(), self.path.name)
            return
        self.check_state(self.stack[-2], self.stack[-1])
        PARENT[pickle.BUILD[0]](self)

    def load_append(self) -> None:
        self.check_container(self.stack[-2], list)
        PARENT[pickle.APPEND[0]](self)

    def load_appends(self) -> None:
        self.check_container(self.metastack[-1][-1], list)
        PARENT[pickle.APPENDS[0]](self)

    def load_setitem(self) -> None:
        self.check_mapping(self.stack[-3])
        PARENT[pickle.SETITEM[0]](self)

    def load_setitems(self) -> None:
        self.check_mapping(self.metastack[-1][-1])
        PARENT[pickle.SETITEMS[0]](self)

    def load_additems(self) -> None:
        self.check_container(self.metastack[-1][-1], set)
        PARENT[pickle.ADDITEMS[0]](self)

    def check_container(self, target: Any, kind: type) -> None:
        if type(target) is not kind:
            raise self.refuse(f"adds items to a {qualified_name(type(target))}, which is not a {kind.__name__}")

    def check_mapping(self, target: Any) -> None:
        if not (isinstance(target, dict) and type(target).__setitem__ in DICT_SETITEMS):
            raise self.refuse(f"sets items on a {qualified_name(type(target))}, which is not a plain dict")

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems
