"""hare: an asyncio-native task queue that speaks Celery's API and wire protocol on RabbitMQ.

Layout (imports point down only):

* edges: `hare.cli` (the `hare` command); `hare_compat` (Celery's API) builds on `hare`.
* runtime, owns I/O: `app` (tasks, settings, connections), `task`, `publisher`, `portal`
  (sync `delay()`), `worker`.
* the seam: `transport.base.Transport`, implemented by `transport.amqp` (with
  `transport.amqp_errors`, the only modules that import aiormq; `transport.acks` coalesces
  acks) and `transport.memory` (in-process, for tests).
* runtime, continued: `processing` (one delivery: decode, run, record, follow up),
  `lifecycle` (a call's context and signals), `settlement` (ack, retry, dead-letter),
  `execution` and `isolation` (running functions, time limits), `followups` (callbacks,
  chains, chords), `results` and `backends` (rpc://, redis://), `asyncresult`, `control`,
  `control_server` and `revocations` (Celery's pidbox, the revocation stream), `reconnect`,
  `periodic` (beat-less schedules), `health`, `supervisor` (`--processes`), `dlq`.
* pure core, no I/O and no clock: `settings`, `message`, `codec`, `protocol` (Celery protocol
  v2), `topology`, `ladder` (delays), `retry`, `ticks`, `schedule` and `crontab`, `deadletter`,
  `outcome`, `errors`, `result` and `backends.celery_format`, `canvas*` (workflows), `pidbox`,
  `revocation`.
"""

from hare.app import Hare as Hare
from hare.asyncresult import AsyncResult as AsyncResult
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
from hare.schedule import cron as cron
from hare.schedule import every as every
from hare.task import Sent as Sent
from hare.task import Task as Task
from hare.worker import Worker as Worker

__version__ = "0.1.0"

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
