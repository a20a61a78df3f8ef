"""The app object itself: connecting up front, `async with`, and refusing unknown options."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hare import Hare
from hare.errors import BrokerUnavailable, ConfigurationError

pytestmark = pytest.mark.anyio


async def test_async_with_connects_at_entry_and_closes_at_exit() -> None:
    """A web app's lifespan: the first request's `adelay()` finds the connection open."""
    app = Hare("web", broker="memory://")

    @app.task(name="web.add")
    def add(x: int, y: int) -> int:
        return x + y

    async with app as entered:
        assert entered is app
        publisher = await app.publisher()
        assert publisher.transport.is_connected  # connected before any task was sent
        sent = await add.adelay(1, 2)
        assert sent.task == add.name
        assert await app.publisher() is publisher  # the same connection served the send
    assert not publisher.transport.is_connected


async def test_aconnect_fails_at_start_up_not_at_the_first_request() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = Hare("web", broker=f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout=1)
    with pytest.raises(BrokerUnavailable, match=f"connection refused at 127.0.0.1:{port}"):
        await app.aconnect()
    await app.aclose()


def test_an_unknown_task_option_is_refused_by_name() -> None:
    app = Hare("opts", broker="memory://")
    options: dict[str, Any] = {"name": "opts.x", "queu": "emails", "max_retries": 2}
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) queu"):
        app.task(**options)(lambda: None)


def test_task_keywords_make_the_retry_policy_and_options() -> None:
    app = Hare("opts", broker="memory://")

    @app.task(
        name="opts.send", queue="emails", max_retries=5, autoretry_for=(KeyError,), time_limit=9
    )
    def send() -> None: ...

    assert send.options.queue == "emails" and send.options.time_limit == 9
    assert send.options.retry.max_retries == 5
    assert send.options.retry.autoretry_for == (KeyError,)
