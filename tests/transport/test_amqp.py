"""The transport contract on a real RabbitMQ."""

from __future__ import annotations

import pytest

from hare.testing.transport_contract import TransportContract, TransportFactory
from hare.transport.amqp.transport import AmqpTransport
from hare.transport.base import Transport

pytestmark = pytest.mark.amqp


class TestAmqpTransport(TransportContract):
    @pytest.fixture
    def transport_factory(self, amqp_url: str) -> TransportFactory:
        async def connect() -> Transport:
            # 30 s: twice in CI a RabbitMQ 4.0 node busy with the suite took over 5 s to
            # answer a connect (the contract is about behaviour, not connect latency).
            transport = AmqpTransport(amqp_url, connect_timeout=30, publish_timeout=10)
            await transport.connect()
            return transport

        return connect
