"""A connection the broker refuses says why, in the broker's terms (issue: operator experience).

Each case reaches a real endpoint on 127.0.0.1: the test RabbitMQ with a wrong password or an
unknown vhost, and a port with nothing listening (a silent port: tests/amqp/test_transport_amqp.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from hare.errors import BrokerUnavailable
from hare.transport.amqp import AmqpTransport

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


def _with(url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = parts.username or "guest"
        netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    path = parts.path if vhost is None else f"/{vhost}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _refusal(url: str, connect_timeout: float = 5.0) -> str:
    transport = AmqpTransport([url], connect_timeout=connect_timeout)
    with pytest.raises(BrokerUnavailable) as caught:
        await transport.connect()
    return str(caught.value)


async def test_a_wrong_password_is_an_authentication_failure(amqp_url: str) -> None:
    message = await _refusal(_with(amqp_url, password="not-the-password"))
    user = urlsplit(amqp_url).username or "guest"
    assert f"authentication failed for user {user!r}" in message
    assert "not-the-password" not in message
    assert "no broker within" not in message


async def test_an_unknown_vhost_is_named(amqp_url: str) -> None:
    message = await _refusal(_with(amqp_url, vhost="no-such-vhost-here"))
    assert "vhost 'no-such-vhost-here' does not exist or user" in message
    assert "InvalidFrameError" not in message


async def test_a_closed_port_is_connection_refused() -> None:
    port = _free_port()
    message = await _refusal(f"amqp://guest:guest@127.0.0.1:{port}/")
    assert f"connection refused at 127.0.0.1:{port}" in message


async def test_each_url_of_a_cluster_says_its_own_reason(amqp_url: str) -> None:
    port = _free_port()
    closed = f"amqp://guest:guest@127.0.0.1:{port}/"
    wrong = _with(amqp_url, password="nope")
    transport = AmqpTransport([closed, wrong], connect_timeout=5.0)
    with pytest.raises(BrokerUnavailable) as caught:
        await asyncio.wait_for(transport.connect(), 10)
    text = str(caught.value)
    assert f"connection refused at 127.0.0.1:{port}" in text
    assert "authentication failed" in text


PRODUCER = """
import sys
from hare import Hare

app = Hare("quiet", broker=sys.argv[1])


@app.task
def add(x: int, y: int) -> int:
    return x + y


try:
    add.delay(1, 2)
except Exception as exc:
    print("caller:", type(exc).__name__, exc)
"""


def test_a_producer_without_logging_prints_only_the_error_it_gets(tmp_path: Path) -> None:
    """aiormq's own connection ERRORs (Python's last-resort handler prints them) stay quiet:
    the caller's exception says it all."""
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    port = _free_port()
    done = subprocess.run(
        [sys.executable, str(script), f"amqp://guest:guest@127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HARE_CONNECT_TIMEOUT": "1"},
    )
    assert (
        f"caller: BrokerUnavailable cannot connect to the broker: connection refused at "
        f"127.0.0.1:{port}" in done.stdout
    )
    assert "error when creating transport" not in done.stderr
    assert "Traceback" not in done.stderr


def test_aiormq_records_come_back_when_its_logger_is_set_to_debug() -> None:
    import logging

    from hare.transport.amqp.errors import quiet_aiormq_connection_logs

    quiet_aiormq_connection_logs()
    logger = logging.getLogger("aiormq.connection")
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 1, "error when creating transport: %r", (1,), None
    )
    assert not logger.filter(record)
    logging.getLogger("aiormq").setLevel(logging.DEBUG)
    try:
        assert logger.filter(record)
    finally:
        logging.getLogger("aiormq").setLevel(logging.NOTSET)
    other = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "Unexpected frame", (), None)
    assert logger.filter(other)
