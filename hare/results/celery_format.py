"""Celery's result body and key names: what rpc replies carry and Redis stores.

A result is the JSON object Celery's backends write (`celery/backends/base.py`,
`_get_result_meta`)::

    {"status": "SUCCESS", "result": 5, "traceback": null, "children": [],
     "date_done": "2026-11-22T13:27:47.055255+00:00", "task_id": "..."}

plus `group_id` / `parent_id` when set (and `result_extended` fields). An exception travels as
`{"exc_type": qualname, "exc_message": [args...], "exc_module": module}`. Values use kombu's
JSON (hare.core.codec). Pure: no I/O, no clock (the time of storing is an argument).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from hare.core.codec import json_dumps, json_loads
from hare.errors import ChordError, MalformedResult, RemoteError, TaskRevoked
from hare.results.state import (
    EXCEPTION_STATES,
    FAILURE,
    READY_STATES,
    GroupRef,
    Ref,
    TaskResult,
)

__all__ = (
    "CHORD_KEY_PREFIX",
    "GROUP_KEY_PREFIX",
    "TASK_KEY_PREFIX",
    "chord_entry_dumps",
    "chord_entry_loads",
    "dumps",
    "exception_from_meta",
    "exception_to_meta",
    "from_meta",
    "group_dumps",
    "group_loads",
    "loads",
    "to_meta",
    "unencodable",
)

#: Celery's key-value backend prefixes (`BaseKeyValueStoreBackend`).
TASK_KEY_PREFIX = "celery-task-meta-"
GROUP_KEY_PREFIX = "celery-taskset-meta-"
CHORD_KEY_PREFIX = "chord-unlock-"

_CORE_KEYS = frozenset(
    {"status", "result", "traceback", "children", "date_done", "task_id", "group_id", "parent_id"}
)


# --- exceptions -----------------------------------------------------------------------------

#: Where Celery's exceptions live, and where hare_compat keeps its look-alikes of them.
CELERY_EXCEPTIONS = "celery.exceptions"
COMPAT_EXCEPTIONS = "hare_compat.exceptions"

#: The exception classes `celery.exceptions` defines (Celery 5.7). One of hare_compat's is
#: written as Celery's, so a Celery client rebuilds its own class; hare reading such a
#: name back takes hare_compat's class when hare_compat is loaded.
CELERY_EXCEPTION_NAMES = frozenset(
    {
        "AlreadyRegistered",
        "BackendError",
        "BackendGetMetaError",
        "BackendStoreError",
        "CeleryCommandException",
        "CeleryError",
        "ChordError",
        "Ignore",
        "ImproperlyConfigured",
        "IncompleteStream",
        "InvalidTaskError",
        "MaxRetriesExceededError",
        "NotRegistered",
        "QueueNotFound",
        "Reject",
        "Retry",
        "SecurityError",
        "TaskError",
        "TaskPredicate",
        "TaskRevokedError",
        "TimeoutError",
        "WorkerShutdown",
        "WorkerTerminate",
    }
)


#: hare's own exceptions that Celery has one of: written as Celery's (a Celery client reads
#: back its own class), read back as hare's where neither Celery nor hare_compat is loaded.
HARE_AS_CELERY: dict[type[BaseException], str] = {
    TaskRevoked: "TaskRevokedError",
    ChordError: "ChordError",
}
_CELERY_AS_HARE = {name: cls for cls, name in HARE_AS_CELERY.items()}


def _exc_module(cls: type[BaseException], qualname: str) -> str:
    if cls.__module__ == COMPAT_EXCEPTIONS and qualname in CELERY_EXCEPTION_NAMES:
        return CELERY_EXCEPTIONS
    return cls.__module__


def _serializable(arg: Any) -> Any:
    """`arg` if JSON can carry it, else its repr (Celery's `ensure_serializable`)."""
    try:
        json_dumps(arg)
    except Exception:  # any failure of a user's value: fall back to its repr
        return repr(arg)
    return arg


def exception_to_meta(exc: BaseException) -> dict[str, Any]:
    """Encode `exc` as Celery's `prepare_exception` does for JSON."""
    if isinstance(exc, RemoteError):  # passed on: keep the original identity
        return {
            "exc_type": exc.exc_type,
            "exc_message": list(exc.args),
            "exc_module": exc.exc_module,
        }
    cls = type(exc)
    if cls in HARE_AS_CELERY:
        return {
            "exc_type": HARE_AS_CELERY[cls],
            "exc_message": [_serializable(arg) for arg in exc.args],
            "exc_module": CELERY_EXCEPTIONS,
        }
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return {
        "exc_type": qualname,
        "exc_message": [_serializable(arg) for arg in exc.args],
        "exc_module": _exc_module(cls, qualname),
    }


def _find_class(module: str | None, qualname: str, modules: Mapping[str, ModuleType]) -> Any:
    if module == CELERY_EXCEPTIONS and qualname in CELERY_EXCEPTION_NAMES:
        compat = _find_class(COMPAT_EXCEPTIONS, qualname, modules)
        if compat is not None:
            return compat
        if qualname in _CELERY_AS_HARE and module not in modules:
            return _CELERY_AS_HARE[qualname]
    if module is None or module not in modules:
        return None
    found: Any = modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return found


def exception_from_meta(
    data: Any, modules: Mapping[str, ModuleType] = sys.modules
) -> BaseException | None:
    """Decode an exception as Celery's `exception_to_python` does, with its safety rule.

    The class is looked up only among modules already imported (`modules`, i.e.
    `sys.modules`): a stored result never makes this process import anything. It is used
    only if it is an `Exception` subclass (not any callable: the body may come from anyone
    who can write to the queue or the store), and only if it accepts the stored arguments.
    Otherwise the exception is a `RemoteError` carrying type, module and arguments.
    """
    if data is None:
        return None
    if isinstance(data, BaseException):
        return data
    if not isinstance(data, Mapping):
        raise MalformedResult(f"an exception must be stored as a mapping, not {data!r:.200}")
    exc_type = data.get("exc_type")
    if not isinstance(exc_type, str) or not exc_type:
        raise MalformedResult(f"a stored exception needs an 'exc_type': {dict(data)!r:.200}")
    exc_module = data.get("exc_module")
    if exc_module is not None and not isinstance(exc_module, str):
        raise MalformedResult(f"'exc_module' must be a string, not {exc_module!r:.100}")
    message = data.get("exc_message", "")
    args = list(message) if isinstance(message, list | tuple) else [message]
    cls = _find_class(exc_module, exc_type, modules)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*args)
        except Exception:  # a constructor that does not take its own args back
            pass
    return RemoteError(exc_type, exc_module, args)


# --- result bodies --------------------------------------------------------------------------


def _encode_value(state: str, value: Any) -> Any:
    if state in EXCEPTION_STATES and isinstance(value, BaseException):
        return exception_to_meta(value)
    return value


def _decode_value(state: str, value: Any) -> Any:
    if state in EXCEPTION_STATES and isinstance(value, Mapping) and "exc_type" in value:
        return exception_from_meta(value)
    return value


def to_meta(result: TaskResult, *, now: datetime) -> dict[str, Any]:
    """The Celery result body for `result`; `now` dates a ready result that has no date."""
    date_done = None
    if result.state in READY_STATES:
        date_done = (result.date_done or now).isoformat()
    meta: dict[str, Any] = {
        "status": result.state,
        "result": _encode_value(result.state, result.value),
        "traceback": result.traceback,
        "children": list(result.children),
        "date_done": date_done,
    }
    if result.group_id:
        meta["group_id"] = result.group_id
    if result.parent_id:
        meta["parent_id"] = result.parent_id
    meta.update((key, value) for key, value in result.extra.items() if key not in _CORE_KEYS)
    meta["task_id"] = result.task_id
    return meta


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResult(f"'date_done' must be an ISO-8601 string, not {value!r:.100}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedResult(f"'date_done' is not ISO-8601: {value!r:.100}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def from_meta(meta: Any, *, task_id: str | None = None) -> TaskResult:
    """Read a Celery result body; `task_id` names the task when the body does not."""
    if not isinstance(meta, Mapping):
        raise MalformedResult(f"a result body must be a JSON object, not {meta!r:.200}")
    state = meta.get("status")
    if not isinstance(state, str) or not state:
        raise MalformedResult(f"a result body needs a 'status': {dict(meta)!r:.200}")
    found_id = meta.get("task_id") or task_id
    if not isinstance(found_id, str):
        raise MalformedResult(f"a result body needs a 'task_id': {dict(meta)!r:.200}")
    children = meta.get("children") or ()
    if not isinstance(children, list | tuple):
        raise MalformedResult(f"'children' must be a list, not {children!r:.100}")
    traceback = meta.get("traceback")
    return TaskResult(
        task_id=found_id,
        state=state,
        value=_decode_value(state, meta.get("result")),
        traceback=traceback if isinstance(traceback, str) else None,
        date_done=_date(meta.get("date_done")),
        children=tuple(children),
        group_id=meta.get("group_id"),
        parent_id=meta.get("parent_id"),
        extra={key: value for key, value in meta.items() if key not in _CORE_KEYS},
    )


def dumps(result: TaskResult, *, now: datetime) -> bytes:
    """The JSON bytes of `result`'s body; `MalformedResult` if its value cannot be encoded."""
    try:
        return json_dumps(to_meta(result, now=now))
    except (TypeError, ValueError) as exc:
        raise MalformedResult(f"the result of task {result.task_id} cannot be JSON: {exc}") from exc


def loads(body: bytes | str, *, task_id: str | None = None) -> TaskResult:
    """Read a JSON result body; `MalformedResult` if it is not one."""
    try:
        meta = json_loads(body)
    except Exception as exc:  # bytes from the network or a shared store: any failure is theirs
        raise MalformedResult(f"a result body is not JSON: {exc}") from exc
    return from_meta(meta, task_id=task_id)


def unencodable(result: TaskResult, problem: MalformedResult) -> TaskResult:
    """What to store instead of a result whose value JSON cannot carry.

    Celery stores a FAILURE with kombu's `EncodeError` then; so does hare, by that name.
    """
    error = RemoteError("EncodeError", "kombu.exceptions", [str(problem)])
    return TaskResult(
        task_id=result.task_id,
        state=FAILURE,
        value=error,
        date_done=result.date_done,
        children=result.children,
        group_id=result.group_id,
        parent_id=result.parent_id,
        group_index=result.group_index,
    )


# --- chord header entries (Celery's Redis `<group key>.j`) ----------------------------------


def chord_entry_dumps(result: TaskResult) -> bytes:
    """A chord part as Celery's Redis backend stores it: `[1, task_id, state, result]`."""
    value = _encode_value(result.state, result.value)
    try:
        return json_dumps([1, result.task_id, result.state, value])
    except (TypeError, ValueError) as exc:
        raise MalformedResult(f"the result of task {result.task_id} cannot be JSON: {exc}") from exc


def chord_entry_loads(body: bytes | str, *, group_id: str | None = None) -> TaskResult:
    """Read a chord part written by `chord_entry_dumps` (or by Celery)."""
    try:
        entry = json_loads(body)
    except Exception as exc:  # written by any process sharing the store
        raise MalformedResult(f"a chord entry is not JSON: {exc}") from exc
    if not isinstance(entry, list) or len(entry) != 4 or not isinstance(entry[1], str):
        raise MalformedResult(f"a chord entry must be [1, task_id, state, result]: {entry!r:.200}")
    _, task_id, state, value = entry
    if not isinstance(state, str):
        raise MalformedResult(f"a chord entry's state must be a string: {entry!r:.200}")
    return TaskResult(
        task_id=task_id, state=state, value=_decode_value(state, value), group_id=group_id
    )


# --- saved groups (Celery's `celery-taskset-meta-<group id>`) -------------------------------


def group_dumps(group: GroupRef) -> bytes:
    """A group's result ids as Celery saves a `GroupResult` (`_save_group`, and its Redis
    `apply_chord`): `{"result": as_tuple()}`, a group as `[[id, parent], [member, ...]]`, a
    task as `[[id, parent], null]`. hare writes no parents (Celery's reader takes none)."""

    def as_tuple(ref: Ref) -> list[Any]:
        if isinstance(ref, str):
            return [[ref, None], None]
        return [[ref.id, None], [as_tuple(member) for member in ref.results]]

    return json_dumps({"result": as_tuple(group)})


def group_loads(body: bytes | str) -> GroupRef:
    """Read a group saved by `group_dumps` or by Celery (`result_from_tuple`)."""
    try:
        saved = json_loads(body)
    except Exception as exc:  # written by any process sharing the store
        raise MalformedResult(f"a saved group is not JSON: {exc}") from exc
    found = _from_tuple(saved.get("result") if isinstance(saved, dict) else None)
    if not isinstance(found, GroupRef):
        raise MalformedResult(f"a saved group must be a group's as_tuple(): {saved!r:.200}")
    return found


def _from_tuple(node: Any) -> Ref:
    if not isinstance(node, list | tuple) or len(node) != 2:
        raise MalformedResult(f"a result tuple must be [[id, parent], members]: {node!r:.200}")
    head, members = node
    result_id = head[0] if isinstance(head, list | tuple) and head else head
    if not isinstance(result_id, str) or not isinstance(members, list | tuple | None):
        raise MalformedResult(f"a result tuple must be [[id, parent], members]: {node!r:.200}")
    if members is None:
        return result_id
    return GroupRef(result_id, tuple(_from_tuple(member) for member in members))
