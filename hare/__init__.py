"""hare: an asyncio-native task queue that speaks Celery's API and wire protocol on RabbitMQ.

Floors, each importing only those below it (checked by `lint-imports`, see
docs/architecture.md):

* edges: `hare.cli` (the `hare` command); `hare_compat` (Celery's API) builds on `hare`;
* `hare.worker`: consume, admit, run, settle;
* `hare.app` (`Hare`) and `hare.dlq`; `hare.connections` (a publisher per event loop);
* `hare.periodic` (beat-less schedules), `hare.control` (Celery's pidbox, revocation),
  `hare.http` (HTTP push tasks);
* `hare.task` (`Task`, `Sent`) and `hare.publisher`;
* `hare.canvas` (Celery workflows, pure), `hare.results` (task results);
* `hare.transport`: the `Transport` protocol, `transport.amqp` (the only importer of
  aiormq) and `transport.memory` (in-process, for tests); `hare.portal` (sync -> loop);
* `hare.core`: the pure core, no I/O, no clock, no randomness.

Shared by every floor: `errors`, `signals`, `middleware`, `context`, `clock`. The public test kit is
`hare.testing`. `Worker` is loaded on first use: a process that only publishes never
imports the worker.
"""

import importlib as _importlib
import typing as _typing

from hare.app import Hare as Hare
from hare.errors import BrokerError as BrokerError
from hare.errors import BrokerUnavailable as BrokerUnavailable
from hare.errors import ConfigurationError as ConfigurationError
from hare.errors import DeadLetterError as DeadLetterError
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
from hare.errors import WorkerLostError as WorkerLostError
from hare.middleware import Middleware as Middleware
from hare.periodic.schedules import cron as cron
from hare.periodic.schedules import every as every
from hare.results.handle import AsyncResult as AsyncResult
from hare.task import Call as Call
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
    "Call",
    "ConfigurationError",
    "DeadLetterError",
    "Hare",
    "HareError",
    "Ignore",
    "MessageReturned",
    "Middleware",
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
    "WorkerLostError",
    "Worker",
    "__version__",
    "cron",
    "every",
)
