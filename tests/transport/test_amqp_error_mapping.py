"""How the AMQP transport names what RabbitMQ says when it refuses something (no broker).

The texts are RabbitMQ's own, as 4.0.5 words them (research/rabbitmq4); the live refusals
are exercised on both brokers in tests/amqp (message size) and tests/worker/test_not_ready.py.
"""

from __future__ import annotations

from aiormq import exceptions as aiormq_errors

from hare import errors
from hare.core.envelope import Envelope, Properties
from hare.transport.amqp.errors import broker_error

ENVELOPE = Envelope(exchange="", routing_key="q", body=b"", properties=Properties())


def _map(exc: BaseException, op: str = "publish") -> errors.BrokerError:
    return broker_error(exc, op, "what", ENVELOPE, timeout=5, connected=True)  # type: ignore[arg-type]


def test_a_message_over_the_broker_s_limit_is_too_large() -> None:
    refusal = aiormq_errors.ChannelPreconditionFailed(
        406,
        "PRECONDITION_FAILED - message size 20971520 is larger than configured max size 16777216",
    )
    error = _map(refusal)
    assert isinstance(error, errors.MessageTooLarge) and error.routing_key == "q"


def test_a_denied_deprecated_feature_is_not_a_lost_connection() -> None:
    refusal = aiormq_errors.ConnectionInternalError(
        541,
        "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\nIts use is not "
        "permitted per the configuration (overriding the default, which is permitted): ...",
    )
    error = _map(refusal, "declare")
    assert type(error) is errors.BrokerError
    assert "does not permit it" in str(error) and "transient_nonexcl_queues" in str(error)


def test_a_replica_not_running_yet_is_not_ready() -> None:
    refusal = aiormq_errors.ChannelPreconditionFailed(
        406,
        "PRECONDITION_FAILED - stream queue 'hare.revoked.v1' in vhost '/' does not have a "
        "running replica on the local node",
    )
    assert isinstance(_map(refusal, "declare"), errors.BrokerNotReady)
