"""`hare worker`'s queue rule for event handlers, and `hare events` on the memory broker."""

from __future__ import annotations

import asyncio

import pytest

from hare.cli.common import EXIT_OK, EXIT_USAGE
from hare.cli.main import main
from hare.cli.queues import worker_queues
from tests.events.cli_app import app

ORDERS, WELCOME = "hare.ev.cliev.cliev.orders", "hare.ev.cliev.cliev.welcome"
APP = "tests.events.cli_app:app"


def test_without_q_a_worker_consumes_the_apps_queues_and_every_handlers() -> None:
    assert worker_queues(app, [], None, None) == ["work", "emails", ORDERS, WELCOME]
    assert worker_queues(app, [], None, True) == ["work", "emails", ORDERS, WELCOME]
    assert worker_queues(app, [], None, False) == ["work", "emails"]


def test_with_q_a_worker_consumes_what_is_named_and_handlers_only_when_asked() -> None:
    assert worker_queues(app, ["emails"], None, None) == ["emails"]
    assert worker_queues(app, ["emails"], None, True) == ["emails", ORDERS, WELCOME]
    assert worker_queues(app, [ORDERS], None, None) == [ORDERS]


def test_hare_events_list_shows_handlers_patterns_and_depths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(_emit_and_close())
    assert main(["events", "list", APP]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"{ORDERS}   order.* refund.#  cliev.orders" in out, out
    assert f"{WELCOME}  user.signed_up    cliev.welcome" in out, out
    assert "unhandled: 1 event(s) parked in hare.events.unhandled" in out, out


async def _emit_and_close() -> None:
    await app.aemit("nobody.listens", 1)  # declares the exchange; no handler queue yet
    await app.aclose()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["events", "remove", APP], "name the queue to remove, or give --orphans"),
        (["events", "remove", APP, ORDERS, "--yes"], "is the queue of handler cliev.orders"),
        (["events", "list", APP, "--orphans"], "an amqp:// broker only"),
    ],
)
def test_hare_events_refuses_what_it_cannot_do_with_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert says in capsys.readouterr().err
