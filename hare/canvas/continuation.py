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

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hare.canvas.dispatch import GroupRef, Planner, Ref
from hare.canvas.failures import (
    after_failure,
    chord_failed,
    errback_accepts_request,
    failed_steps,
)
from hare.canvas.plan import (
    NOTHING,
    ChordPart,
    FailedStep,
    InlineCall,
    Plan,
    plan_of,
)
from hare.canvas.signatures import GROUP, from_dict, kind, merge, new_group
from hare.core.calls import Env, Outgoing
from hare.core.message import Message
from hare.errors import ConfigurationError

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
    return plan_of(planner, result=result)


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
        return NOTHING
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
    return plan_of(planner)


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
    return plan_of(planner, result=result)
