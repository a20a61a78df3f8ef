"""Celery's remote-control commands a hare worker answers without carrying them out.

Flower's buttons and `celery control ...` send these. A hare worker never leaves one
unanswered: it replies with Celery's error shape, `{"error": <why>}` (what a Celery worker
replies when a command fails), which Flower shows as the reason ("Failed to grow the pool:
..."), and logs the refusal once per command at WARNING (a `shutdown` is broadcast without a
reply, so the log is where it shows). `enable_events` is answered as Celery answers it.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ("REFUSED", "answer")

logger = logging.getLogger("hare.control")

_FIXED_POOL = (
    "a hare worker's concurrency is fixed at start (-c); an idle slot costs nothing, so there is "
    "nothing to scale: run more workers or --processes"
)
_FIXED_QUEUES = (
    "a hare worker consumes the queues it started with (-Q); start a worker for another queue"
)

#: Each command refused, and why.
REFUSED = {
    "shutdown": "hare workers are stopped by their supervisor: SIGTERM drains them (systemd, "
    "Kubernetes, hare worker --processes); remote shutdown is not honoured",
    "pool_restart": "hare workers do not reload code; restart the worker (SIGTERM drains it)",
    "pool_grow": _FIXED_POOL,
    "pool_shrink": _FIXED_POOL,
    "autoscale": _FIXED_POOL,
    "add_consumer": _FIXED_QUEUES,
    "cancel_consumer": _FIXED_QUEUES,
    "rate_limit": "a hare app's tasks have no rate limits (a hare_compat app's do, and answer it)",
    "time_limit": "time limits are the tasks' own (time_limit=, soft_time_limit=, or "
    "task_time_limit in a Celery app's configuration); they cannot be changed remotely",
    "disable_events": "a hare worker sends Celery events for its whole run when started with -E "
    "(worker_send_task_events); restart it without -E to stop them",
}


def answer(method: str, app: Any, nodename: str, refused: set[str]) -> dict[str, str] | None:
    """The reply to `method` if it is one of the commands above, else None. `refused` holds
    the commands already logged (each is logged once)."""
    if method == "enable_events":
        settings = getattr(app, "settings", None)
        if getattr(settings, "worker_send_task_events", False):
            return {"ok": "task events already enabled"}
        reason = (
            f"enable_events refused: {nodename} was started without -E "
            "(worker_send_task_events), and a hare worker sends Celery events only when started so"
        )
    elif method in REFUSED:
        reason = f"{method} refused: {REFUSED[method]}"
    else:
        return None
    if method not in refused:
        refused.add(method)
        logger.warning("remote control: %s", reason)
    return {"error": reason}
