"""What a worker is to do after a task, as the canvas computes it: the `Plan` and its parts.

`hare.canvas.continuation` (and `hare.canvas.failures`) return a `Plan`; the worker carries it
out in this order: save `chord_headers` and record `chord_sizes` in the result backend, then
publish `publish` in order (a `None` queue: route by task name as `send_task` does), call
`inline` (errbacks that take the request) and store FAILURE for each of `failed` (counting
those with a `chord` as failed parts of it). Pure values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hare.canvas.dispatch import GroupRef, Planner, Ref
from hare.core.calls import Outgoing

__all__ = ("NOTHING", "AcceptsRequest", "ChordPart", "FailedStep", "InlineCall", "Plan", "plan_of")

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
    """What to do, in the order the module docstring gives."""

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


#: A plan with nothing to do.
NOTHING = Plan()


def plan_of(planner: Planner, **fields: Any) -> Plan:
    """A `Plan` of what `planner` collected, and `fields`."""
    return Plan(
        publish=tuple(planner.publish),
        chord_sizes=tuple(planner.chord_sizes),
        chord_headers=tuple(planner.chord_headers),
        parents=tuple(planner.parents.items()),
        **fields,
    )
