"""Tracing on a real RabbitMQ: a countdown through the delay ladder's dead-lettering and a
retry keep one trace, and `traceparent` sits in the AMQP headers, where a Celery worker's
request (and so opentelemetry-instrumentation-celery) reads it."""

from __future__ import annotations

import pytest
from celery.app.task import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hare import Hare, Retry
from hare.core.topology import DEAD_SUFFIX
from hare.testing import Ledger, eventually, running_worker
from hare.tracing import Tracing
from tests.amqp.helpers import amqp_app, delete_queues, take_all

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]


def traced(url: str, queue: str) -> tuple[Hare, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = amqp_app(url, default_queue=queue)
    app.add_middleware(Tracing(tracer_provider=provider))
    return app, exporter


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    found: int = span.context.span_id
    return found


async def test_a_countdown_through_the_ladder_and_a_retry_keep_one_trace(
    amqp_url: str, unique: str
) -> None:
    queue = f"otel-{unique}"
    app, exporter = traced(amqp_url, queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.traced", max_retries=2)
    async def flaky() -> None:
        ledger.record("run")
        if len(ledger.runs) == 1:
            raise Retry(countdown=0.3, exc=ConnectionError("down"))

    try:
        async with running_worker(app, queues=[queue]):
            await flaky.aapply_async(countdown=1.5)  # 15 units: levels 3, 2, 1 and 0
            await ledger.wait_for(2, within=10)
            await eventually(lambda: len(exporter.get_finished_spans()) == 4, within=5)
    finally:
        await delete_queues((await app.publisher()).transport, queue, queue + DEAD_SUFFIX)
        await app.aclose()
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert [s.name for s in spans] == [
        "apply_async/t.traced",
        "run/t.traced",
        "apply_async/t.traced",
        "run/t.traced",
    ]
    assert len({s.context.trace_id for s in spans if s.context is not None}) == 1
    first, run, retry, rerun = spans
    assert parent_of(run) == span_id(first)  # the headers crossed four dead-letterings
    assert parent_of(retry) == span_id(run)
    assert parent_of(rerun) == span_id(retry)
    assert rerun.attributes is not None and rerun.attributes["celery.state"] == "SUCCESS"


async def test_traceparent_is_an_amqp_header_as_celerys_worker_reads_it(
    amqp_url: str, unique: str
) -> None:
    queue = f"otel-raw-{unique}"
    app, exporter = traced(amqp_url, queue)

    @app.task(name="t.plain")
    def plain() -> None: ...

    try:
        await plain.adelay()
        transport = (await app.publisher()).transport
        (delivery,) = await take_all(transport, queue)
        await delete_queues(transport, queue, queue + DEAD_SUFFIX)
    finally:
        await app.aclose()
    (publish,) = exporter.get_finished_spans()
    assert publish.context is not None
    # Celery's worker makes `task.request` from the AMQP headers of a protocol v2 message;
    # Celery's instrumentation reads `task.request.traceparent`.
    request = Context(dict(delivery.properties.headers))
    trace_id, parent = f"{publish.context.trace_id:032x}", f"{publish.context.span_id:016x}"
    assert request.traceparent.startswith(f"00-{trace_id}-{parent}-")  # then the flags
