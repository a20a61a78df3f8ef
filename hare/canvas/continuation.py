"""Workflows (Celery's canvas) as the worker continues them: callbacks, chains, errbacks, chords.

Celery protocol v2 carries a workflow in each message's `embed` (`hare.core.message.Embed`):
`callbacks` (`link=`), `errbacks` (`link_error=`), `chain` (the remaining steps, last first)
and `chord` (the body to call once every task of the group has finished). These functions
compute, purely, what Celery 5.7's worker does with them (`celery/app/trace.py`,
`celery/backends/base.py`), so a workflow started by a Celery client continues on hare
workers and the other way round (their signatures come off the wire: each message is built
with `from_wire=True`, see `hare.core.calls`). The worker publishes what they return:

* a task succeeded: `after_success(...)`, published before its result is stored (Celery's
  order, so the result's children are known);
* a task failed for good (not on a retry, not on `Reject`; a hard time limit is a failure):
  store FAILURE, then `after_failure(...)`;
* the message is a chord header part (`chord_member(message)` is not None): after storing
  its result, the result backend counts the part; when it completes the chord, publish
  `chord_body(...)` with the parts' values in group_index order, or, when a part failed,
  `chord_failed(...)`.

Each returns a `Plan`: save `chord_headers` and record `chord_sizes` in the result backend
first, then publish `publish` in order (a `None` queue: route by task name as `send_task`
does), call `inline` (errbacks that take the request) and store FAILURE for each of
`failed` (counting those with a `chord` as failed parts of it).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from types import SimpleNamespace
from typing import Any

from hare.canvas.dispatch import GroupRef, Planner, Ref
from hare.canvas.signatures import CHAIN, CHORD, GROUP, from_dict, kind, merge, new_group
from hare.core.calls import Env, Outgoing
from hare.core.message import Message
from hare.errors import ChordError, ConfigurationError, NotSupportedError

__all__ = (
    "ChordPart",
    "Env",
    "FailedStep",
    "GroupRef",
    "InlineCall",
    "Outgoing",
    "Plan",
    "Ref",
    "after_failure",
    "after_success",
    "apply",
    "chord_body",
    "chord_failed",
    "chord_member",
    "failed_chord_part",
    "errback_accepts_request",
    "failed_steps",
    "freeze",
    "merge",
    "signature_message",
)

#: Whether an errback signature takes `(request, exc, traceback)`: True to call it inline,
#: False to send it with the failed task's id, None when its task is unknown here (sent too).
AcceptsRequest = Callable[[Mapping[str, Any]], bool | None]


@dataclass(frozen=True, slots=True)
class InlineCall:
    """An errback Celery calls in the failed task's own process: `task(*args, **kwargs)`.

    `args` start with `(request, exc, traceback)` as passed in (Celery passes its request
    `Context`, the exception and the traceback text); they never travel over the wire.
    """

    task: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FailedStep:
    """A step that will not run because an earlier one failed: store FAILURE for `task_id`
    (when not None) and, when `chord` is set, count it as a failed part of that chord."""

    task_id: str | None
    group_id: str | None
    group_index: int | None
    chord: Mapping[str, Any] | None
    #: What to store; None: the failure the plan is carried out for.
    exc: BaseException | None = None
    #: Its result's `children` (Celery's result tuples): what was sent for it.
    children: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to do: see the module docstring for the order."""

    publish: tuple[Outgoing, ...] = ()
    chord_sizes: tuple[tuple[str, int], ...] = ()
    #: Chord headers with a group among their results, to save before `chord_sizes` are
    #: recorded (Celery's Redis `apply_chord`): the body gets the values in their shape.
    chord_headers: tuple[GroupRef, ...] = ()
    inline: tuple[InlineCall, ...] = ()
    failed: tuple[FailedStep, ...] = ()
    #: What a caller's result handle follows: a task id, or a group's ids.
    result: Ref | None = None
    #: `(result id, parent)` pairs: Celery's `AsyncResult.parent` links (a chain step's
    #: result to the step before it, a chord body's to its header group).
    parents: tuple[tuple[str, Ref], ...] = ()


@dataclass(frozen=True, slots=True)
class ChordPart:
    """A message that is one task of a chord's header."""

    group_id: str
    group_index: int | None
    #: The body's signature; its `options.task_id` is the chord's result id.
    body: Mapping[str, Any]
    #: The number of parts, when the message says (`chord_size`, rare). Celery keeps it in
    #: the result backend: with Redis in `celery-taskset-meta-<group_id>.s`, written by the
    #: sender before the header's last message (see `Plan.chord_sizes`).
    size: int | None


_NOTHING = Plan()


def apply(
    sig: Mapping[str, Any],
    args: Any = (),
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    env: Env,
) -> Plan:
    """What `signature.apply_async(args, kwargs, **options)` sends, for any canvas."""
    planner = Planner(env)
    result = planner.apply(from_dict(sig), args, kwargs, dict(options or {}))
    return _plan(planner, result=result)


def freeze(
    sig: Mapping[str, Any],
    *,
    env: Env,
    _id: str | None = None,
    group_id: str | None = None,
    chord: Mapping[str, Any] | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_index: int | None = None,
) -> tuple[dict[str, Any], Ref]:
    """`sig.freeze(...)`: a copy of `sig` with its (and its tasks') ids assigned, and the
    result that sending the copy will produce."""
    frozen = from_dict(sig)
    body = None if chord is None else from_dict(chord)
    planner = Planner(env)
    ref = planner.freeze(frozen, _id, group_id, body, root_id, parent_id, group_index)
    return frozen, ref


def signature_message(
    sig: Mapping[str, Any],
    *,
    env: Env,
    args_prefix: tuple[Any, ...] = (),
    parent: Message | None = None,
) -> Outgoing:
    """The one message a plain task signature becomes, with `args_prefix` prepended unless
    it is immutable, and `root_id`/`parent_id` from `parent`."""
    if kind(sig) is not None:
        raise ConfigurationError(f"a {sig.get('subtask_type')} is many messages: use apply()")
    plan = apply(sig, args_prefix, env=replace(env, current=parent) if parent else env)
    return plan.publish[0]


def after_success(message: Message, value: Any, *, env: Env) -> Plan:
    """What Celery's worker sends after `message`'s task returned `value`: its callbacks
    (several plain ones as one group) and the next step of its chain, each with `value`
    prepended to its args unless immutable (`_dispatch_callbacks_and_chain`)."""
    if not message.embed.callbacks and not message.embed.chain:
        return _NOTHING
    planner = Planner(replace(env, current=message), from_wire=True)
    ids = {"parent_id": message.id, "root_id": message.root_id or message.id, "priority": None}
    callbacks = [from_dict(sig) for sig in message.embed.callbacks or ()]
    if len(callbacks) > 1:
        plain = [sig for sig in callbacks if kind(sig) != GROUP]
        for group in (sig for sig in callbacks if kind(sig) == GROUP):
            planner.apply(group, (value,), None, dict(ids))
        if plain:
            planner.apply(new_group(plain), (value,), None, dict(ids))
    elif callbacks:
        planner.apply(callbacks[0], (value,), None, dict(ids))
    chain = message.embed.chain
    if chain:
        rest = list(chain[:-1])
        planner.apply(from_dict(chain[-1]), (value,), None, {**ids, "chain": rest})
    return _plan(planner)


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
        return _NOTHING
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


def chord_member(message: Message) -> ChordPart | None:
    """The chord `message` is a header part of, or None (Celery: `request.chord` with a
    `request.group`)."""
    return _chord_part(message.group, message.group_index, message.embed.chord)


def failed_chord_part(step: FailedStep) -> ChordPart | None:
    """The chord a step that will not run was a header part of (Celery's `_fail_chain`
    counts it as a failed part), or None."""
    return _chord_part(step.group_id, step.group_index, step.chord)


def _chord_part(
    group_id: str | None, group_index: int | None, body: Mapping[str, Any] | None
) -> ChordPart | None:
    if body is None or not group_id:
        return None
    size = body.get("chord_size")
    return ChordPart(group_id, group_index, body, size if type(size) is int else None)


def chord_body(body: Mapping[str, Any], results: list[Any], *, env: Env) -> Plan:
    """What Celery sends once a chord's header is complete: `body.delay(results)`, with the
    results in header order. `env.current` is the header message that completed it."""
    planner = Planner(env, from_wire=True)
    result = planner.apply(from_dict(body), (list(results),), None, {})
    return _plan(planner, result=result)


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
    errbacks = _maybe_list(sig["options"].get("link_error"))
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
    return _plan(planner, inline=inline, failed=failed)


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
    group_errbacks = _maybe_list(sig["options"].get("link_error"))
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
    return _plan(planner, inline=tuple(inline), failed=(*failed, *chain))


def _result_errbacks(sig: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
    """Celery's `_result_errbacks`: the id of `sig`'s result and the errbacks linked to it
    (a chord's are its body's; a group's, its own and its tasks')."""
    errbacks: list[Any] = []
    while kind(sig) == CHORD and sig["kwargs"].get("body") is not None:
        errbacks += _maybe_list(sig["options"].get("link_error"))
        sig = sig["kwargs"]["body"]
    errbacks += _maybe_list(sig["options"].get("link_error"))
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
    return _plan(planner, inline=inline, failed=failed)


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


def _maybe_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _plan(planner: Planner, **fields: Any) -> Plan:
    return Plan(
        publish=tuple(planner.publish),
        chord_sizes=tuple(planner.chord_sizes),
        chord_headers=tuple(planner.chord_headers),
        parents=tuple(planner.parents.items()),
        **fields,
    )
