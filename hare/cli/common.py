"""What every `hare` subcommand shares: exit codes, naming and loading the app, output helpers.

The app is found the way Celery's `-A` finds it: `MODULE:ATTR`, or `MODULE` whose `app` or
`celery` attribute is the app, or a package whose `celery` submodule holds it, or a module
holding exactly one app. A module that cannot be imported is reported in one line (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

from hare.app import Hare, as_hare
from hare.core.settings import mask_url
from hare.errors import BrokerUnavailable, ConfigurationError, HareError

__all__ = (
    "APP_HELP",
    "EXIT_BROKER",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "add_app_argument",
    "app_path",
    "as_hare",
    "describe_broker",
    "fail",
    "load_app",
    "load_object",
    "locate_object",
    "not_an_app",
    "run_job",
    "seconds",
    "table",
    "whole_number",
    "worker_defaults",
)

#: 0 clean stop; 1 the worker failed (e.g. lost its broker for good); 2 bad usage or an app
#: that cannot be loaded; 3 the broker could not be reached at start.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BROKER = 0, 1, 2, 3

APP_HELP = (
    "the app: MODULE:ATTR (shop.tasks:app), or MODULE or PACKAGE as Celery's -A takes it "
    "(proj finds proj.app, proj.celery, or the app in proj/celery.py)"
)


class UsageError(Exception):
    """Bad arguments: reported in one line with exit code 2, before anything connects."""


def whole_number(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse `type`: a whole number from `least` (to `most`), else a usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most}, not {value}")
        return value

    return parse


def seconds(*, positive: bool = False, most: float = float("inf")) -> Callable[[str], float]:
    """An argparse `type`: seconds, 0 or more (more than 0 if `positive`), up to `most`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not (value > 0 if positive else value >= 0) or value == float("inf"):
            low = "more than 0" if positive else "0 or more"
            raise argparse.ArgumentTypeError(f"must be {low} seconds, not {text}")
        if value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:g} seconds, not {text}")
        return value

    return parse


def fail(command: str, problem: object, code: int) -> int:
    """Say what went wrong in one line on stderr, `hare <command>: ...`; return `code`."""
    print(f"hare{' ' if command else ''}{command}: {problem}", file=sys.stderr)
    return code


def run_job(
    command: str,
    job: Coroutine[Any, Any, int],
    *,
    usage: tuple[type[BaseException], ...] = (),
) -> int:
    """Run a command's async part; its exit code, or the failure's in one line: `usage`
    errors 2, an unreachable broker 3, any other hare error 1."""
    try:
        return asyncio.run(job)
    except usage as exc:
        return fail(command, exc, EXIT_USAGE)
    except BrokerUnavailable as exc:
        return fail(command, exc, EXIT_BROKER)
    except HareError as exc:
        return fail(command, exc, EXIT_FAILED)


def add_app_argument(parser: argparse.ArgumentParser) -> None:
    """The app, as a positional `APP` or as Celery's `-A/--app APP`."""
    parser.add_argument("app", nargs="?", metavar="APP", help=APP_HELP)
    parser.add_argument(
        "-A", "--app", dest="app_option", metavar="APP", help="the app, as Celery's -A names it"
    )


def app_path(args: argparse.Namespace, *, spill: str | None = None) -> str:
    """The app the command line names once, positionally or with `-A` (here or before the
    command). `spill`: an optional positional that comes after APP and that argparse filled
    into APP when the app was given with `-A` (`hare dlq list -A proj emails`)."""
    given = [path for path in (getattr(args, "app_global", None), args.app_option) if path]
    if len(set(given)) > 1:
        raise UsageError(f"the app is named twice: {' and '.join(given)}")
    if given and args.app and args.app != given[0]:
        if spill is None or getattr(args, spill) is not None:
            raise UsageError(f"the app is named twice: {given[0]} and {args.app}")
        setattr(args, spill, args.app)  # the positional was the next argument, not the app
        args.app = None
    path: str | None = args.app or (given[0] if given else None)
    if not path:
        command = getattr(args, "command", None) or "COMMAND"
        raise UsageError(f"name the app: hare {command} shop.tasks:app (or -A proj, as in Celery)")
    return path


def worker_defaults(obj: object) -> dict[str, Any]:
    """Worker options an app object proposes (`obj.worker_options()`): queues, the pool and
    its concurrency and limits (a Celery app's `worker_*` settings). The command line's
    options win over them; a `Hare` app proposes nothing."""
    propose = getattr(type(obj), "worker_options", None)
    return dict(propose(obj)) if propose is not None else {}


def load_app(path: str) -> Hare:
    """The hare app `path` names (see `load_object`)."""
    return as_hare(load_object(path)) or not_an_app(path)


def not_an_app(path: str) -> Hare:
    raise ConfigurationError(f"{path} is not a hare app")


def describe_broker(url: str) -> str:
    """The broker URL with its password masked, and the vhost each address names.

    >>> describe_broker("amqp://u:pw@h:5672/prod")
    "amqp://u:***@h:5672/prod (vhost 'prod')"
    >>> describe_broker("amqp://guest:guest@127.0.0.1:5672/")
    "amqp://guest:***@127.0.0.1:5672/ (vhost '/')"
    """
    if not url.startswith(("amqp://", "amqps://")):
        return mask_url(url)
    vhosts = {unquote(urlsplit(one.strip()).path[1:]) or "/" for one in url.split(";") if one}
    return f"{mask_url(url)} (vhost {', '.join(repr(v) for v in sorted(vhosts))})"


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """`rows` (the first one the header) in aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _is_app(obj: object) -> bool:
    return isinstance(obj, Hare) or hasattr(type(obj), "__hare_app__")


def load_object(path: str) -> object:
    """The app object `path` names: a `Hare`, or an object with `__hare_app__` (a Celery app).

    `MODULE:ATTR` names it exactly. `MODULE.ATTR` is tried as a module first, then as an
    attribute of its parent (as Celery's `-A proj.celery.app`). A bare `MODULE` is searched as
    Celery's `-A` searches: its `app`, then its `celery` attribute, then for a package its
    `celery` submodule, then the one app the module holds.
    """
    return locate_object(path)[0]


def locate_object(path: str) -> tuple[object, str]:
    """The app object `path` names (see `load_object`) and where it was found, as the exact
    `MODULE:ATTR` (`proj` may be `proj.celery:app`): what a process that starts afresh (a
    prefork child under spawn or forkserver) imports to find the same app."""
    module_name, colon, attr = path.partition(":")
    if not module_name or (colon and not attr):
        raise ConfigurationError(f"{path!r} is not MODULE or MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = None if colon else _import(module_name, missing_ok=True)
    if module is None and not colon:  # `proj.celery.app`: the attribute `app` of `proj.celery`
        parent, _, attr = module_name.rpartition(".")
        if not parent or _import(parent, missing_ok=True) is None:
            _import(module_name)  # raises: say which module is missing
        module_name = parent
    if attr:
        found = getattr(_import(module_name), attr, None)
        if _is_app(found):
            return found, f"{module_name}:{attr}"
        kind = "nothing" if found is None else type(found).__name__
        raise ConfigurationError(f"{module_name}:{attr} is {kind}, not a hare app")
    assert module is not None
    return _search(module)


def _search(module: ModuleType) -> tuple[object, str]:
    name = module.__name__
    for attr in ("app", "celery"):
        if _is_app(found := getattr(module, attr, None)):
            return found, f"{name}:{attr}"
    apps: dict[int, tuple[object, str]] = {}
    for attr, value in vars(module).items():
        if _is_app(value):
            apps.setdefault(id(value), (value, f"{name}:{attr}"))  # its first name
    if not apps and hasattr(module, "__path__"):  # a package: Celery looks in PACKAGE.celery
        submodule = _import(f"{name}.celery", missing_ok=True)
        if submodule is not None:
            return _search(submodule)
    if len(apps) != 1:
        raise ConfigurationError(
            f"module {name!r} holds {len(apps)} hare apps; name one as {name}:ATTR"
        )
    return next(iter(apps.values()))


def _import(name: str, *, missing_ok: bool = False) -> ModuleType | None:
    """Import module `name`. None when it does not exist and `missing_ok`; any other failure
    (a syntax error, an import inside it that fails, an exception it raises) is a
    `ConfigurationError` that says in one line what and where."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            if missing_ok:
                return None
            raise ConfigurationError(
                f"cannot import module {name!r} (looked in {os.getcwd()!r} and the "
                f"installed packages): {exc}"
            ) from exc
        raise ConfigurationError(f"cannot import {name!r}: {_cause(exc)}") from exc
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else "?"
        raise ConfigurationError(
            f"cannot import {name!r}: syntax error in {where}: {exc.msg}"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(f"cannot import {name!r}: {_cause(exc)}") from exc


def _cause(exc: BaseException) -> str:
    """`Type: message (file, line N)`, the line being the innermost frame that raised it."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ") and frame.filename != __file__
    ]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
