"""Recent tasks, as Celery's task events tell them: a bounded ring, newest first. Pure.

Workers started with `-E` (Celery's, and hare's) publish `task-*` events on the `celeryev`
exchange (`hare.dashboard.feed` consumes them): one dict per event, with `type`, `uuid`,
`timestamp`, `hostname` and the fields of its kind (`name`, `args` and `kwargs` as text on
`task-received`; `result` and `runtime` on `task-succeeded`; `exception` and `traceback` on
`task-failed` and `task-retried`...). The ring merges them by task id into one `TaskSeen`,
keeps the `capacity` most recently updated, and drops the oldest. Worker heartbeats
(`worker-*`) are kept per node, for the workers page.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ("STATES", "TaskRing", "TaskSeen")

#: The state each task event leaves a task in (Celery's `celery.events.state`).
STATES = {
    "task-sent": "PENDING",
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-rejected": "REJECTED",
    "task-revoked": "REVOKED",
    "task-retried": "RETRY",
}
#: Fields copied from an event onto its task when the event has them.
_FIELDS = (
    "name",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "hostname",
    "root_id",
    "parent_id",
)


@dataclass(slots=True)
class TaskSeen:
    """One task as its events described it so far."""

    id: str
    state: str = "PENDING"
    name: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    hostname: str | None = None
    runtime: float | None = None
    retries: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    updated: float = 0.0
    events: list[str] = field(default_factory=list)


class TaskRing:
    """The `capacity` tasks most recently heard of, and the last heartbeat of each worker."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._tasks: OrderedDict[str, TaskSeen] = OrderedDict()
        self.workers: dict[str, Mapping[str, Any]] = {}
        self.received = 0  # events taken in, of any kind

    def __len__(self) -> int:
        return len(self._tasks)

    def apply(self, event: Mapping[str, Any]) -> TaskSeen | None:
        """Take in one event; the task it updated, or None (a worker event, or not a task's)."""
        kind = event.get("type")
        if not isinstance(kind, str):
            return None
        self.received += 1
        if kind.startswith("worker-") and isinstance(event.get("hostname"), str):
            self.workers[event["hostname"]] = dict(event)
            return None
        task_id = event.get("uuid")
        if kind not in STATES or not isinstance(task_id, str) or not task_id:
            return None
        seen = self._tasks.pop(task_id, None) or TaskSeen(id=task_id)
        self._tasks[task_id] = seen
        _merge(seen, kind, event)
        while len(self._tasks) > self.capacity:
            self._tasks.popitem(last=False)
        return seen

    def get(self, task_id: str) -> TaskSeen | None:
        return self._tasks.get(task_id)

    def recent(self, limit: int = 100, search: str = "") -> list[TaskSeen]:
        """Newest first; with `search`, only the tasks whose id starts with it or whose name
        contains it."""
        found = []
        for seen in reversed(self._tasks.values()):
            if search and not (seen.id.startswith(search) or search in (seen.name or "")):
                continue
            found.append(seen)
            if len(found) >= limit:
                break
        return found

    def last_of(self, task_name: str) -> TaskSeen | None:
        """The most recently updated task named `task_name` (a schedule's last run)."""
        for seen in reversed(self._tasks.values()):
            if seen.name == task_name:
                return seen
        return None


def _merge(seen: TaskSeen, kind: str, event: Mapping[str, Any]) -> None:
    stamp = event.get("timestamp")
    when = float(stamp) if isinstance(stamp, int | float) else None
    # A late `task-received` must not take a finished task back to RECEIVED.
    if not (seen.finished is not None and kind in ("task-sent", "task-received")):
        seen.state = STATES[kind]
    for name in _FIELDS:
        value = event.get(name)
        if value is not None:
            setattr(seen, name, str(value))
    runtime, retries = event.get("runtime"), event.get("retries")
    if isinstance(runtime, int | float) and not isinstance(runtime, bool):
        seen.runtime = float(runtime)
    if isinstance(retries, int) and not isinstance(retries, bool):
        seen.retries = retries
    if when is not None:
        seen.updated = max(seen.updated, when)
        if kind == "task-received":
            seen.received = when
        elif kind == "task-started":
            seen.started = when
        elif kind in ("task-succeeded", "task-failed", "task-rejected", "task-revoked"):
            seen.finished = when
    seen.events.append(kind)
