"""Where settings and task modules come from: config objects, `imports`, autodiscovery.

Celery's loader in a few functions. A config source is a module, a class, any object or a
mapping; `"pkg.module"`, `"pkg.module:attr"` and `"pkg.module.attr"` name one and are
imported only when the configuration is first read, so `"django.conf:settings"` is read
lazily (and read live, as Celery does: a later change of a Django setting is seen).
Django is never imported by hare_compat itself: only when a project points at it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from hare.errors import ConfigurationError

__all__ = (
    "discover",
    "find_related_module",
    "import_modules",
    "resolve",
    "source_get",
    "source_keys",
    "symbol_by_name",
)

_MISSING = object()


def symbol_by_name(path: str) -> Any:
    """Import `"module:attr"` (or `"module.attr"`) and return the attribute, e.g. a router."""
    module_name, colon, attr = path.partition(":")
    if not colon:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(f"{path!r} is not MODULE:NAME or MODULE.NAME")
    module = _import(module_name)
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, _MISSING)
        if found is _MISSING:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}")
    return found


def _import(name: str) -> ModuleType:
    if os.getcwd() not in sys.path:  # as Celery's import_from_cwd
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(name)


def resolve(obj: object) -> object:
    """The config source `obj` names: itself, unless it is a module or `module:attr` path."""
    if not isinstance(obj, str):
        return obj
    if ":" in obj:
        return symbol_by_name(obj)
    try:
        return _import(obj)
    except ImportError as exc:
        if "." not in obj or exc.name != obj:
            raise
        return symbol_by_name(obj)  # `pkg.module.attr`


def source_get(source: object, key: str) -> tuple[bool, Any]:
    """`(True, value)` if config source `source` defines `key`, else `(False, None)`."""
    if isinstance(source, Mapping):
        if key in source:
            return True, source[key]
        return False, None
    value = getattr(source, key, _MISSING)
    return (False, None) if value is _MISSING else (True, value)


def source_keys(source: object) -> list[str]:
    """The names a config source defines (public attributes of an object or module)."""
    if isinstance(source, Mapping):
        return [key for key in source if isinstance(key, str)]
    return [key for key in dir(source) if not key.startswith("_")]


def find_related_module(package: str, related_name: str | None) -> ModuleType | None:
    """Import `package.related_name` if it exists (Celery's `find_related_module`).

    A missing `tasks` module is not an error; an import error inside one is raised.
    """
    try:
        module = importlib.import_module(package)
        if not related_name:
            return module
    except ModuleNotFoundError:
        # Django allows an AppConfig class path in INSTALLED_APPS: try one level up.
        package = package.rpartition(".")[0]
        if not package:
            raise
    module_name = f"{package}.{related_name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def import_modules(names: Iterable[str]) -> list[ModuleType]:
    """Import each module of `imports` / `include`, in order."""
    if isinstance(names, str):
        names = [names]
    return [_import(name) for name in names]


def discover(
    packages: Iterable[str] | Callable[[], Iterable[str]], related_name: str | None
) -> list[ModuleType]:
    """Import `<package>.<related_name>` for each package; `packages` may be a callable."""
    listed = packages() if callable(packages) else packages
    if isinstance(listed, str):
        raise ConfigurationError(f"autodiscover_tasks() takes a list of packages, not {listed!r}")
    found = (find_related_module(package, related_name) for package in listed)
    return [module for module in found if module is not None]
