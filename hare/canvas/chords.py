"""Chords, as Celery 5.7's `_chord` builds and sends them: a group (the header) whose results
are the body's argument.

Two halves: how a chord rewrites signature dicts (its `link`/`link_error` go onto its body, a
body that is a chain led by a task is unrolled, the body copies a frozen header carries are
stripped before sending), and `freeze_chord` / `apply_chord`, the `Planner` steps that freeze
and send one (header group first, then the body's id). Names follow Celery's. Pure.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from hare.canvas.parents import ref_id
from hare.canvas.signatures import (
    CHAIN,
    CHAIN_RUN_OPTIONS,
    CHORD,
    GROUP,
    S,
    append_option,
    clone,
    from_dict,
    is_chain_led_by_task,
    kind,
    link,
    link_error,
    maybe_list,
    new_group,
    tasks_of,
)
from hare.errors import ConfigurationError
from hare.results.state import GroupRef, Ref

if TYPE_CHECKING:
    from hare.canvas.dispatch import Planner

__all__ = (
    "add_body_callbacks",
    "apply_chord",
    "body_options",
    "chord_of",
    "freeze_chord",
    "strip_chord_header_links",
    "unroll_body",
    "unroll_chords",
)


def clear_chord_option(sig: S | list[S]) -> None:
    if isinstance(sig, list):
        for task in sig:
            clear_chord_option(task)
        return
    sig["options"].pop("chord", None)
    found = kind(sig)
    if found == GROUP:
        clear_chord_option(tasks_of(sig))
    elif found == CHAIN and tasks_of(sig):
        clear_chord_option(tasks_of(sig)[-1])
    elif found == CHORD and sig["kwargs"]["body"] is not None:
        clear_chord_option(sig["kwargs"]["body"])


def strip_chord_header_links(sig: S) -> None:
    """Drop the body copies a frozen chord put on its header tasks; `run` puts them back."""
    found = kind(sig)
    if found == CHORD:
        header = sig["kwargs"]["header"]
        clear_chord_option(header)
        for task in [header] if isinstance(header, dict) else header:
            strip_chord_header_links(task)
        if sig["kwargs"]["body"] is not None:
            strip_chord_header_links(sig["kwargs"]["body"])
    elif found in (GROUP, CHAIN):
        for task in tasks_of(sig):
            strip_chord_header_links(task)


def unchain_tasks(chain: S) -> list[S]:
    tasks = [clone(t) for t in tasks_of(chain)]
    for callback in maybe_list(chain["options"].get("link")):
        link(tasks[-1], callback)
    for errback in maybe_list(chain["options"].get("link_error")):
        for task in tasks:
            link_error(task, errback)
    return tasks


def unroll_body(chord: S) -> list[S]:
    """chord(header, chain(a, b, c)) -> chord(header, a), b, c."""
    task = clone(chord)
    body = task["kwargs"]["body"]
    body_tasks = unchain_tasks(body)
    first_options = {k: v for k, v in body["options"].items() if k not in CHAIN_RUN_OPTIONS}
    task["kwargs"]["body"] = clone(body_tasks[0], **first_options)
    return [task, *body_tasks[1:]]


def unroll_chords(chain: S) -> None:
    pending = deque(tasks_of(chain))
    tasks: list[S] = []
    while pending:
        task = pending.popleft()
        if kind(task) == CHAIN:
            task = clone(task)
            unroll_chords(task)
        if kind(task) == CHORD and is_chain_led_by_task(task["kwargs"]["body"]):
            pending.extendleft(reversed(unroll_body(task)))
        else:
            tasks.append(task)
    chain["kwargs"]["tasks"] = tasks


def body_options(options: S) -> S:
    """The options a chord passes to its body: all but parent_id (its parent is a header task)."""
    return {k: v for k, v in options.items() if k != "parent_id"}


def link_error_to_body_tasks(sig: S, errback: S, runs_as_group: bool = True) -> None:
    found = kind(sig)
    if found == GROUP:
        if runs_as_group and sig["options"].get("link_error") is not None:
            append_option(sig, "link_error", clone(errback))
        else:
            for task in tasks_of(sig):
                link_error_to_body_tasks(task, errback, runs_as_group=False)
    elif found == CHORD:
        link_error_to_body_tasks(sig["kwargs"]["body"], errback)
    else:
        link_error(sig, clone(errback))


def add_body_callbacks(body: S, options: S) -> S:
    """`_chord._add_body_callbacks`: a chord's link and link_error go onto its body."""
    callbacks = maybe_list(options.pop("link", None))
    errbacks = maybe_list(options.pop("link_error", None))
    if callbacks or errbacks:
        body = clone(body)
    for callback in callbacks:
        callback = clone(from_dict(callback))
        if kind(body) == GROUP and not tasks_of(body):
            append_option(body, "link", callback)
        else:
            link(body, callback)
    for errback in errbacks:
        if kind(body) == GROUP:
            link_error_to_body_tasks(body, from_dict(errback))
        else:
            append_option(body, "link_error", errback)
    return body


def chord_of(group: S, body: S, body_id: str | None, root_id: str | None) -> S:
    """`group(...) | body` in a chain: the chord Celery's prepare_steps makes of them (named
    after the body's id when it has one)."""
    options = {"task_id": body_id} if body_id is not None else {}
    return {
        "task": "celery.chord",
        "args": (),
        "kwargs": {"kwargs": {}, "header": list(tasks_of(group)), "body": body},
        "options": {**options, "root_id": root_id},
        "subtask_type": CHORD,
        "immutable": False,
    }


# -- freezing and sending a chord ----------------------------------------------------------


def freeze_chord(
    planner: Planner,
    chord: S,
    _id: str | None,
    group_id: str | None,
    chord_body: S | None,
    root_id: str | None,
    parent_id: str | None,
    group_index: int | None,
) -> Ref:
    """`_chord.freeze`: the header's ids (its group's), then the body's; the body's result
    has the header group as its parent."""
    header = chord["kwargs"]["header"]
    if isinstance(header, list):
        header = chord["kwargs"]["header"] = new_group(header)
    body = chord["kwargs"]["body"]
    header_ref = planner.freeze_group_tasks(header, None, body, root_id, parent_id, None)
    chord["options"]["task_id"] = header["options"]["task_id"]
    if body is None:
        return header_ref
    body_ref = planner.freeze(
        body, _id, root_id=root_id, chord=chord_body, group_id=group_id, group_index=group_index
    )
    root = planner.parents.root(body_ref)
    if ref_id(root) != ref_id(header_ref):  # not frozen before (a chord in a group)
        planner.parents[ref_id(root)] = header_ref
    return body_ref


def apply_chord(planner: Planner, chord: S, args: Any, kwargs: Any, options: S) -> Ref:
    """`_chord.apply_async` then `run`: the body frozen with the header's group id, then the
    header applied as a group (`countdown`/`eta` delay it, not the body)."""
    task_id = options.pop("task_id", None)
    for key in ("producer", "publisher", "connection", "router", "result_cls"):
        options.pop(key, None)
    args = tuple(args) + tuple(chord["args"]) if args and not chord["immutable"] else chord["args"]
    kwargs = dict(kwargs or {})
    body = kwargs.pop("body", None) or chord["kwargs"]["body"]
    if body is None:
        raise ConfigurationError(f"a chord needs a body: {chord['kwargs']['header']!r:.80}")
    kwargs = dict(chord["kwargs"].get("kwargs") or {}, **kwargs)
    # countdown/eta delay the header (not the body); links go onto the body.
    header_delay = {k: options.pop(k) for k in ("countdown", "eta") if options.get(k) is not None}
    callbacks = {k: options.pop(k) for k in ("link", "link_error") if k in options}
    body = clone(from_dict(body), **body_options(options))
    header = chord["kwargs"]["header"]
    if isinstance(header, dict):
        header = clone(header)
    else:
        gid = chord["options"].get("task_id") or planner.env.new_id()
        header = new_group(list(header), {"task_id": gid})
    merged = dict(chord["options"], **options, **callbacks)
    merged.pop("countdown", None)
    merged.pop("eta", None)
    option_task_id = merged.pop("task_id", None)
    if task_id is None:
        task_id = option_task_id
    return _run_chord(planner, chord, header, body, args, task_id, kwargs, header_delay, merged)


def _run_chord(
    planner: Planner,
    chord: S,
    header: S,
    body: S,
    partial_args: Any,
    task_id: str | None,
    kwargs: Any,
    header_delay: S,
    options: S,
) -> Ref:
    for key in ("app", "interval", "countdown", "max_retries", "eager"):
        options.pop(key, None)
    group_id = header["options"].get("task_id") or planner.env.new_id()
    root_id = body["options"].get("root_id")
    options = dict(chord["options"], **options)
    for key in ("countdown", "eta"):
        if key not in header_delay and options.get(key) is not None:
            header_delay[key] = options[key]
        options.pop(key, None)
    if options:
        options.pop("task_id", None)
        body = add_body_callbacks(body, options)
        body["options"].update(body_options(options))
    if kind(body) == CHAIN:
        unroll_chords(body)
    body_ref = planner.freeze(
        body, task_id or planner.env.new_id(), group_id=group_id, root_id=root_id
    )
    strip_chord_header_links(body)
    for key in ("chain", "chord", "task_id"):
        options.pop(key, None)
    header["options"]["task_id"] = group_id
    frozen = planner.freeze_group_tasks(header, group_id, body, root_id, None, None)
    if any(isinstance(result, GroupRef) for result in frozen.results):
        planner.chord_headers.append(frozen)
    header_ref: Ref = frozen
    if tasks_of(header):
        header_ref = planner.apply_group(
            header, partial_args, kwargs, {**options, **header_delay, "task_id": group_id}
        )
    else:
        planner.apply(body, ([],))
    planner.parents[ref_id(body_ref)] = header_ref
    return body_ref
