"""Fixtures of the interop suite: a private vhost, a fleet of workers per module, clients.

The suite runs real Celery 5 workers and clients (Celery is a dev dependency) against the same
RabbitMQ as hare, in a vhost of its own created for the session and deleted after it, so
nothing it declares (queues, the delay ladder, Celery's reply queues) outlives it. Like the rest
of the broker tier it is skipped locally without a broker (or without `rabbitmqctl`) and fails
under CI.

Each module starts its workers once (a module-scoped fixture calling `fleet.start_celery` /
`fleet.start_hare`, then `fleet.wait_consuming()`), on queue names of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from celery import Celery

from hare import Hare
from tests.faults.conftest import private_vhost
from tests.interop import celery_side, hare_side
from tests.interop.harness import Fleet, close_celery


@pytest.fixture(scope="session")
def interop_url(amqp_url: str) -> Iterator[str]:
    """The AMQP URL of a vhost of this session's own, deleted (with all in it) at the end."""
    yield from private_vhost(amqp_url, "interop")


@pytest.fixture(scope="module")
def fleet(interop_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """This module's fleet: queue names, ledger, and the workers it starts (stopped at the end)."""
    crew = Fleet(interop_url, tmp_path_factory.mktemp("interop"))
    try:
        yield crew
    finally:
        crew.close()


@pytest.fixture(scope="module")
def celery_client(fleet: Fleet) -> Iterator[Celery]:
    """An in-process Celery client (rpc results, Europe/Berlin), default queue `<fleet>.celery`."""
    app = celery_side.make_app(fleet.url, fleet.queue("celery"))
    try:
        yield app
    finally:
        close_celery(app)


@pytest.fixture
async def hare_client(fleet: Fleet) -> AsyncIterator[Hare]:
    """An in-process hare client (classic queues, no results), default queue `<fleet>.hare`."""
    app = hare_side.make_app(fleet.url, fleet.queue("hare"), environ={}, connect_timeout=5)
    try:
        yield app
    finally:
        await app.aclose()
        app.close()
