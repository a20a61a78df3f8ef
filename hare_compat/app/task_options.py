"""What hare_compat does with each Celery task option (`@app.task(...)` or a class attribute).

* honoured: the retry options, `ignore_result`, `queue`, `rate_limit`, time limits, `expires`,
  `priority`, `typing`, `track_started`, `serializer` (the app's serializer only), and what
  happens when the pool's child running the task dies: `retry_on_worker_lost` (retried as
  `self.retry` would; it wins) or `reject_on_worker_lost` (requeued), else the task fails
  with `WorkerLostError`;
* notice: accepted with one logged notice, because hare already behaves one fixed way
  (`acks_late=False`: hare acks after the task ran, always);
* refused: `NotSupportedError` naming the option.

An option that is none of Celery's is accepted only when the base class defines it (a custom
`Task` subclass's own setting), as Celery sets every option as a class attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hare.errors import ConfigurationError, NotSupportedError
from hare_compat.ratelimit import parse_rate

__all__ = ("check_options", "check_values")

logger = logging.getLogger("hare_compat.task")

HONOURED = frozenset(
    {
        "max_retries",
        "default_retry_delay",
        "autoretry_for",
        "dont_autoretry_for",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "retry_kwargs",
        "ignore_result",
        "queue",
        "rate_limit",
        "time_limit",
        "soft_time_limit",
        "serializer",
        "typing",
        "expires",
        "priority",
        "trail",
        "resultrepr_maxsize",
        "shadow_name",
        "track_started",
        "reject_on_worker_lost",
        "retry_on_worker_lost",
    }
)

#: option -> (the value Celery behaves like hare for, what hare does instead).
NOTICES: Mapping[str, tuple[Any, str]] = {
    "acks_late": (True, "hare acks a message only after its task ran, always"),
    "acks_on_failure_or_timeout": (True, "hare dead-letters a failed task and acks it"),
    "acks_on_failure": (True, "hare dead-letters a failed task and acks it"),
    "acks_on_timeout": (True, "hare dead-letters a timed-out task and acks it"),
    "send_events": (True, "hare's workers send the task events they send for every task"),
    "store_eager_result": (False, "eager results are not stored"),
}

REFUSED: Mapping[str, str] = {
    "exchange": "route with queue= or task_routes; hare publishes to queues",
    "routing_key": "route with queue= or task_routes; hare publishes to queues",
    "exchange_type": "route with queue= or task_routes; hare publishes to queues",
    "delivery_mode": "hare's task messages are always persistent",
    "compression": "hare does not compress message bodies",
    "immediate": "not an AMQP 0-9-1 feature RabbitMQ has",
    "mandatory": "hare always publishes with mandatory and reports unroutable messages",
    "store_errors_even_if_ignored": "an ignored result is not stored, errors neither",
    "backend": "results go to the app's result_backend",
    "Request": "hare's worker has no pluggable request class",
    "Strategy": "hare's worker has no pluggable execution strategy",
}

_noticed: set[tuple[str, str]] = set()


def check_options(options: Mapping[str, Any], base: type, task_name: str) -> None:
    """Refuse decorator options hare cannot honour or does not know."""
    unknown = []
    for name in options:
        if name in REFUSED and options[name] not in (None, False):
            raise NotSupportedError(f"task option {name}= (task {task_name})", REFUSED[name])
        if name in HONOURED or name in NOTICES:
            continue
        if not hasattr(base, name):
            unknown.append(name)
    if unknown:
        raise NotSupportedError(
            f"task option(s) {', '.join(sorted(unknown))} (task {task_name})",
            "not a Celery task option hare_compat knows, nor an attribute of the base class",
        )


def check_values(values: Mapping[str, Any], task_name: str) -> None:
    """Check the values set explicitly for a task (decorator options or class attributes)."""
    for name, (fine, instead) in NOTICES.items():
        value = values.get(name)
        if value is not None and bool(value) != fine and (name, task_name) not in _noticed:
            _noticed.add((name, task_name))
            logger.warning("task %s: %s=%r has no effect: %s", task_name, name, value, instead)
    for name in ("time_limit", "soft_time_limit"):
        value = values.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ConfigurationError(f"task {task_name}: {name} must be seconds, not {value!r}")
    retries = values.get("max_retries")
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise ConfigurationError(
            f"task {task_name}: max_retries must be an int >= 0 or None, not {retries!r}"
        )
    delay = values.get("default_retry_delay")
    if delay is not None and (not isinstance(delay, int | float) or delay < 0):
        raise ConfigurationError(
            f"task {task_name}: default_retry_delay must be seconds, not {delay!r}"
        )
    for name in ("autoretry_for", "dont_autoretry_for", "throws"):
        for kind in values.get(name) or ():
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(
                    f"task {task_name}: {name} takes exception classes, not {kind!r}"
                )
    parse_rate(values.get("rate_limit"))
