"""The RabbitMQ transport (AMQP 0-9-1 on aiormq): the only package that imports aiormq.

* `transport`: `AmqpTransport`, hare's `Transport` on one aiormq connection;
* `errors`: aiormq and pamqp errors -> hare's errors, in one place;
* `acks`: acknowledgements coalesced per channel.
"""

from hare.transport.amqp.transport import AmqpTransport as AmqpTransport

__all__ = ("AmqpTransport",)
