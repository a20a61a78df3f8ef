"""What Celery does when a task fails for good: errbacks (called inline or sent), the chain
steps that will now never run, and a chord whose header failed (`celery/app/trace.py`,
`celery/backends/base.py`: `_call_task_errbacks`, `_fail_chain`, `chord_error_from_stack`).

The signatures come off the wire (the failed message's embed), so messages are built with
`from_wire=True` (see `hare.core.calls`). Pure: `after_failure` and `chord_failed` return a `Plan`.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from types import SimpleNamespace
from typing import Any

from hare.canvas.dispatch import Planner, Ref
from hare.canvas.plan import NOTHING, AcceptsRequest, FailedStep, InlineCall, Plan, plan_of
from hare.canvas.signatures import (
    CHAIN,
    CHORD,
    GROUP,
    from_dict,
    kind,
    maybe_list,
    merge,
    new_group,
)
from hare.core.calls import Env
from hare.core.message import Message
from hare.errors import ChordError, NotSupportedError

__all__ = (
    "after_failure",
    "chord_failed",
    "errback_accepts_request",
    "failed_steps",
    "result_tuple",
)


def after_failure(
    message: Message,
    exc: BaseException,
    traceback: str | None,
    *,
    request: Any,
    env: Env,
    accepts_request: AcceptsRequest,
) -> Plan:
    """What Celery does after `message`'s task failed for good (`mark_as_failure`).

    `failed`: the chain's remaining steps (and chord bodies among them), to store as FAILURE.
    Errbacks: those for which `accepts_request` says True are `inline` calls with
    `(request, exc, traceback)`; the others are sent as one group with the failed task's id
    as their first argument (`_call_task_errbacks`). `request` is what the worker hands an
    inline errback as Celery's request (its `TaskContext`, or a compat `Context`).
    """
    if not message.embed.errbacks and not message.embed.chain:
        return NOTHING
    return _errbacks(
        list(message.embed.errbacks or ()),
        message.id,
        message.root_id or message.id,
        (request, exc, traceback),
        replace(env, current=message),
        accepts_request,
        failed_steps(message.embed.chain),
    )


def failed_steps(chain: Any) -> tuple[FailedStep, ...]:
    """Celery's `_fail_chain`: the steps after a failed one, in the order the chain lists
    them, descending into chord bodies."""
    pending: deque[Any] = deque(chain or ())
    steps = []
    while pending:
        elem = pending.popleft()
        if not isinstance(elem, Mapping):
            continue
        opts = elem.get("options") or {}
        chord = opts.get("chord") if "chord" in opts else None
        steps.append(
            FailedStep(opts.get("task_id"), opts.get("group_id"), opts.get("group_index"), chord)
        )
        if elem.get("subtask_type") == "chord":
            body = (elem.get("kwargs") or {}).get("body")
            if body is not None:
                pending.append(body)
    return tuple(steps)


def errback_accepts_request(fn: Callable[..., Any], errback: Mapping[str, Any]) -> bool:
    """Celery's rule for a registered task: an errback whose function, after the errback's
    own args (unless immutable), still takes more than one positional argument, or *args,
    gets `(request, exc, traceback)` inline; otherwise it is sent the failed task's id."""

    def greater(fun: Callable[..., Any]) -> bool:
        spec = inspect.getfullargspec(fun)
        return bool(spec.varargs) or len(spec.args) > 1

    args, kwargs = tuple(errback.get("args") or ()), dict(errback.get("kwargs") or {})
    if not errback.get("immutable") and (args or kwargs):
        try:
            return greater(partial(fn, *args, **kwargs))
        except (TypeError, ValueError):
            pass
    return greater(fn)


def chord_failed(
    body: Mapping[str, Any],
    exc: BaseException,
    *,
    env: Env,
    accepts_request: AcceptsRequest,
) -> Plan:
    """What Celery does when a header task of a chord failed (`chord_error_from_stack`):
    the body is stored as FAILURE with `exc` (a `ChordError`), its errbacks called (with no
    traceback, and as request one standing for the body, as Celery's fake request: its id is
    the body's) and its chain failed with `exc`. A group body: see `_group_body_failed`."""
    sig = from_dict(body)
    chain = failed_steps(sig["options"].get("chain"))
    if kind(sig) == GROUP:
        return _group_body_failed(sig, exc, env, accepts_request, chain)
    task_id = sig["options"].get("task_id") or env.new_id()
    errbacks = maybe_list(sig["options"].get("link_error"))
    fields = {k: v for k, v in sig.items() if k.isidentifier()}
    planner = Planner(env, from_wire=True)
    sent: list[Ref] = []
    inline = _call_errbacks(
        planner,
        errbacks,
        task_id,
        task_id,
        (_fake_request(task_id, errbacks, **fields), exc, None),
        accepts_request,
        sent,
    )
    # Celery stores the body's failure with the running task's children: the errbacks sent.
    children = tuple(result_tuple(ref) for ref in sent)
    failed = (FailedStep(task_id, None, None, None, children=children), *chain)
    return plan_of(planner, inline=inline, failed=failed)


def _group_body_failed(
    sig: Mapping[str, Any],
    exc: BaseException,
    env: Env,
    accepts_request: AcceptsRequest,
    chain: tuple[FailedStep, ...],
) -> Plan:
    """Celery's `_handle_group_chord_error`: each task of a group body calls its errbacks
    (its own, then the group's, each once) with the header's failure (the `ChordError`'s
    cause) and is stored as FAILURE with it, as is the group's id; the chain after the
    group fails with `exc`."""
    cause = exc.__cause__ if isinstance(exc, ChordError) and exc.__cause__ else exc
    group_errbacks = maybe_list(sig["options"].get("link_error"))
    planner = Planner(env, from_wire=True)
    inline: list[InlineCall] = []
    failed: list[FailedStep] = []
    for task in sig["kwargs"]["tasks"]:
        task_id, own = _result_errbacks(task)
        task_id = task_id or env.new_id()
        errbacks: list[Any] = []
        for errback in (*own, *group_errbacks):
            if errback not in errbacks:
                errbacks.append(errback)
        call = (_fake_request(task_id, errbacks, task="unknown"), cause, None)
        inline += _call_errbacks(planner, errbacks, task_id, task_id, call, accepts_request)
        failed.append(FailedStep(task_id, None, None, None, cause))
    group_id = sig["options"].get("task_id")
    if group_id:
        failed.append(FailedStep(group_id, None, None, None, cause))
    return plan_of(planner, inline=tuple(inline), failed=(*failed, *chain))


def _result_errbacks(sig: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
    """Celery's `_result_errbacks`: the id of `sig`'s result and the errbacks linked to it
    (a chord's are its body's; a group's, its own and its tasks')."""
    errbacks: list[Any] = []
    while kind(sig) == CHORD and sig["kwargs"].get("body") is not None:
        errbacks += maybe_list(sig["options"].get("link_error"))
        sig = sig["kwargs"]["body"]
    errbacks += maybe_list(sig["options"].get("link_error"))
    if kind(sig) == GROUP:
        for task in sig["kwargs"]["tasks"]:
            errbacks += _result_errbacks(task)[1]
    if kind(sig) == CHAIN and sig["kwargs"].get("tasks"):
        return _result_errbacks(sig["kwargs"]["tasks"][-1])[0], errbacks
    return sig["options"].get("task_id"), errbacks


def _fake_request(task_id: str, errbacks: list[Any], **fields: Any) -> SimpleNamespace:
    """Celery's `_create_fake_task_request`, what an errback gets as the request of a task
    that will not run: `fields`, its id, its errbacks and an empty `delivery_info`."""
    return SimpleNamespace(**(fields | {"id": task_id, "errbacks": errbacks, "delivery_info": {}}))


def _errbacks(
    errbacks: list[Any],
    task_id: str,
    root_id: str,
    call: tuple[Any, Any, Any],
    env: Env,
    accepts_request: AcceptsRequest,
    failed: tuple[FailedStep, ...],
) -> Plan:
    planner = Planner(env, from_wire=True)
    inline = _call_errbacks(planner, errbacks, task_id, root_id, call, accepts_request)
    return plan_of(planner, inline=inline, failed=failed)


def _call_errbacks(
    planner: Planner,
    errbacks: list[Any],
    task_id: str,
    root_id: str,
    call: tuple[Any, Any, Any],
    accepts_request: AcceptsRequest,
    sent: list[Ref] | None = None,
) -> tuple[InlineCall, ...]:
    """Celery's `_call_task_errbacks`: those that take the request are returned, to call
    with `call`; the others are sent, as one group, the failed task's id (its result added
    to `sent`)."""
    inline, old = [], []
    for errback in errbacks:
        sig = from_dict(errback)
        if kind(sig) is not None:
            raise NotSupportedError(
                f"a {sig['subtask_type']} as link_error", "hare calls task signatures as errbacks"
            )
        if accepts_request(sig):
            args, kwargs, _ = merge(sig, call)
            inline.append(InlineCall(sig["task"], tuple(args), dict(kwargs)))
        else:
            old.append(sig)
    if old:
        ids = {"parent_id": task_id, "root_id": root_id}
        ref = planner.apply(new_group(old), (task_id,), None, ids)
        if sent is not None and ref is not None:
            sent.append(ref)
    return tuple(inline)


def result_tuple(ref: Ref) -> Any:
    """Celery's `result.as_tuple()` (no parent): `((id, None), None)` for a task,
    `((id, None), [member tuples])` for a group."""
    if isinstance(ref, str):
        return [[ref, None], None]
    return [[ref.id, None], [result_tuple(r) for r in ref.results]]
