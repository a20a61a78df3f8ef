"""What every `hare` subcommand shares: exit codes and loading the app named on the line."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from hare.app import Hare
from hare.errors import ConfigurationError

__all__ = (
    "EXIT_BROKER",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "as_hare",
    "load_app",
    "load_object",
    "not_an_app",
    "worker_defaults",
)

#: 0 clean stop; 1 the worker failed (e.g. lost its broker for good); 2 bad usage or an app
#: that cannot be loaded; 3 the broker could not be reached at start.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BROKER = 0, 1, 2, 3


def as_hare(obj: object) -> Hare | None:
    """`obj` as a hare app: a `Hare`, or an object that makes one (`obj.__hare_app__()`).

    The second form is how other front ends (hare_compat's `Celery`) hand the CLI the app
    they configured, without hare knowing them.
    """
    if isinstance(obj, Hare):
        return obj
    make = getattr(type(obj), "__hare_app__", None)
    if make is None:
        return None
    app = make(obj)
    if not isinstance(app, Hare):
        raise ConfigurationError(f"{type(obj).__name__}.__hare_app__() did not return a hare app")
    return app


def worker_defaults(obj: object) -> dict[str, Any]:
    """Worker options an app object proposes (`obj.worker_options()`): concurrency, queues."""
    propose = getattr(type(obj), "worker_options", None)
    return dict(propose(obj)) if propose is not None else {}


def load_app(path: str) -> Hare:
    """Import `module:attr` (or `module` holding exactly one app) and return the app."""
    return as_hare(load_object(path)) or not_an_app(path)


def not_an_app(path: str) -> Hare:
    raise ConfigurationError(f"{path} is not a hare app")


def load_object(path: str) -> object:
    """Import `module:attr` (or `module` holding exactly one app) and return that object."""
    module_name, _, attr = path.partition(":")
    if not module_name:
        raise ConfigurationError(f"{path!r} is not MODULE or MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (looked in {sys.path[0]!r} and the "
                f"installed packages): {exc}"
            ) from exc
        raise
    if attr:
        app = getattr(module, attr, None)
        if isinstance(app, Hare) or hasattr(type(app), "__hare_app__"):
            return app
        found = "nothing" if app is None else type(app).__name__
        raise ConfigurationError(f"{module_name}:{attr} is {found}, not a hare app")
    apps = {
        id(v): v
        for v in vars(module).values()
        if isinstance(v, Hare) or hasattr(type(v), "__hare_app__")
    }
    if len(apps) != 1:
        raise ConfigurationError(
            f"module {module_name!r} holds {len(apps)} hare apps; name one as {module_name}:ATTR"
        )
    return next(iter(apps.values()))
