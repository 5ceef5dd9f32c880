"""Drop-in fine-tuning methods: one module per method, discovered from this folder.

A method module `methods/<name>.py` defines

* ``Config``: a dataclass of the method's hyperparameters, including ``learning_rate``
  (the default the training loop uses when a profile does not sweep it);
* ``apply(model, config) -> model``: returns the model with only the method's parameters
  trainable. The frozen base weights are never modified.

Adding a file here is all it takes for the DAG to train and evaluate the method: the
default method list of a profile is ``available()``. Modules whose name starts with an
underscore are helpers, not methods.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from pathlib import Path

METHODS_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of every method module in this folder, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(METHODS_DIR)])
        if not info.name.startswith("_")
    )


def get(name: str) -> types.ModuleType:
    """The method module called ``name``; a clear error lists the known names."""
    names = available()
    if name not in names:
        raise KeyError(f"unknown method {name!r}; available methods: {', '.join(names)}")
    module = importlib.import_module(f"{__name__}.{name}")
    problems = check_contract(module)
    if problems:
        raise TypeError(f"methods/{name}.py does not meet the method contract: {'; '.join(problems)}. " + CONTRACT)
    return module


CONTRACT = ("A method module defines a dataclass `Config` with a `learning_rate: float` field that has a default, and "
            "`apply(model, config) -> model`, which returns the model with only the method's parameters trainable "
            "(methods/__init__.py).")


def check_contract(module: types.ModuleType) -> list[str]:
    """What ``module`` lacks of the method contract; empty when it has it all."""
    problems = []
    config_cls = getattr(module, "Config", None)
    if config_cls is None:
        problems.append("no `Config`")
    elif not dataclasses.is_dataclass(config_cls):
        problems.append("`Config` is not a dataclass")
    else:
        fields = {f.name: f for f in dataclasses.fields(config_cls)}
        rate = fields.get("learning_rate")
        if rate is None:
            problems.append("`Config` has no field `learning_rate`")
        elif rate.default is dataclasses.MISSING and rate.default_factory is dataclasses.MISSING:
            problems.append("`Config.learning_rate` has no default")
        required = [f.name for f in fields.values() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if required:
            problems.append(f"`Config` fields without a default: {', '.join(required)}")
    if not callable(getattr(module, "apply", None)):
        problems.append("no function `apply(model, config)`")
    return problems


def source_file(name: str) -> Path:
    """The file that defines a method, so the DAG can re-run its jobs when it changes."""
    return METHODS_DIR / f"{name}.py"


def make_config(name: str, overrides: dict | None = None):
    """Build ``Config`` for method ``name`` from a dict, rejecting unknown or ill-typed keys."""
    config_cls = get(name).Config
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(
                f"method {name!r}: unknown config key {key!r}; known keys: {', '.join(sorted(fields))}"
            )
        if not _matches(value, hints[key]):
            raise ValueError(
                f"method {name!r}: config key {key!r} must be {_describe(hints[key])}, got {value!r}"
            )
    return config_cls(**overrides)


def config_dict(config) -> dict:
    return dataclasses.asdict(config)


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))
