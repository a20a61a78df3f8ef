"""One call of a task, given as Celery's `send_task` arguments, turned into its `Message`.

This is the last step of every workflow (see `hare.canvas`): a signature's merged
`args`/`kwargs`/`options` become one message, exactly as Celery 5.7's `send_task` and
`amqp.as_task_v2` build it. Pure: the time, new ids and the calling task come in an `Env`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hare.core.codec import get_serializer
from hare.core.message import Embed, Message
from hare.core.protocol import safe_repr
from hare.core.topology import validate_queue_name
from hare.errors import ConfigurationError, NotSupportedError

__all__ = ("Env", "Outgoing", "task_message")

#: A message to publish and its queue; `None` lets the app route it by task name.
Outgoing = tuple[str | None, Message]

# Options send_task turns into message fields (the rest of `_KNOWN` is handled below).
_KNOWN = frozenset(
    "task_id countdown eta expires group_id group_index retries chord link link_error reply_to"
    " time_limit soft_time_limit root_id parent_id shadow chain ignore_result queue priority"
    " headers serializer argsrepr kwargsrepr replaced_task_nesting stamped_headers".split()
)
_ROUTING = frozenset({"exchange", "routing_key", "exchange_type"})
# Arguments of Celery's apply_async/send_task that steer the call, not the message (a
# chord passes `add_to_parent` on into its body's options, so it reaches the wire).
_CALL_ONLY = frozenset(
    "add_to_parent producer publisher connection router result_cls task_type route_name".split()
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Env:
    """What building messages needs from outside, passed in so the core stays pure."""

    #: A new task id (Celery: a uuid4 string).
    new_id: Callable[[], str]
    #: The wall clock (epoch seconds) that `countdown=` and numeric `expires=` count from.
    now: float
    #: The sender's node name, `gen<pid>@<host>` (the `origin` header).
    origin: str
    content_type: str = "application/json"
    #: Written into frozen signatures as Celery writes `app.thread_oid`; `None` writes none.
    reply_to: str | None = None
    #: The task this runs inside, if any: fills in `root_id`/`parent_id` as Celery's
    #: `send_task` does from `current_worker_task`.
    current: Message | None = None


def task_message(
    name: str,
    args: Any,
    kwargs: Any,
    options: Mapping[str, Any],
    env: Env,
) -> Outgoing:
    """The message Celery's `send_task(name, args, kwargs, **options)` would publish.

    Raises `NotSupportedError` for an option hare cannot honour (custom exchanges and
    routing keys, compression, ...) and `ConfigurationError` for a malformed one.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a signature's task must be a task name, not {name!r}")
    if not isinstance(args, list | tuple):
        raise ConfigurationError(f"task {name}: args must be a list or tuple, not {args!r:.60}")
    if not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"task {name}: kwargs must be a mapping, not {kwargs!r:.60}")
    stamps = _stamps(name, options)
    for key in options:
        if key not in _KNOWN and key not in stamps and key not in _CALL_ONLY:
            raise NotSupportedError(f"option {key!r} of a {name} signature", _why(key))
    opt = options.get
    task_id = opt("task_id") or env.new_id()
    root_id, parent_id = opt("root_id"), opt("parent_id")
    current = env.current
    if current is not None and (not root_id or not parent_id):
        root_id = root_id or current.root_id or current.id
        parent_id = parent_id or current.id
    countdown = opt("countdown")
    eta = _moment(name, "eta", opt("eta"), env.now)
    if countdown:  # Celery: a countdown wins over an eta
        eta = _moment(name, "countdown", countdown, env.now)
    headers: dict[str, Any] = dict(_mapping(name, "headers", opt("headers")))
    if stamps:
        headers["stamped_headers"] = list(options["stamped_headers"])
        headers["stamps"] = {key: copy.deepcopy(options[key]) for key in stamps}
    nesting = opt("replaced_task_nesting") or 0
    if nesting:
        headers["replaced_task_nesting"] = nesting
    chord = opt("chord")
    if chord is not None and not isinstance(chord, Mapping):
        raise ConfigurationError(f"task {name}: chord= takes the chord body's signature")
    queue = opt("queue")
    if queue is not None and (not isinstance(queue, str) or not validate_queue_name(queue)):
        raise NotSupportedError(f"queue={queue!r:.60} of a {name} signature", "give a queue name")
    serializer = opt("serializer")
    return queue, Message(
        id=task_id,
        task=name,
        args=tuple(args),
        kwargs=dict(kwargs),
        embed=Embed(
            callbacks=_signatures(name, "link", opt("link")),
            errbacks=_signatures(name, "link_error", opt("link_error")),
            chain=_signatures(name, "chain", opt("chain")),
            chord=None if chord is None else copy.deepcopy(dict(chord)),
        ),
        eta=eta,
        expires=_moment(name, "expires", opt("expires"), env.now),
        retries=_int(name, "retries", opt("retries")) or 0,
        root_id=root_id or task_id,
        parent_id=parent_id,
        group=opt("group_id"),
        group_index=_int(name, "group_index", opt("group_index")),
        timelimit=(_limit(name, "time_limit", opt), _limit(name, "soft_time_limit", opt)),
        shadow=opt("shadow"),
        argsrepr=safe_repr(args) if opt("argsrepr") is None else opt("argsrepr"),
        kwargsrepr=opt("kwargsrepr"),
        origin=env.origin,
        ignore_result=opt("ignore_result", False),
        reply_to=opt("reply_to") or env.reply_to,
        correlation_id=task_id,
        priority=_int(name, "priority", opt("priority")),
        headers=headers,
        content_type=env.content_type
        if serializer is None
        else get_serializer(str(serializer)).content_type,
    )


def _why(key: str) -> str:
    if key in _ROUTING:
        return "hare publishes to the default exchange and routes by queue=; use queue="
    return "hare's workflows do not know this send_task option"


def _stamps(name: str, options: Mapping[str, Any]) -> frozenset[str]:
    """The option keys that are stamps (Celery 5.3 stamping), named by `stamped_headers`."""
    stamped = options.get("stamped_headers")
    if not stamped:
        return frozenset()
    if not isinstance(stamped, list | tuple) or not all(isinstance(k, str) for k in stamped):
        raise ConfigurationError(f"task {name}: stamped_headers must be a list of option names")
    missing = [key for key in stamped if key not in options]
    if missing:
        raise ConfigurationError(f"task {name}: stamped headers without a value: {missing}")
    return frozenset(stamped)


def _signatures(name: str, option: str, value: Any) -> tuple[Mapping[str, Any], ...] | None:
    if value is None:
        return None
    many = value if isinstance(value, list | tuple) else [value]
    for one in many:
        if not isinstance(one, Mapping) or not isinstance(one.get("task"), str):
            raise ConfigurationError(f"task {name}: {option}= takes signatures, got {one!r:.80}")
    # A snapshot: Celery serializes the message when it sends it.
    return tuple(copy.deepcopy(dict(one)) for one in many)


def _mapping(name: str, option: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"task {name}: {option}= must be a mapping, not {value!r:.60}")
    return value


def _int(name: str, option: str, value: Any) -> int | None:
    if value is None or (type(value) is int and value >= 0):
        return value
    raise ConfigurationError(f"task {name}: {option} must be an int >= 0, not {value!r:.60}")


def _limit(name: str, option: str, get: Callable[[str], Any]) -> float | None:
    value: float | None = get(option)
    if value is None or (type(value) in (int, float) and value > 0):
        return value
    raise ConfigurationError(f"task {name}: {option} must be a positive number, not {value!r}")


def _moment(name: str, option: str, value: Any, now: float) -> datetime | None:
    """An absolute, timezone-aware time from seconds, a datetime or an ISO-8601 string."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(now + value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    raise ConfigurationError(
        f"task {name}: {option} must be seconds, a datetime or an ISO-8601 string, "
        f"not {value!r:.60}"
    )
