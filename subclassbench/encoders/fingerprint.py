"""What a Python object's behaviour depends on, hashed: a user's ``nn.Module`` and ``embed`` function.

A spec (``timm:resnet50`` + a weights file) is identified by its library's version and the weights'
sha256. A module handed to :func:`subclassbench.evaluate` is not: its features also depend on code
(``forward``, an ``embed`` function, the helpers they call) and on plain attributes (``self.scale =
2.0``) that no state dict holds. A cache keyed on the state dict alone serves one model's features to
another, silently: the worst failure a benchmark can have.

:func:`behaviour_fingerprint` hashes everything it can see and can vouch for:

* classes and functions from versioned libraries (torch, timm, …): their module, name and the library's
  version (a new release is a new model);
* the user's classes and functions: their bytecode, constants and names, default arguments, closure
  cells, and the globals their code reads, recursively;
* plain values (numbers, strings, tuples, dicts, tensors, arrays) by content;
* a module's own attributes that are not parameters, buffers or submodules.

Anything else (an open file, a random generator, a C extension object, too deep a graph) makes the
fingerprint *unreliable*: :class:`Fingerprint` then carries the reason, and the evaluation does not
read or fill the feature cache unless the caller supplies a ``cache_key``.
"""

from __future__ import annotations

import hashlib
import sys
import types
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

# Packages whose code is identified by their installed version rather than by hashing it.
VERSIONED = ("torch", "torchvision", "timm", "open_clip", "transformers", "numpy", "scipy", "einops", "subclassbench")
DISTRIBUTIONS = {"open_clip": "open_clip_torch"}
MAX_DEPTH = 12
MAX_OBJECTS = 5000  # distinct objects visited: more is a graph too large to vouch for
# What every nn.Module instance holds for torch's own bookkeeping (hooks, registries): not behaviour.
MODULE_INTERNALS = frozenset(vars(nn.Module())) - {"training"}


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    unreliable: str | None = None  # why the digest cannot vouch for the behaviour (None: it can)


def _version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return f"python=={sys.version_info.major}.{sys.version_info.minor}"
    if top not in VERSIONED:
        return None
    try:
        return f"{top}=={metadata.version(DISTRIBUTIONS.get(top, top))}"
    except metadata.PackageNotFoundError:
        return f"{top}==unknown"


class _Hasher:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.unreliable: str | None = None
        self.seen: dict[int, int] = {}  # id → visit number (cycles and shared objects hash once)
        # Every object given a number stays alive until hashing ends: an id is unique only while its object
        # lives, and a container built on the fly (a module's parameter dict) would free its id for the next.
        self.alive: list[Any] = []

    def put(self, *parts: object) -> None:
        self.digest.update(("\x1f".join(str(p) for p in parts) + "\x1e").encode())

    def fail(self, reason: str) -> None:
        if self.unreliable is None:
            self.unreliable = reason

    def value(self, obj: Any, depth: int = 0) -> None:
        if self.unreliable is not None:
            return
        if depth > MAX_DEPTH or len(self.seen) > MAX_OBJECTS:
            self.fail("its code and data form too large a graph to fingerprint")
            return
        if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
            self.put(type(obj).__name__, repr(obj))
            return
        key = id(obj)
        if key in self.seen:
            self.put("ref", self.seen[key])
            return
        self.seen[key] = len(self.seen)
        self.alive.append(obj)
        if isinstance(obj, torch.Tensor):
            data = obj.detach().to("cpu").contiguous()
            self.put("tensor", data.dtype, tuple(data.shape))
            self.digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                self.fail("it holds a numpy array of Python objects")
                return
            self.put("ndarray", obj.dtype.str, obj.shape)
            self.digest.update(np.ascontiguousarray(obj).tobytes())
        elif isinstance(obj, tuple | list | frozenset | set):
            items = sorted(obj, key=repr) if isinstance(obj, frozenset | set) else obj
            self.put(type(obj).__name__, len(items))
            for item in items:
                self.value(item, depth + 1)
        elif isinstance(obj, dict):
            self.put("dict", len(obj))
            for k in sorted(obj, key=repr):
                self.value(k, depth + 1)
                self.value(obj[k], depth + 1)
        elif isinstance(obj, nn.Module):
            self.module(obj, depth + 1)
        elif isinstance(obj, types.ModuleType):
            self.put("module", obj.__name__, _version(obj.__name__) or "")
        elif isinstance(obj, types.MethodType):
            self.value(obj.__func__, depth + 1)
            self.value(obj.__self__, depth + 1)
        elif isinstance(obj, types.FunctionType):
            self.function(obj, depth + 1)
        elif isinstance(obj, type):
            self.cls(obj, depth + 1)
        elif isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
            owner = getattr(obj, "__module__", None) or type(getattr(obj, "__self__", None)).__module__
            version = _version(owner or "")
            if version is None and owner not in ("builtins", "math", "operator", "functools", "itertools"):
                self.fail(f"it calls {getattr(obj, '__qualname__', obj)!r}, built-in code of an unversioned module")
                return
            self.put("builtin", owner, getattr(obj, "__qualname__", repr(obj)), version or "")
        elif isinstance(obj, torch.dtype | torch.device | torch.Size):
            self.put("torch", repr(obj))
        else:
            version = _version(type(obj).__module__)
            if version is not None and hasattr(obj, "__dict__"):  # a library object: its class and its state
                self.put("object", type(obj).__module__, type(obj).__qualname__, version)
                self.value(vars(obj), depth + 1)
            elif type(obj).__module__ != "builtins" and hasattr(obj, "__dict__") and not hasattr(obj, "__slots__"):
                self.cls(type(obj), depth + 1)  # a user's object: its class's code and its attributes
                self.value(vars(obj), depth + 1)
            else:
                self.fail(f"it depends on a {type(obj).__qualname__}, which cannot be fingerprinted")

    def code(self, code: types.CodeType, depth: int) -> None:
        self.put("code", code.co_name, code.co_argcount, code.co_kwonlyargcount, code.co_flags, code.co_names)
        self.put(code.co_varnames, code.co_freevars, code.co_cellvars)
        self.digest.update(code.co_code)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, depth + 1)
            else:
                self.value(const, depth + 1)

    def function(self, fn: types.FunctionType, depth: int) -> None:
        version = _version(fn.__module__ or "") if _importable(fn) else None
        if version is not None:
            self.put("function", fn.__module__, fn.__qualname__, version)
            return
        self.put("function", fn.__module__, fn.__qualname__)
        self.code(fn.__code__, depth)
        self.value(fn.__defaults__, depth)
        self.value(fn.__kwdefaults__, depth)
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later)
                contents = None
            self.value(contents, depth)
        # The globals its code reads (helpers, constants); names it only calls as attributes are in co_names too.
        names = _global_names(fn.__code__)
        for name in sorted(names):
            if name not in fn.__globals__:
                continue
            target = fn.__globals__[name]
            self.put("global", name)
            self.value(target, depth)
            if isinstance(target, types.ModuleType) and _version(target.__name__) is None and not _stdlib(target):
                for attribute in sorted(names):  # mylib.helper(x): the user module's helper is code too
                    if hasattr(target, attribute):
                        self.put("attribute", name, attribute)
                        self.value(getattr(target, attribute), depth + 1)

    def cls(self, cls: type, depth: int) -> None:
        version = _version(cls.__module__) if _importable(cls) else None
        if version is not None:
            self.put("class", cls.__module__, cls.__qualname__, version or "")
            return
        self.put("class", cls.__module__, cls.__qualname__)
        for base in cls.__mro__[1:]:
            self.cls(base, depth + 1) if base is not object else None
        for name, member in sorted(vars(cls).items()):
            dunder = name.startswith("__") and name.endswith("__")
            if (dunder and not isinstance(member, types.FunctionType)) or name.startswith("_abc"):
                continue  # Python's own class bookkeeping; dunder methods (__init__, __call__) are code
            self.put("member", name)
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if isinstance(member, property):
                for accessor in (member.fget, member.fset):
                    self.value(accessor, depth + 1)
            elif isinstance(member, types.FunctionType):
                self.function(member, depth + 1)
            else:
                self.value(member, depth + 1)

    def module(self, module: nn.Module, depth: int) -> None:
        """Class code, own attributes and submodules; parameters and buffers are the state dict's (hashed apart)."""
        self.cls(type(module), depth)
        state = {k: v for k, v in vars(module).items() if k not in MODULE_INTERNALS}
        self.value(state, depth + 1)
        self.value(dict(module._parameters), depth + 1)  # a module reached through a closure has its own weights
        self.value(dict(module._buffers), depth + 1)
        self.put("buffers-persistent", sorted(module._non_persistent_buffers_set))
        for name, child in module._modules.items():
            self.put("child", name)
            if child is not None:
                self.value(child, depth + 1)
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for hook in hooks.values():  # hooks change what a module returns
                self.value(hook, depth + 1)


def _importable(obj: Any) -> bool:
    """Whether ``obj`` is what its module and qualified name lead to: only then does a library's version
    identify it (a class made by ``exec`` without a ``__name__`` says it lives in ``builtins``)."""
    target: Any = sys.modules.get(getattr(obj, "__module__", None) or "")
    for part in getattr(obj, "__qualname__", "<unknown>").split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


def _stdlib(module: types.ModuleType) -> bool:
    return module.__name__.split(".")[0] in sys.stdlib_module_names


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def behaviour_fingerprint(*objects: Any) -> Fingerprint:
    """sha256 over what ``objects`` compute with (code, attributes, closures), and why it is unreliable, if so."""
    hasher = _Hasher()
    hasher.put("behaviour-fingerprint", 1, sys.version_info[:2])  # bytecode differs between Python versions
    for obj in objects:
        hasher.value(obj)
    return Fingerprint(hasher.digest.hexdigest(), hasher.unreliable)
