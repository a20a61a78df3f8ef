"""Celery's signals (`celery.signals`): hare's own, plus the ones only Celery has.

Every signal hare sends is `hare.signals`' object itself, so a receiver connected here runs
when hare's worker sends it, with Celery's arguments. Of the Celery-only signals:

* `import_modules` is sent by hare_compat when the worker imports the task modules;
* `celeryd_init` and `celeryd_after_setup` are sent when `hare worker` loads the app, with
  `sender` the worker's node name, `conf` the app's settings and `instance=None` (there is no
  Celery `WorkController`);
* the rest are never sent (no beat process, no prefork pool, no Celery events): connecting a
  receiver to one logs a notice once, so the receiver's silence is not a surprise.
"""

from __future__ import annotations

import logging
from typing import Any

from hare.signals import Receiver, Signal
from hare.signals import after_setup_logger as after_setup_logger
from hare.signals import after_task_publish as after_task_publish
from hare.signals import before_task_publish as before_task_publish
from hare.signals import setup_logging as setup_logging
from hare.signals import task_failure as task_failure
from hare.signals import task_postrun as task_postrun
from hare.signals import task_prerun as task_prerun
from hare.signals import task_received as task_received
from hare.signals import task_rejected as task_rejected
from hare.signals import task_retry as task_retry
from hare.signals import task_revoked as task_revoked
from hare.signals import task_success as task_success
from hare.signals import task_unknown as task_unknown
from hare.signals import worker_init as worker_init
from hare.signals import worker_process_init as worker_process_init
from hare.signals import worker_ready as worker_ready
from hare.signals import worker_shutdown as worker_shutdown
from hare.signals import worker_shutting_down as worker_shutting_down

__all__ = (
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_embedded_init",
    "beat_init",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "eventlet_pool_apply",
    "eventlet_pool_postshutdown",
    "eventlet_pool_preshutdown",
    "eventlet_pool_started",
    "heartbeat_sent",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "user_preload_options",
    "worker_before_create_process",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
)

logger = logging.getLogger("hare_compat.signals")


class NeverSent(Signal):
    """A Celery signal hare has no occasion to send; connecting to it logs a notice once."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(name)
        self.why = why
        self._noticed = False

    def connect(
        self,
        receiver: Receiver | None = None,
        /,
        *,
        sender: Any = None,
        dispatch_uid: object = None,
        weak: bool = False,
    ) -> Any:
        if not self._noticed:
            self._noticed = True
            logger.info("hare_compat: signal %s is never sent: %s", self.name, self.why)
        if receiver is None:
            return super().connect(sender=sender, dispatch_uid=dispatch_uid, weak=weak)
        return super().connect(receiver, sender=sender, dispatch_uid=dispatch_uid, weak=weak)


import_modules = Signal("import_modules")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")

_NO_BEAT = "hare runs periodic tasks without a beat process"
_NO_POOL = "hare's worker has no prefork or eventlet pool"
beat_init = NeverSent("beat_init", _NO_BEAT)
beat_embedded_init = NeverSent("beat_embedded_init", _NO_BEAT)
heartbeat_sent = NeverSent("heartbeat_sent", "hare sends no Celery event heartbeats")
task_internal_error = NeverSent("task_internal_error", "hare dead-letters what it cannot run")
after_setup_task_logger = NeverSent(
    "after_setup_task_logger", "hare does not set up task loggers; get_task_logger works as is"
)
worker_before_create_process = NeverSent("worker_before_create_process", _NO_POOL)
worker_process_shutdown = NeverSent("worker_process_shutdown", _NO_POOL)
eventlet_pool_started = NeverSent("eventlet_pool_started", _NO_POOL)
eventlet_pool_preshutdown = NeverSent("eventlet_pool_preshutdown", _NO_POOL)
eventlet_pool_postshutdown = NeverSent("eventlet_pool_postshutdown", _NO_POOL)
eventlet_pool_apply = NeverSent("eventlet_pool_apply", _NO_POOL)
user_preload_options = NeverSent("user_preload_options", "hare's command has no preload options")
