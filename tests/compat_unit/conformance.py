"""Celery's public API next to hare_compat's: what to compare, how, and the guide's tables.

`walk()` pairs every public name of Celery's modules (their `__all__`), the public methods of
each class among them, and the `app.control`, `app.control.inspect()` and `app.conf`
objects, with hare_compat's object of the same name. `differences()` describes how two
callables' signatures differ (parameter names, order, kinds, defaults), in the words the
migration guide's "Signature differences" table must use, so the table and the code cannot
drift apart: `listed()` reads that table and the "Not provided" one.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-celery.md"

#: Celery's modules that hare_compat mirrors (`celery.x` -> `hare_compat.x`), the most
#: specific first: a name exported by several is named after the first that exports it.
MODULES = (
    "celery.app.task",
    "celery.result",
    "celery.canvas",
    "celery.schedules",
    "celery.exceptions",
    "celery.signals",
    "celery.states",
    "celery.utils.log",
    "celery",
)

#: Attributes of Celery's app that are classes bound to the app (`app.AsyncResult(id)`).
APP_CLASSES = (
    "AsyncResult",
    "GroupResult",
    "ResultSet",
    "Task",
    "Worker",
    "WorkController",
    "Beat",
)

#: Methods defined here are the language's (dict's, Exception's, str's): not compared.
_LANGUAGE_MODULES = frozenset({"builtins"})


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Pair:
    """Celery's object called `name` and hare_compat's (`MISSING` when it has none; a name
    only hare_compat exports has `celery` MISSING)."""

    name: str
    celery: Any
    hare: Any
    #: Whether Celery's object is a callable whose signature is compared.
    callable: bool


def _public(module: types.ModuleType) -> list[str]:
    return [name for name in module.__all__ if not name.startswith("_")]


def _defined_in(cls: type, name: str) -> Any:
    owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
    if owner is None or owner.__module__ in _LANGUAGE_MODULES:
        return MISSING
    return vars(owner)[name]


def _real_name(cls: type) -> str:
    """The class's own name (a proxy class may answer for the object it stands for)."""
    name: str = type.__dict__["__name__"].__get__(cls)
    return name


def method_names(cls: type) -> list[str]:
    """The public methods of `cls` (and `__call__`), the language's own excepted."""
    names = []
    for name in dir(cls):
        if name.startswith("_") and name != "__call__":
            continue
        raw = _defined_in(cls, name)
        if isinstance(raw, types.FunctionType | classmethod | staticmethod):
            names.append(name)
    return sorted(names)


class _Walk:
    """Pairs, each class pair walked once (a class reached twice is walked once)."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()  # pairs whose methods were walked
        self.made: set[tuple[int, int]] = set()  # pairs whose constructors were compared
        self.instance_classes: set[str] = set()

    def methods(self, name: str, celery_cls: type, hare_cls: Any) -> Iterator[Pair]:
        if (id(celery_cls), id(hare_cls)) in self.seen or celery_cls is hare_cls:
            return  # walked already, or the same class (a `logging.Logger`)
        self.seen.add((id(celery_cls), id(hare_cls)))
        for method in method_names(celery_cls):
            found = getattr(hare_cls, method, MISSING)
            yield Pair(f"{name}.{method}", getattr(celery_cls, method), found, True)

    def one(self, name: str, celery_obj: Any, hare_obj: Any) -> Iterator[Pair]:
        key = (id(celery_obj), id(hare_obj))
        if inspect.isclass(celery_obj):
            if key not in self.made:
                self.made.add(key)
                yield Pair(name, celery_obj, hare_obj, True)
            if inspect.isclass(hare_obj):
                yield from self.methods(name, celery_obj, hare_obj)
        elif isinstance(celery_obj, types.FunctionType | types.BuiltinFunctionType):
            if key not in self.seen:
                self.seen.add(key)
                yield Pair(name, celery_obj, hare_obj, True)
        elif type(celery_obj).__module__ in _LANGUAGE_MODULES or hare_obj is MISSING:
            yield Pair(name, celery_obj, hare_obj, False)  # a constant (or a lazy module)
        else:  # an instance, such as a signal: its class's methods, once per class
            cls = type(celery_obj)
            # Named after Celery's class; after the instance when hare_compat's differs.
            class_name = f"{cls.__module__}.{_real_name(cls)}"
            walked = class_name in self.instance_classes
            self.instance_classes.add(class_name)
            yield from self.methods(name if walked else class_name, cls, type(hare_obj))


def walk(celery_app: Any, hare_app: Any) -> Iterator[Pair]:
    """Every pair to compare, once each."""
    walker = _Walk()
    for module_name in MODULES:
        celery_module = importlib.import_module(module_name)
        hare_module = importlib.import_module("hare_compat" + module_name[len("celery") :])
        celery_names = _public(celery_module)
        for attr in celery_names:
            found = getattr(hare_module, attr, MISSING)
            yield from walker.one(f"{module_name}.{attr}", getattr(celery_module, attr), found)
        # What hare_compat exports besides: Celery's object of that name when Celery has
        # one (outside its `__all__`), else a hare addition (`celery` is MISSING).
        for attr in _public(hare_module):
            if attr in celery_names:
                continue
            theirs, ours = getattr(celery_module, attr, MISSING), getattr(hare_module, attr)
            if theirs is MISSING:
                yield Pair(f"{module_name}.{attr}", MISSING, ours, False)
            else:
                yield from walker.one(f"{module_name}.{attr}", theirs, ours)

    from celery.app.control import Control, Inspect
    from celery.app.utils import Settings

    control, conf = hare_app.control, hare_app.conf
    yield from walker.one("celery.app.control.Control", Control, type(control))
    yield from walker.one("celery.app.control.Inspect", Inspect, type(control.inspect()))
    yield from walker.one("celery.app.utils.Settings", Settings, type(conf))
    # Classes Celery binds to its app and control (cached properties, not methods).
    yield Pair(
        "celery.app.control.Control.inspect",
        celery_app.control.inspect,
        getattr(control, "inspect", MISSING),
        True,
    )
    for attr in APP_CLASSES:
        found = getattr(hare_app, attr, MISSING)
        yield Pair(f"celery.Celery.{attr}", getattr(celery_app, attr), found, True)


# -- comparing ---------------------------------------------------------------------------------

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
    inspect.Parameter.VAR_POSITIONAL: "variadic",
    inspect.Parameter.KEYWORD_ONLY: "keyword-only",
    inspect.Parameter.VAR_KEYWORD: "variadic keywords",
}


def _spelled(param: inspect.Parameter) -> str:
    prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(param.kind.name, "")
    return f"`{prefix}{param.name}`"


def shown(value: Any) -> str:
    """A default (or a constant) as the table shows it, the same in every process."""
    if value is inspect.Parameter.empty:
        return "required"
    if type(value) is object:
        return "a sentinel"
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(value)!r})"
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType | type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def _same(one: Any, other: Any) -> bool:
    if type(one) is object and type(other) is object:
        return True  # two "not given" sentinels
    try:
        return bool(one == other) and type(one) is type(other)
    except Exception:
        return one is other


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def differences(pair: Pair) -> str:
    """How hare_compat's object differs from Celery's ("" when it does not)."""
    if not pair.callable:
        if _same(pair.celery, pair.hare):
            return ""
        return f"value {shown(pair.hare)} (Celery: {shown(pair.celery)})"
    if not callable(pair.hare):
        return "not callable"
    celery_sig, hare_sig = _signature(pair.celery), _signature(pair.hare)
    if celery_sig is None or hare_sig is None:
        return "" if celery_sig is hare_sig else "signature cannot be inspected"
    theirs, ours = celery_sig.parameters, hare_sig.parameters
    parts = []
    lacking = [_spelled(p) for name, p in theirs.items() if name not in ours]
    if lacking:
        parts.append("lacks " + ", ".join(lacking))
    extra = [_spelled(p) for name, p in ours.items() if name not in theirs]
    if extra:
        parts.append("adds " + ", ".join(extra))
    common = [name for name in theirs if name in ours]
    if [name for name in ours if name in theirs] != common:
        parts.append("order " + ", ".join(f"`{name}`" for name in ours if name in theirs))
    for name in common:
        celery_param, hare_param = theirs[name], ours[name]
        if celery_param.kind != hare_param.kind:
            parts.append(
                f"`{name}` {_KINDS[hare_param.kind]} (Celery: {_KINDS[celery_param.kind]})"
            )
        if not _same(celery_param.default, hare_param.default):
            parts.append(
                f"`{name}` default {shown(hare_param.default)} "
                f"(Celery: {shown(celery_param.default)})"
            )
    return "; ".join(parts)


# -- the guide's tables ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    cells: tuple[str, ...]


def table(marker: str) -> dict[str, Row]:
    """The rows between `<!-- {marker}: ... -->` and `<!-- {marker}: end -->` in the guide,
    by name (the first cell, without its backticks)."""
    text = GUIDE.read_text()
    start = text.index(f"<!-- {marker}:")
    end = text.index(f"<!-- {marker}: end -->", start)
    rows: dict[str, Row] = {}
    for line in text[start:end].splitlines()[3:]:  # the marker, the header, the rule
        cells = tuple(_unescape(cell.strip()) for cell in re.split(r"(?<!\\)\|", line)[1:-1])
        name = cells[0].strip("`")
        if name in rows:
            raise AssertionError(f"{marker}: {name} is listed twice")
        rows[name] = Row(name, cells[1:])
    return rows


def _unescape(cell: str) -> str:
    return cell.replace("\\|", "|")


def row(name: str, *cells: str) -> str:
    """A table line, as the guide must have it."""
    return "| " + " | ".join([f"`{name}`", *(c.replace("|", "\\|") for c in cells)]) + " |"
