"""An in-process broker with RabbitMQ 3.10's semantics, for tests that need no broker.

* `transport`: `MemoryTransport`, hare's `Transport` on a `MemoryBroker`;
* `broker`: `MemoryBroker`, the exchanges, queues and streams of one "server";
* `queue`, `stream`, `topology`, `timer`: a queue's messages, a stream's log, what a
  declaration means, and TTL expiry on the injected clock.
"""

from hare.transport.memory.broker import MemoryBroker as MemoryBroker
from hare.transport.memory.transport import MemoryTransport as MemoryTransport

__all__ = ("MemoryBroker", "MemoryTransport")
