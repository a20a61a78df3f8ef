"""Signals: named hooks other code connects receivers to, with Celery's names and arguments.

`hare_compat.signals` re-exports these, so a receiver written for Celery
(`@task_prerun.connect def f(sender=None, task_id=None, **kwargs)`) runs unchanged. Every
signal is sent with keyword arguments only; a receiver that raises is logged and the others
still run: a broken receiver never fails a task or stops a worker.

Where each is sent (the worker's order for one task: prerun, then success, failure or retry,
then postrun, all in the context that runs the task: the loop for async tasks, the pool
thread for sync ones):

* `task_prerun(sender=task, task_id, task, args, kwargs)`
* `task_success(sender=task, result)`
* `task_failure(sender=task, task_id, exception, args, kwargs, traceback, einfo)` (final only)
* `task_retry(sender=task, request, reason, einfo)`
* `task_postrun(sender=task, task_id, task, args, kwargs, retval, state)`
* `task_revoked(sender=task, request, terminated, signum, expired)`: a revoked or expired
  message discarded, or a running call terminated (sent instead of `task_failure`, then
  `task_postrun(state="REVOKED")`)
* `task_received(sender=worker nodename, request)`, `task_rejected(sender=worker, message, exc)`,
  `task_unknown(sender=worker, name, id, message, exc)`
* `before_task_publish(sender=name, body, exchange, routing_key, headers, properties,
  declare, retry_policy)` and `after_task_publish(sender=name, body, exchange, routing_key)`
* `worker_init(sender=worker)`, `worker_process_init(sender=worker)`,
  `worker_ready(sender=worker)`, `worker_shutting_down(sender=hostname, sig, how, exitcode)`,
  `worker_shutdown(sender=worker)`, `setup_logging(loglevel, logfile, format, colorize)`,
  `after_setup_logger(logger, loglevel, logfile, format, colorize)`
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, overload

__all__ = (
    "Signal",
    "after_setup_logger",
    "after_task_publish",
    "before_task_publish",
    "setup_logging",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
)

logger = logging.getLogger("hare.signals")

Receiver = Callable[..., Any]


class Signal:
    """A named hook: `connect` receivers, `send` to call them all."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[object, Receiver, Any]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}>"

    @overload
    def connect(self, receiver: Receiver, /) -> Receiver: ...

    @overload
    def connect(
        self, /, *, sender: Any = None, dispatch_uid: object = None, weak: bool = False
    ) -> Callable[[Receiver], Receiver]: ...

    @overload
    def connect(
        self,
        receiver: Receiver,
        /,
        *,
        sender: Any = None,
        dispatch_uid: object = None,
        weak: bool = False,
    ) -> Receiver: ...

    def connect(
        self,
        receiver: Receiver | None = None,
        /,
        *,
        sender: Any = None,
        dispatch_uid: object = None,
        weak: bool = False,
    ) -> Receiver | Callable[[Receiver], Receiver]:
        """Connect `receiver`, for every sender or only `sender`; usable as a decorator.

        `dispatch_uid` makes connecting twice (e.g. a module imported twice) a no-op. Receivers
        are held strongly whatever `weak` says (Celery's default weak references surprise
        people whose receivers are closures).
        """

        def add(fn: Receiver) -> Receiver:
            key = dispatch_uid if dispatch_uid is not None else fn
            with self._lock:
                if not any(k == key and s is sender for k, _, s in self._receivers):
                    self._receivers.append((key, fn, sender))
            return fn

        return add(receiver) if receiver is not None else add

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: object = None
    ) -> bool:
        """Disconnect a receiver; whether one was connected."""
        key = dispatch_uid if dispatch_uid is not None else receiver
        with self._lock:
            kept = [r for r in self._receivers if not (r[0] == key and r[2] is sender)]
            found = len(kept) != len(self._receivers)
            self._receivers = kept
        return found

    @property
    def receivers(self) -> int:
        return len(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver connected for `sender` (or for any sender); return the answers.

        A receiver that raises is logged; its answer is the exception, and the rest still run.
        """
        if not self._receivers:
            return []
        answers: list[tuple[Receiver, Any]] = []
        for _, fn, wanted in list(self._receivers):
            if wanted is not None and wanted is not sender:
                continue
            try:
                answers.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("signal %s: receiver %r raised", self.name, fn)
                answers.append((fn, exc))
        return answers


task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_received = Signal("task_received")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutting_down = Signal("worker_shutting_down")
worker_shutdown = Signal("worker_shutdown")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
