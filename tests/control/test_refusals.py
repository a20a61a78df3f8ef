"""The commands of Flower's buttons a hare worker does not carry out are answered with
Celery's error shape and the reason (never left unanswered), and logged once;
`enable_events` is answered as Celery answers it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hare.control.pidbox import Request
from hare.control.refusals import REFUSED
from hare.control.revocation_stream import Revocations
from hare.control.server import ControlServer
from hare.testing import ManualClock, memory_app
from tests.control.test_control import View

#: What Flower 2.2's buttons send (flower/api/control.py), and its `enable_events` timer.
FLOWER_COMMANDS = (
    "shutdown",
    "pool_restart",
    "pool_grow",
    "pool_shrink",
    "autoscale",
    "add_consumer",
    "cancel_consumer",
    "rate_limit",
    "time_limit",
)


def server(**settings: Any) -> ControlServer:
    clock = ManualClock()
    app = memory_app(clock, **settings)
    return ControlServer(View(), Revocations(clock=clock), nodename="w1@host", clock=clock, app=app)


@pytest.mark.parametrize("method", FLOWER_COMMANDS)
def test_each_of_flowers_commands_gets_an_error_with_the_reason(method: str) -> None:
    assert method in REFUSED
    arguments = {"n": 1, "queue": "q", "task_name": "t"}
    reply = server().dispatch(Request(method=method, arguments=arguments))
    assert reply == {"error": f"{method} refused: {REFUSED[method]}"}


def test_a_refusal_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    node = server()
    with caplog.at_level(logging.WARNING, logger="hare.control"):
        node.dispatch(Request(method="shutdown"))
        node.dispatch(Request(method="shutdown"))
    assert [r.getMessage() for r in caplog.records] == [
        f"remote control: shutdown refused: {REFUSED['shutdown']}"
    ]


def test_enable_events_as_celery_answers_it() -> None:
    assert server(worker_send_task_events=True).dispatch(Request(method="enable_events")) == {
        "ok": "task events already enabled"
    }
    reply = server().dispatch(Request(method="enable_events"))
    assert "started without -E" in reply["error"]


def test_an_unknown_command_still_names_what_hare_knows() -> None:
    reply = server().dispatch(Request(method="frobnicate"))
    assert reply["error"].startswith("hare does not know the command 'frobnicate'")
