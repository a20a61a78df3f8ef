"""The behaviour every `Transport` must show, written against the Protocol only.

A transport proves itself by subclassing `TransportContract` in a `test_*.py` module and
providing one fixture:

* `transport_factory`: an async callable returning a fresh, *connected* transport on the same
  broker each time it is called (so a test can open a producer and a consumer connection).

    import pytest

    from hare.testing.transport_contract import TransportContract, TransportFactory

    class TestMyTransport(TransportContract):
        @pytest.fixture
        def transport_factory(self) -> TransportFactory:
            async def connect() -> Transport:
                transport = MyTransport("my://broker")
                await transport.connect()
                return transport

            return connect

This module needs pytest and anyio (its tests are `pytest.mark.anyio` coroutines, run on
asyncio by anyio's pytest plugin); `import hare.testing` does not import it.

Each test names everything it declares after a unique token, and every queue is deleted
afterwards because a real broker may be shared. The Protocol has no `delete_exchange`, so
exchanges are declared `auto_delete` and bound to a sink queue at teardown: deleting the
queues deletes them (RabbitMQ 3.10 auto-deletes an exchange when its last binding goes).

Nothing here sleeps for a fixed time. Where a real broker acts asynchronously (a reject, a
closed channel) the tests poll with a deadline (`eventually`); TTL tests use a TTL of 0, which
RabbitMQ applies on arrival, so they need no waiting either. Time-driven expiry is tested on
the memory transport with a `ManualClock` (hare's tests/transport/test_memory.py).

The tests are grouped by concern (`publishing`, `consuming`, `consumers`, `queues`);
`TransportContract` holds them all (its bases in reverse, as pytest collects the last base's
tests first). Marks combine through the class hierarchy (pytest collects `pytestmark` along
the MRO), so a subclass can add `pytestmark = pytest.mark.amqp` and keep the anyio mark set
here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from hare.testing.transport_contract.consumers import ConsumerContract
from hare.testing.transport_contract.consuming import ConsumingContract
from hare.testing.transport_contract.publishing import PublishingContract
from hare.testing.transport_contract.queues import QueueContract
from hare.testing.transport_contract.support import ContractEnv, TransportFactory, eventually

__all__ = ("ContractEnv", "TransportContract", "TransportFactory", "eventually")


class TransportContract(QueueContract, ConsumerContract, ConsumingContract, PublishingContract):
    """Behaviour every Transport shows, on RabbitMQ 3.10 semantics."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    async def env(
        self, transport_factory: TransportFactory, anyio_backend: str
    ) -> AsyncIterator[ContractEnv]:
        env = ContractEnv(transport_factory, "t" + uuid.uuid4().hex[:10])
        try:
            yield env
        finally:
            await env.cleanup()
