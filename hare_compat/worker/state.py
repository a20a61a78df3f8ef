"""`celery.worker.state`: what the workers running in this process know, as Celery names it.

Celery's worker keeps process-wide sets that tests and extensions read: the ids of tasks that
succeeded here (`successful_requests`), the revoked ids (`revoked`) and revoked stamps
(`revoked_stamps`). hare keeps these per worker; this module shows the hare workers running in
this process (a `hare worker`, or the in-process worker of `hare_compat.contrib.pytest`)
through the same names. Changes go to those workers: `revoked.discard(id)` lets a task run,
`revoked_stamps.clear()` forgets every revoked stamp.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hare import signals
from hare.context import current
from hare.control.revocation_stream import Revocations
from hare.worker.worker import Worker

__all__ = (
    "SUCCESSFUL_MAX",
    "revoked",
    "revoked_stamps",
    "successful_requests",
    "workers",
)

#: How many succeeded ids `successful_requests` keeps (Celery's `SUCCESSFUL_MAX`).
SUCCESSFUL_MAX = 1000

_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


def workers() -> list[Worker]:
    """The hare workers started in this process and not yet shut down."""
    return list(_workers)


class LimitedIds:
    """A set of ids that keeps the newest `maxlen` (the part of Celery's `LimitedSet` used)."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, task_id: str) -> None:
        self._ids[task_id] = time.monotonic()
        self._ids.move_to_end(task_id)
        while len(self._ids) > self.maxlen:
            self._ids.popitem(last=False)

    def discard(self, task_id: str) -> None:
        self._ids.pop(task_id, None)

    def clear(self) -> None:
        self._ids.clear()

    def as_dict(self) -> dict[str, float]:
        return dict(self._ids)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def __len__(self) -> int:
        return len(self._ids)


def _revocations() -> Iterator[Revocations]:
    """The revocations of the running workers of this process."""
    return (w.revocations for w in workers() if w.revocations is not None)


class RevokedView:
    """The ids the workers of this process hold revoked (Celery's `state.revoked`)."""

    def _revoked_at(self) -> dict[str, float]:
        """Each revoked id with when (wall clock) it was revoked, the earliest among workers."""
        at: dict[str, float] = {}
        for revocations in _revocations():
            for task_id, ends in revocations.revoked_until().items():
                at[task_id] = min(ends - revocations.ttl, at.get(task_id, ends))
        return at

    def add(self, task_id: str) -> None:
        for revocations in _revocations():
            revocations.apply([task_id])

    def discard(self, task_id: str) -> None:
        for revocations in _revocations():
            revocations.forget(task_id)

    def clear(self) -> None:
        for task_id in list(self._revoked_at()):
            self.discard(task_id)

    def as_dict(self) -> dict[str, float]:
        """Each id with when it was revoked, on this process's `time.monotonic()` clock."""
        wall, mono = time.time(), time.monotonic()
        return {
            task_id: min(mono, mono - (wall - at)) for task_id, at in self._revoked_at().items()
        }

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and any(r.is_revoked(task_id) for r in _revocations())

    def __iter__(self) -> Iterator[str]:
        return iter(self._revoked_at())

    def __len__(self) -> int:
        return len(self._revoked_at())


class RevokedStampsView:
    """The stamps the workers of this process hold revoked (Celery's `state.revoked_stamps`)."""

    def clear(self) -> None:
        for revocations in _revocations():
            revocations.stamps.clear()

    def update(self, headers: dict[str, Any]) -> None:
        for revocations in _revocations():
            revocations.stamps.add(headers)


successful_requests = LimitedIds(SUCCESSFUL_MAX)
revoked = RevokedView()
revoked_stamps = RevokedStampsView()


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    if isinstance(sender, Worker):
        _workers.add(sender)


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    if isinstance(sender, Worker):
        _workers.discard(sender)


def _on_success(sender: Any = None, **_: Any) -> None:
    context = current()
    if context is not None and not context.is_eager and context.queue is not None:
        successful_requests.add(context.id)


signals.worker_init.connect(_on_worker_init, dispatch_uid="hare_compat.worker.state.init")
signals.worker_shutdown.connect(_on_worker_shutdown, dispatch_uid="hare_compat.worker.state.down")
signals.task_success.connect(_on_success, dispatch_uid="hare_compat.worker.state.success")
