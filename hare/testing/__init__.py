"""A test kit for code built on hare.

* `ManualClock` (`clock`): a clock that only moves when the test says so. Give it to the
  runtime and the memory transport, and timers, TTLs and retries run without real waiting.
* `memory_app`, `running_worker`, `Ledger`, `publish_raw`, `drain`, `until`, `eventually`
  (`runtime`): an app on the in-process `memory://` broker, a worker running for the length
  of a block, a record of what ran, raw access to queues, and waiting for a condition (see
  `hare.testing.runtime`).
* `hare.testing.transport_contract`: the behaviour every `Transport` must show, as a pytest
  class a third-party transport subclasses. It needs pytest and anyio, so it is not imported
  here: import it from test code only.

`docs/testing.md` shows both in use.
"""

from hare.testing.clock import ManualClock as ManualClock
from hare.testing.runtime import Ledger as Ledger
from hare.testing.runtime import drain as drain
from hare.testing.runtime import eventually as eventually
from hare.testing.runtime import memory_app as memory_app
from hare.testing.runtime import publish_raw as publish_raw
from hare.testing.runtime import running_worker as running_worker
from hare.testing.runtime import until as until

__all__ = (
    "Ledger",
    "ManualClock",
    "drain",
    "eventually",
    "memory_app",
    "publish_raw",
    "running_worker",
    "until",
)
