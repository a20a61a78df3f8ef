"""Celery's signatures as dicts: reading, copying and linking them as `celery/canvas.py` does.

`{"task", "args", "kwargs", "options", "subtask_type", "immutable"}` is how a signature
travels in a message (a chain keeps its steps in `kwargs.tasks`, a group its tasks, a chord
its `kwargs.header` and `kwargs.body`). These are ports of the `Signature`, `_chain`,
`group` and `_chord` methods that `hare.canvas.dispatch` needs, on plain dicts; names follow
Celery's. Pure.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from typing import Any, TypeAlias

from hare.errors import ConfigurationError, NotSupportedError

__all__ = (
    "CHAIN",
    "CHORD",
    "GROUP",
    "S",
    "clone",
    "descend",
    "from_dict",
    "kind",
    "link",
    "link_error",
    "merge",
    "new_group",
)

#: A signature dict, mutable while a workflow is planned.
S: TypeAlias = dict[str, Any]
CHAIN, GROUP, CHORD = "chain", "group", "chord"
#: Options a merge never changes once set (changing them would stall a group or chord).
IMMUTABLE_OPTIONS = frozenset({"group_id", "stamped_headers"})
#: Options `_chain.run` takes for itself instead of passing them to the chain's first task.
CHAIN_RUN_OPTIONS = frozenset(
    "chord group_id group_index link link_error parent_id root_id task_id".split()
)


def kind(sig: Mapping[str, Any]) -> str | None:
    """`subtask_type`: None (one task), "chain", "group" or "chord"."""
    found = sig.get("subtask_type")
    if found in (None, CHAIN, GROUP, CHORD):
        return found
    raise NotSupportedError(
        f"a {found!r} signature ({sig.get('task')})",
        "hare runs tasks, chains, groups and chords (not chunks, map or starmap)",
    )


def from_dict(d: Any) -> S:
    """`Signature.from_dict`, recursively: a normalised deep copy of a signature dict."""
    if not isinstance(d, Mapping) or not isinstance(d.get("task"), str):
        raise ConfigurationError(f"not a signature (a dict with a 'task' name): {d!r:.80}")
    found = kind(d)
    options = copy.deepcopy(dict(d.get("options") or {}))
    kwargs = d.get("kwargs") or {}
    if found == CHAIN:
        if options.get("use_link"):
            raise NotSupportedError("use_link=True", "chains travel in the message's chain field")
        return canvas_sig(
            "celery.chain", CHAIN, [from_dict(t) for t in kwargs.get("tasks") or ()], options
        )
    if found == GROUP:
        return new_group([from_dict(t) for t in kwargs.get("tasks") or ()], options)
    if found == CHORD:
        rest = {k: copy.deepcopy(v) for k, v in kwargs.items() if k not in ("header", "body")}
        body = kwargs.get("body")
        return {
            "task": d["task"],
            "args": tuple(d.get("args") or ()),
            "kwargs": {
                **(rest or {"kwargs": {}}),
                "header": maybe_group(kwargs.get("header") or []),
                "body": None if body is None else from_dict(body),
            },
            "options": options,
            "subtask_type": CHORD,
            "immutable": bool(d.get("immutable", False)),
        }
    args = d.get("args") or ()
    return {
        "task": d["task"],
        # A list stays a list: Celery keeps it, and it shows in `argsrepr` when sent as is.
        "args": list(args) if isinstance(args, list) else tuple(args),
        "kwargs": dict(kwargs),
        "options": options,
        "subtask_type": None,
        "immutable": bool(d.get("immutable", False)),
    }


def new_group(tasks: list[S], options: S | None = None) -> S:
    """`group(tasks, **options)` as a dict."""
    return canvas_sig("celery.group", GROUP, tasks, options or {})


def canvas_sig(name: str, found: str, tasks: list[S], options: S) -> S:
    return {
        "task": name,
        "args": (),
        "kwargs": {"tasks": tasks},
        "options": options,
        "subtask_type": found,
        "immutable": False,
    }


def maybe_group(tasks: Any) -> list[S]:
    """A chord header as a list: a group's or chain's tasks, one signature, or each item."""
    if isinstance(tasks, Mapping):
        sig = from_dict(tasks)
        return list(sig["kwargs"]["tasks"]) if kind(sig) in (GROUP, CHAIN) else [sig]
    if not isinstance(tasks, list | tuple):
        raise ConfigurationError(f"a chord header must be signatures, not {tasks!r:.60}")
    return [from_dict(t) for t in tasks]


def tasks_of(sig: S) -> list[S]:
    """The tasks of a chain or group, or a chord's header (a group once frozen)."""
    if kind(sig) == CHORD:
        header = sig["kwargs"]["header"]
        return header["kwargs"]["tasks"] if isinstance(header, dict) else header  # type: ignore[no-any-return]
    return sig["kwargs"]["tasks"]  # type: ignore[no-any-return]


def maybe_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def is_empty_group(sig: S) -> bool:
    return kind(sig) == GROUP and not tasks_of(sig)


def maybe_unroll_group(sig: S) -> S:
    tasks = tasks_of(sig)
    return tasks[0] if len(tasks) == 1 else sig


def is_chain_led_by_task(body: S | None) -> bool:
    return (
        body is not None
        and kind(body) == CHAIN
        and bool(tasks_of(body))
        and kind(tasks_of(body)[0]) != GROUP
    )


def merge(
    sig: S, args: Any = (), kwargs: Any = None, options: Mapping[str, Any] | None = None
) -> tuple[tuple[Any, ...], S, S]:
    """`Signature._merge`: partial args go first, options merge but never change group_id."""
    args = args or ()
    kwargs = kwargs or {}
    if options is not None:
        immutable = IMMUTABLE_OPTIONS.union(sig["options"].get("stamped_headers") or ())
        new_options = {
            **sig["options"],
            **{k: v for k, v in options.items() if k not in immutable or k not in sig["options"]},
        }
    else:
        new_options = sig["options"]
    if sig["immutable"]:
        return sig["args"], sig["kwargs"], new_options
    return (
        tuple(args) + tuple(sig["args"]) if args else sig["args"],
        dict(sig["kwargs"], **kwargs) if kwargs else sig["kwargs"],
        new_options,
    )


def clone(sig: S, args: Any = (), kwargs: Any = None, **options: Any) -> S:
    """`Signature.clone` (and `_chain.clone`, `_chord.clone`): an independent copy."""
    if args or kwargs or options:
        new_args, new_kwargs, new_options = merge(sig, args, kwargs, options)
    else:
        new_args, new_kwargs, new_options = sig["args"], sig["kwargs"], sig["options"]
    found = kind(sig)
    new_options = copy.deepcopy(new_options)
    if found in (CHAIN, GROUP):  # their from_dict keeps only tasks and options
        return canvas_sig(sig["task"], found, [clone(t) for t in new_kwargs["tasks"]], new_options)
    if found == CHORD:
        header = new_kwargs["header"]
        body = new_kwargs["body"]
        new_kwargs = {
            **{k: copy.deepcopy(v) for k, v in new_kwargs.items() if k not in ("header", "body")},
            "header": clone(header) if isinstance(header, dict) else [clone(t) for t in header],
            "body": None if body is None else clone(body),
        }
    else:
        new_kwargs = dict(new_kwargs)
    return {
        "task": sig["task"],
        "args": tuple(new_args),
        "kwargs": new_kwargs,
        "options": new_options,
        "subtask_type": found,
        "immutable": sig["immutable"],
    }


def list_option(sig: S, key: str) -> list[Any]:
    items = sig["options"].setdefault(key, [])
    if not isinstance(items, list):
        items = sig["options"][key] = maybe_list(items)
    return items


def append_option(sig: S, key: str, value: Any) -> None:
    """`append_to_list_option`: add `value` to the list option `key` unless already there."""
    items = list_option(sig, key)
    if value not in items:
        items.append(value)


def link(sig: S, callback: Any) -> None:
    """`sig.link(callback)`: a group links its first task, immutably; a chord its body."""
    found = kind(sig)
    if found == GROUP:
        callback = clone(from_dict(callback))
        callback["immutable"] = True
        link(tasks_of(sig)[0], callback)
    elif found == CHORD:
        link(sig["kwargs"]["body"], callback)
    else:
        append_option(sig, "link", callback)


def link_error(sig: S, errback: Any) -> None:
    """`sig.link_error(errback)`: a group gives each task a copy; a chord its body (as
    Celery does with `task_allow_error_cb_on_chord_header` off, its default)."""
    found = kind(sig)
    if found == GROUP:
        errback = from_dict(errback)
        for child in tasks_of(sig):
            link_error(child, clone(errback))
    elif found == CHORD:
        header = sig["kwargs"]["header"]
        for task in header if isinstance(header, list) else [header]:
            if kind(task) == CHORD:
                link_error(task, errback)
        link_error(sig["kwargs"]["body"], from_dict(errback))
    else:
        append_option(sig, "link_error", errback)


def descend(sig: S) -> int:
    """`_chord._descend`: how many results a signature contributes to a chord."""
    found = kind(sig)
    if found == GROUP:
        return sum(descend(t) for t in tasks_of(sig))
    if found == CHAIN:
        for child in reversed(tasks_of(sig)):
            size = descend(child)
            if size > 0:
                return size
        return 0
    if found == CHORD:
        return descend(sig["kwargs"]["body"])
    return 1


def chain_steps(tasks: list[S], clone_steps: bool) -> deque[S]:
    """A chain's steps with nested chains at its head spliced in and empty groups there
    dropped, so the first real task gets the chain's partial args (Celery issue #9772)."""
    steps = deque(tasks)
    stripped = None
    while steps:
        head = steps[0]
        if kind(head) == CHAIN:
            steps.popleft()
            steps.extendleft(reversed(tasks_of(clone(head) if clone_steps else head)))
            continue
        if kind(head) == GROUP:
            head = steps[0] = maybe_unroll_group(head)
            if len(steps) > 1 and kind(head) == GROUP and not tasks_of(head):
                stripped = steps.popleft()
                continue
        break
    if stripped is not None and not steps:
        steps.append(stripped)
    return steps


def link_errbacks(task: S, errbacks: Any) -> None:
    """A chain's link_error on one of its steps (and on a chord step's body)."""
    for errback in maybe_list(errbacks):
        link_error(task, errback)
        if kind(task) == CHORD and task["kwargs"]["body"]:
            link_error(task["kwargs"]["body"], errback)
