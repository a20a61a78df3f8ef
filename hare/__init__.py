"""hare: an asyncio-native task queue that speaks Celery's API and wire protocol on RabbitMQ.

Layout (imports point down only):

* edges: `hare.cli` (the `hare` command); `hare_compat` (Celery's API) builds on `hare`.
* runtime, owns I/O: `app` (tasks, settings, connections), `task`, `publisher`, `portal`
  (sync `delay()`), `worker`.
* the seam: `transport.base.Transport`, implemented by `transport.amqp` (with
  `transport.amqp_errors`, the only modules that import aiormq; `transport.acks` coalesces
  acks) and `transport.memory` (in-process, for tests).
* runtime, continued: `processing` (one delivery: decode, run, record, follow up),
  `runs` (a copy of a delivery is settled by its first run, not run again), `recording`
  (results and what follows a run), `lifecycle` (a call's context and signals),
  `settlement` (ack, retry, dead-letter),
  `execution` and `isolation` (running functions, time limits), `followups` (callbacks,
  chains, chords), `results` and `backends` (rpc://, redis://), `asyncresult`, `control`,
  `control_server` and `revocations` (Celery's pidbox, the revocation stream), `reconnect`,
  `periodic` (beat-less schedules), `health`, `supervisor` (`--processes`), `dlq`.
* pure core, no I/O and no clock: `settings`, `message`, `codec`, `protocol` (Celery protocol
  v2), `topology`, `ladder` (delays), `retry`, `ticks`, `schedule` and `crontab`, `deadletter`,
  `outcome`, `errors`, `result` and `backends.celery_format`, `canvas*` (workflows), `pidbox`,
  `revocation`.
"""

import importlib as _importlib
import typing as _typing

from hare.app import Hare as Hare
from hare.errors import BrokerError as BrokerError
from hare.errors import BrokerUnavailable as BrokerUnavailable
from hare.errors import ConfigurationError as ConfigurationError
from hare.errors import HareError as HareError
from hare.errors import Ignore as Ignore
from hare.errors import MessageReturned as MessageReturned
from hare.errors import NotSupportedError as NotSupportedError
from hare.errors import PublishError as PublishError
from hare.errors import Reject as Reject
from hare.errors import Retry as Retry
from hare.errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from hare.errors import TaskNotRegistered as TaskNotRegistered
from hare.errors import TaskRevoked as TaskRevoked
from hare.errors import TimeLimitExceeded as TimeLimitExceeded
from hare.periodic.schedules import cron as cron
from hare.periodic.schedules import every as every
from hare.results.handle import AsyncResult as AsyncResult
from hare.task import Sent as Sent
from hare.task import Task as Task

if _typing.TYPE_CHECKING:
    from hare.worker.worker import Worker as Worker

from hare._version import __version__ as __version__

#: Loaded on first use (PEP 562): a process that only publishes never imports the worker side
#: (`hare.worker`, `hare.worker.delivery`, `hare.worker.runner`, multiprocessing...).
_LAZY = {"Worker": "hare.worker"}


if not _typing.TYPE_CHECKING:  # the type checker sees the imports, not a catch-all __getattr__

    def __getattr__(name: str) -> _typing.Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))


__all__ = (
    "AsyncResult",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "Hare",
    "HareError",
    "Ignore",
    "MessageReturned",
    "NotSupportedError",
    "PublishError",
    "Reject",
    "Retry",
    "Sent",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskNotRegistered",
    "TaskRevoked",
    "TimeLimitExceeded",
    "Worker",
    "__version__",
    "cron",
    "every",
)
