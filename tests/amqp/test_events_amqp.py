"""Event fan-out on a real RabbitMQ, in a vhost of this module's own: each handler gets each
event once, a failing handler's retries (through the delay ladder) re-run no other handler,
topic patterns route as RabbitMQ routes them, an event with no handler is parked and counted
by `hare status`, an invalid payload is dead-lettered as `invalid-payload`, and `hare events
remove` deletes a removed handler's queue."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hare import Hare
from hare.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from hare.cli.main import main
from hare.core.topology import Binding
from hare.errors import NotFound
from hare.events import EXCHANGE, UNHANDLED_QUEUE
from hare.events.emitting import declare_exchange
from hare.testing import Ledger, eventually, running_worker
from hare.transport.base import Transport
from tests.amqp.helpers import amqp_app, take_all
from tests.faults.conftest import private_vhost

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


@dataclasses.dataclass
class Payment:
    order: str
    cents: int


@pytest.fixture(scope="module")
def events_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own: the events exchange and unhandled queue are per vhost."""
    yield from private_vhost(amqp_url, "events")


async def transport_of(app: Hare) -> Transport:
    return (await app.publisher()).transport


async def test_three_handlers_each_run_once_and_retries_rerun_only_the_failing_one(
    events_url: str, unique: str
) -> None:
    app = amqp_app(events_url)
    app.main = unique
    ledger = Ledger()
    failures = {"left": 2}

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payment: Payment) -> None:
        ledger.record("receipt", payment.order)

    @app.on("order.paid", name="shop.book")
    def book(payment: Payment) -> None:
        ledger.record("book", payment.order)

    @app.on(
        "order.paid",
        name="shop.flaky",
        autoretry_for=(ConnectionError,),
        default_retry_delay=1,
        retry_jitter=False,
    )
    async def flaky(payment: Payment) -> None:
        if failures["left"]:
            failures["left"] -= 1
            ledger.record("flaky-failed", payment.order)
            raise ConnectionError("downstream down")
        ledger.record("flaky", payment.order)

    ledger.bind()
    try:
        async with running_worker(app):
            await app.aemit("order.paid", Payment("A-1", 1200))
            await ledger.wait_for(5, within=15)
            transport = await transport_of(app)
            for queue in app.events.queues():
                assert await transport.message_count(queue) == 0
                assert await transport.message_count(queue + ".dead") == 0
        assert ledger.counts() == {"receipt": 1, "book": 1, "flaky-failed": 2, "flaky": 1}
    finally:
        await app.aclose()


async def test_a_pattern_handler_gets_order_paid_and_refunded_not_order_paid_late(
    events_url: str, unique: str
) -> None:
    app = amqp_app(events_url)
    app.main = unique
    ledger = Ledger()

    @app.on(f"{unique}.order.*", name="shop.orders")
    async def orders(name: str) -> None:
        ledger.record("orders", name)

    ledger.bind()
    try:
        async with running_worker(app):
            for event in ("order.paid", "order.refunded", "order.paid.late"):
                await app.aemit(f"{unique}.{event}", event)
            await ledger.wait_for(2)
            transport = await transport_of(app)
            parked = await eventually(lambda: _parked(transport, unique), within=5)
        assert sorted(ledger.runs) == [("orders", "order.paid"), ("orders", "order.refunded")]
        assert parked == [f"{unique}.order.paid.late"]
    finally:
        await app.aclose()


async def test_an_unhandled_event_is_parked_and_counted_by_hare_status(
    events_url: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _app_module(tmp_path, monkeypatch, events_url, unique)
    app = amqp_app(events_url)
    try:
        transport = await transport_of(app)
        async with running_worker(_load(module), queues=["unused-" + unique]):
            pass  # declares the exchange and the app's handler queue
        await transport.purge(UNHANDLED_QUEUE)
        await app.aemit(f"{unique}.nobody.listens", {"n": 1})
        assert await transport.message_count(UNHANDLED_QUEUE) == 1
        code, out = await _hare("status", f"{module}:app", "-t", "0.2")
        assert code == EXIT_OK, out
        assert f"events:   1 unhandled in {UNHANDLED_QUEUE}" in out, out
        assert f"hare.ev.{unique}.evapp.seen" in out, out  # the handler queue, as any queue
        assert [
            d.properties.headers["hare-event"] for d in await take_all(transport, UNHANDLED_QUEUE)
        ] == [f"{unique}.nobody.listens"]
    finally:
        await app.aclose()


async def test_an_invalid_payload_is_dead_lettered_as_invalid_payload(
    events_url: str, unique: str
) -> None:
    app = amqp_app(events_url)
    app.main = unique
    ledger = Ledger()

    @app.on(f"{unique}.paid", name="shop.typed")
    async def typed(payment: Payment) -> None:
        ledger.record("typed", payment)

    queue = app.events.queues()[0]
    try:
        async with running_worker(app):
            await app.aemit(f"{unique}.paid", {"order": "A-1", "cents": "twelve"})
            transport = await transport_of(app)
            await eventually(lambda: transport.message_count(queue + ".dead"), within=10)
            dead = await take_all(transport, queue + ".dead")
        assert ledger.runs == []
        headers = dead[0].properties.headers
        assert headers["hare-dead-reason"] == "invalid-payload"
        assert "$.cents: expected an integer" in headers["hare-dead-detail"]
        assert headers["hare-dead-attempts"] == 0  # never ran, never retried
    finally:
        await app.aclose()


async def test_hare_events_remove_deletes_a_removed_handlers_queue(
    events_url: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _app_module(tmp_path, monkeypatch, events_url, unique)
    app = amqp_app(events_url)
    old = f"hare.ev.{unique}.evapp.removed"
    try:
        transport = await transport_of(app)
        await declare_exchange(await app.publisher(), app.settings)  # as any emit does first
        await (await app.publisher()).ensure_queue(old)  # what an older deploy declared
        await transport.bind(Binding(exchange=EXCHANGE, destination=old, routing_key="x.#"))
        reader = await transport.consume(old, _ignore, prefetch=1)  # a worker still on it
        code, out = await _hare("events", "remove", f"{module}:app", old, "--yes")
        assert code == EXIT_FAILED and f"kept {old}: 1 consumer(s) still read it" in out, out
        await reader.cancel()
        await app.aemit("x.y", 1)
        assert await transport.message_count(old) == 1
        current = f"hare.ev.{unique}.evapp.seen"
        with _bindings([old, current]) as api:
            code, out = await _hare(
                "events", "list", f"{module}:app", "--orphans", "--management-url", api
            )
        assert code == EXIT_OK, out
        assert f"orphan: {old} (bound with x.#; no handler now)" in out, out
        code, out = await _hare("events", "remove", f"{module}:app", current, "--yes")
        assert code == EXIT_USAGE and "is the queue of handler evapp.seen now" in out, out
        code, out = await _hare("events", "remove", f"{module}:app", old, "--yes")
        assert code == EXIT_OK, out
        assert f"{old}: 1 event(s) waiting" in out, out
        for gone in (old, old + ".dead"):
            with pytest.raises(NotFound):
                await transport.message_count(gone)
    finally:
        await app.aclose()


async def _ignore(delivery: object) -> None:
    """A consumer that is there, nothing more (the queue is empty while it consumes)."""


async def _parked(transport: Transport, unique: str) -> list[str]:
    """The names of this test's events parked as unhandled (taking every parked event)."""
    names = []
    for delivery in await take_all(transport, UNHANDLED_QUEUE):
        names.append(str(delivery.properties.headers.get("hare-event")))
    return [name for name in names if name.startswith(unique)]


def _app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, unique: str) -> str:
    name = f"evapp_{unique}"
    (tmp_path / f"{name}.py").write_text(
        "from hare import Hare\n"
        f"app = Hare({unique!r}, broker={url!r}, environ={{}})\n\n"
        f"@app.on({unique + '.seen'!r}, name='evapp.seen')\n"
        "def seen(payload: dict) -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _load(module: str) -> Hare:
    import importlib

    app = importlib.import_module(module).app
    assert isinstance(app, Hare)
    return app


async def _hare(*argv: str) -> tuple[int, str]:
    """`hare ARGV` in this process (in a thread: it runs its own event loop); its exit code and
    what it printed, stdout and stderr together."""
    import contextlib
    import io

    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return main(list(argv))

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


class _bindings:  # a context manager, named as one
    """A stand-in for RabbitMQ's management API listing the bindings of `hare.events`."""

    def __init__(self, queues: list[str]) -> None:
        rows = [
            {"destination": q, "destination_type": "queue", "routing_key": "x.#"} for q in queues
        ]
        answer = json.dumps(rows).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path.endswith(f"/{EXCHANGE}/bindings/source")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer if ok else b"[]")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
