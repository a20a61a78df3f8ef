"""One call of a task -> the message that carries it: the one place send options become a
`Message`.

Every way of sending comes here: the native API (`Hare.send_task`, `Task.apply_async`,
`delay`), a workflow (`hare.canvas`: each task of a signature a client applies or a worker
continues) and hare_compat (Celery's `apply_async` / `send_task`, its names mapped onto these
options). Pure: the time, new ids, the app's defaults and the calling task come in an `Env`.

The options are Celery's `apply_async` names: `queue`, `task_id`, `countdown`, `eta`,
`expires`, `priority`, `headers`, `ignore_result`, `shadow`, `time_limit`,
`soft_time_limit`, `argsrepr`, `kwargsrepr`, `reply_to`, `retries`, `serializer`, the
workflow's `link`, `link_error`, `chain`, `chord`, `group_id`, `group_index`, `root_id`,
`parent_id`, `replaced_task_nesting`, and stamps (`stamped_headers=[names]` with each name
given as an option of its own, as Celery stamps; or `stamps={name: value}`). The rules:

* an option hare cannot honour raises `NotSupportedError` naming it, a malformed value
  `ConfigurationError`: nothing is silently dropped;
* `countdown=` with `eta=` raises `ConfigurationError` naming both, except for options that
  came off the wire (`from_wire=True`: a workflow a Celery client built, continued by a hare
  worker), where Celery's rule holds since the client already accepted them: a countdown
  other than 0 wins. A countdown of 0 adds no `eta` (Celery's rule);
* `countdown=`, `eta=` and `expires=` take seconds from `Env.now`, a `datetime` or an
  ISO-8601 string; a naive time is UTC, as in Celery, and said once per process on the
  `hare` logger (`hare.core.values.warn_if_naive`: the builder's one side effect);
* `priority=` is an int from 0 to 9 (`InvalidPriority` otherwise; 0-255 from the wire);
  none given takes `Env.default_priority`;
* `serializer=` must be one hare has and, when the app names what its workers accept
  (`Env.accept`), one of those: a message its own workers would refuse is an error here;
* outside a task `root_id` is the message's own id; inside one (`Env.current`) the running
  task is the parent and its root the root, as Celery's `send_task` does;
* `ignore_result` not given stays None: the worker asks the task (Celery's `send_task`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hare.core.codec import get_serializer
from hare.core.message import Embed, Message
from hare.core.priority import check_priority
from hare.core.reprs import safe_repr
from hare.core.topology import validate_queue_name
from hare.core.values import moment, signatures, warn_if_naive
from hare.errors import ConfigurationError, NotSupportedError

__all__ = ("OPTIONS", "Env", "Outgoing", "accepted", "build_message", "positive_seconds")

#: A message to publish and its queue; `None` lets the app route it by task name.
Outgoing = tuple[str | None, Message]

#: The options `build_message` reads (besides the stamps that `stamped_headers` names).
OPTIONS = frozenset(
    "queue task_id countdown eta expires priority headers ignore_result shadow time_limit"
    " soft_time_limit argsrepr kwargsrepr reply_to retries serializer link link_error chain"
    " chord group_id group_index root_id parent_id replaced_task_nesting stamped_headers"
    " stamps".split()
)
_ROUTING = "hare publishes to the default exchange and routes by queue=; use queue="
#: Celery options hare cannot honour, with why.
_REFUSED = {
    "exchange": _ROUTING,
    "routing_key": _ROUTING,
    "exchange_type": _ROUTING,
    "compression": "hare does not compress messages",
}
_NO_EMBED = Embed()


@dataclass(frozen=True, slots=True, kw_only=True)
class Env:
    """What building a message needs from outside, passed in so the builder stays pure."""

    #: A new task id (Celery: a uuid4 string).
    new_id: Callable[[], str]
    #: The wall clock (epoch seconds) that `countdown=` and numeric `expires=` count from.
    now: float
    #: The sender's node name, `gen<pid>@<host>` (the `origin` header).
    origin: str | None
    #: The app's serializer's content type: what a call without `serializer=` sends.
    content_type: str = "application/json"
    #: The content types the app's workers accept (`accept_content`): a `serializer=` must
    #: be one of them. `None`: any serializer hare has (a worker continuing a workflow).
    accept: frozenset[str] | None = None
    #: The reply queue a message names when the call gives none (rpc results; Celery's
    #: `app.thread_oid`); `None` names none.
    reply_to: str | None = None
    #: The task this call is made inside, if any: its parent (`parent_id`, `root_id`).
    current: Message | None = None
    #: The priority of a call that gives none (the app's `default_priority`).
    default_priority: int | None = None


def build_message(
    name: str,
    args: Any,
    kwargs: Any,
    options: Mapping[str, Any],
    env: Env,
    *,
    from_wire: bool = False,
) -> Outgoing:
    """The message `send_task(name, args, kwargs, **options)` publishes, and its queue (None:
    route it by task name). `from_wire`: the options came off the wire (see the module's
    rules). Raises `NotSupportedError`, `ConfigurationError`, or `TypeError` for arguments
    that are not a list and a mapping (as Celery)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a task name must be a non-empty string, not {name!r:.60}")
    if args is not None and not isinstance(args, list | tuple):
        raise TypeError(f"task {name}: args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"task {name}: kwargs must be a mapping, not {type(kwargs).__name__}")
    stamps = _stamps(name, options)
    for key in options:
        if key not in OPTIONS and key not in stamps:
            raise NotSupportedError(key, _REFUSED.get(key, "not an option hare's send_task knows"))
    opt = options.get
    task_id = opt("task_id") or env.new_id()
    root_id, parent_id = opt("root_id"), opt("parent_id")
    current = env.current
    if current is not None and (not root_id or not parent_id):
        root_id = root_id or current.root_id or current.id
        parent_id = parent_id or current.id
    args = () if args is None else args
    return _queue(opt("queue")), Message(
        id=task_id,
        task=name,
        args=tuple(args),
        kwargs={} if kwargs is None else dict(kwargs),
        embed=_embed(name, options),
        eta=_eta(name, opt("countdown"), opt("eta"), env.now, from_wire),
        expires=_moment(name, "expires", opt("expires"), env.now),
        retries=_count(name, "retries", opt("retries")) or 0,
        root_id=root_id or task_id,
        parent_id=parent_id,
        group=opt("group_id"),
        group_index=_count(name, "group_index", opt("group_index")),
        timelimit=(
            positive_seconds("time_limit", opt("time_limit"), name),
            positive_seconds("soft_time_limit", opt("soft_time_limit"), name),
        ),
        shadow=opt("shadow"),
        # From the arguments as given: a list shows as one, as in Celery's.
        argsrepr=safe_repr(args) if opt("argsrepr") is None else opt("argsrepr"),
        kwargsrepr=opt("kwargsrepr"),
        origin=env.origin,
        ignore_result=_flag(name, "ignore_result", opt("ignore_result")),
        reply_to=opt("reply_to") or env.reply_to,
        correlation_id=task_id,
        priority=_priority(name, opt("priority"), env, from_wire),
        headers=_headers(name, options, stamps),
        content_type=_content_type(name, opt("serializer"), env),
    )


def accepted(accept_content: Iterable[str]) -> frozenset[str]:
    """The content types of the `accept_content` entries hare has a serializer for (for
    `Env.accept`); a worker refuses to start with the others (a Celery config's msgpack)."""
    found = set()
    for entry in accept_content:
        try:
            found.add(get_serializer(entry).content_type)
        except ConfigurationError:
            continue
    return frozenset(found)


def positive_seconds(option: str, value: Any, task: str | None = None) -> float | None:
    """`value`, None or a positive number of seconds (`ConfigurationError` otherwise)."""
    if value is None or (type(value) in (int, float) and value > 0):
        return value  # type: ignore[no-any-return]
    where = f"task {task}: " if task else ""
    raise ConfigurationError(
        f"{where}{option} must be a positive number of seconds, not {value!r:.60}"
    )


def _eta(name: str, countdown: Any, eta: Any, now: float, from_wire: bool) -> datetime | None:
    if countdown is not None and eta is not None and not from_wire:
        raise ConfigurationError(
            f"task {name}: countdown={countdown!r:.40} and eta={eta!r:.60} were both given: "
            "give one (Celery would let the countdown win; hare drops no option silently)"
        )
    delay = _moment(name, "countdown", countdown, now)
    return delay if countdown else _moment(name, "eta", eta, now)


def _moment(name: str, option: str, value: Any, now: float) -> datetime | None:
    try:
        when = moment(value, now)
    except ValueError as exc:
        raise ConfigurationError(f"task {name}: {option} {exc}") from None
    warn_if_naive(f"{option}=", value)
    return when


def _queue(queue: Any) -> str | None:
    if not queue:
        return None
    if not isinstance(queue, str):
        raise NotSupportedError(f"queue={queue!r:.60}", "give a queue name")
    return validate_queue_name(queue)


def _count(name: str, option: str, value: Any) -> int | None:
    if value is None or (type(value) is int and value >= 0):
        return value
    raise ConfigurationError(f"task {name}: {option} must be an int >= 0, not {value!r:.60}")


def _priority(name: str, value: Any, env: Env, from_wire: bool) -> int | None:
    if value is None:
        return env.default_priority
    return check_priority(value, name, from_wire=from_wire)


def _flag(name: str, option: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigurationError(f"task {name}: {option} must be True, False or None, not {value!r}")


def _embed(name: str, options: Mapping[str, Any]) -> Embed:
    link, link_error, chain, chord = (
        options.get("link"),
        options.get("link_error"),
        options.get("chain"),
        options.get("chord"),
    )
    if link is None and link_error is None and chain is None and chord is None:
        return _NO_EMBED
    if chord is not None and not isinstance(chord, Mapping):
        raise ConfigurationError(f"task {name}: chord= takes the chord body's signature")
    return Embed(
        callbacks=_signatures(name, "link", link),
        errbacks=_signatures(name, "link_error", link_error),
        chain=_signatures(name, "chain", chain),
        chord=None if chord is None else copy.deepcopy(dict(chord)),
    )


def _signatures(name: str, option: str, value: Any) -> tuple[Mapping[str, Any], ...] | None:
    try:
        many = signatures(value)
        named = many is None or all(isinstance(one.get("task"), str) for one in many)
    except ValueError:
        named = False
    if not named:
        raise ConfigurationError(
            f"task {name}: {option}= takes signatures (dicts with a 'task' name), got {value!r:.80}"
        )
    if many is None:
        return None
    # A snapshot: Celery serializes the message when it sends it.
    return tuple(copy.deepcopy(dict(one)) for one in many)


def _stamps(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The stamps, by name (Celery 5.3 stamping): those `stamped_headers` names, each given
    as an option of its own, and those of `stamps=`; a name given both ways must agree."""
    names, given = options.get("stamped_headers"), options.get("stamps")
    if not names and not given:
        return {}
    if names and (
        not isinstance(names, list | tuple) or not all(isinstance(key, str) for key in names)
    ):
        raise ConfigurationError(f"task {name}: stamped_headers must be a list of option names")
    if given and (not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given)):
        raise ConfigurationError(f"task {name}: stamps= takes a mapping of stamp names to values")
    given = given or {}
    missing = [key for key in names or () if key not in options and key not in given]
    if missing:
        raise ConfigurationError(f"task {name}: stamped headers without a value: {missing}")
    clash = [key for key in given if key in (names or ()) and key in options]
    clash = [key for key in clash if options[key] != given[key]]
    if clash:
        raise ConfigurationError(f"task {name}: stamps given two values: {clash}")
    stamps = {key: options[key] if key in options else given[key] for key in names or ()}
    return {**stamps, **{key: value for key, value in given.items() if key not in stamps}}


def _headers(name: str, options: Mapping[str, Any], stamps: Mapping[str, Any]) -> dict[str, Any]:
    given = options.get("headers")
    if given is not None and not isinstance(given, Mapping):
        raise ConfigurationError(f"task {name}: headers= must be a mapping, not {given!r:.60}")
    headers: dict[str, Any] = dict(given or {})
    if stamps:
        # Celery's client sends the stamps in the headers: their names and their values.
        headers["stamped_headers"] = list(stamps)
        headers["stamps"] = {key: copy.deepcopy(value) for key, value in stamps.items()}
    nesting = _count(name, "replaced_task_nesting", options.get("replaced_task_nesting"))
    if nesting:
        headers["replaced_task_nesting"] = nesting
    return headers


def _content_type(name: str, serializer: Any, env: Env) -> str:
    if serializer is None:
        return env.content_type
    if not isinstance(serializer, str):
        raise ConfigurationError(f"task {name}: serializer= takes a name, not {serializer!r:.60}")
    content_type = get_serializer(serializer).content_type
    if env.accept is not None and content_type not in env.accept | {env.content_type}:
        raise ConfigurationError(
            f"task {name}: serializer={serializer!r} is not in the app's accept_content "
            f"({', '.join(sorted(env.accept))}): its workers would refuse the message; add it "
            "to accept_content"
        )
    return content_type
