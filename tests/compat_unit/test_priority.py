"""Celery's priorities through hare_compat: `priority=` on calls and signatures, the task's
and the app's defaults, `task_queue_max_priority`; on quorum queues 5-9 reach `<queue>.high`."""

from __future__ import annotations

from typing import Any

import pytest

from hare.core.priority import InvalidPriority
from hare.errors import NotSupportedError
from hare.testing import drain
from hare.transport.memory.transport import MemoryTransport
from hare_compat import Celery
from hare_compat.app.mapping import hare_settings


def _app(**settings: Any) -> Celery:
    return Celery("prio", broker="memory://", set_as_current=False, **settings)


def _priorities(app: Celery, queue: str) -> list[int | None]:
    portal, publisher = app.hare.connections.home_portal()
    assert isinstance(publisher.transport, MemoryTransport)
    taken = portal.call(drain(publisher.transport, queue))
    return [delivery.properties.priority for delivery in taken]


def test_task_queue_max_priority_declares_classic_queues_with_it() -> None:
    assert hare_settings(_app(task_queue_max_priority=10).conf)["queue_max_priority"] == 10
    quorum = _app(task_queue_max_priority=10, task_default_queue_type="quorum")
    with pytest.raises(NotSupportedError, match="task_queue_max_priority"):
        hare_settings(quorum.conf)


def test_calls_signatures_and_defaults_reach_the_high_band_on_quorum_queues() -> None:
    app = _app(task_default_queue_type="quorum", task_default_priority=2)

    @app.task(name="t.urgent", priority=6)
    def urgent() -> None: ...

    @app.task(name="t.plain")
    def plain() -> None: ...

    urgent.delay()  # the task's 6
    plain.apply_async(priority=9)  # the call's
    plain.s().apply_async(priority=8)  # a signature's
    plain.delay()  # the app's task_default_priority, 2: the low band
    assert _priorities(app, "celery.high") == [6, 9, 8]  # in the order sent
    assert _priorities(app, "celery") == [2]
    with pytest.raises(InvalidPriority):
        plain.apply_async(priority=10)
    app.close()
