"""hare: an asyncio-native task queue that speaks Celery's API and wire protocol on RabbitMQ.

Layout (imports point down only):

* edges: `hare.cli` (the `hare` command); `hare_compat` (Celery's API) builds on `hare`.
* runtime, owns I/O: `app` (tasks, settings, connections), `task`, `publisher`, `portal`
  (sync `delay()`), `worker`.
* the seam: `transport.base.Transport`, implemented by `transport.amqp` (the only module that
  imports aiormq) and `transport.memory` (in-process, for tests).
* pure core, no I/O and no clock: `settings`, `message`, `codec`, `protocol` (Celery protocol
  v2), `topology`, `deadletter`, `outcome`, `errors`.
"""

from hare.app import Hare as Hare
from hare.errors import BrokerError as BrokerError
from hare.errors import BrokerUnavailable as BrokerUnavailable
from hare.errors import ConfigurationError as ConfigurationError
from hare.errors import HareError as HareError
from hare.errors import MessageReturned as MessageReturned
from hare.errors import NotSupportedError as NotSupportedError
from hare.errors import PublishError as PublishError
from hare.errors import Reject as Reject
from hare.errors import Retry as Retry
from hare.errors import TaskNotRegistered as TaskNotRegistered
from hare.task import Sent as Sent
from hare.task import Task as Task
from hare.worker import Worker as Worker

__version__ = "0.1.0"

__all__ = (
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "Hare",
    "HareError",
    "MessageReturned",
    "NotSupportedError",
    "PublishError",
    "Reject",
    "Retry",
    "Sent",
    "Task",
    "Worker",
    "__version__",
)
