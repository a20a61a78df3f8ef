"""Tracing on the memory broker: one trace from `.delay()` through a task, what it sends, its
chain step, a retry and a countdown; parents, kinds and attributes as OpenTelemetry's Celery
instrumentation has them; a failure recorded; no header without tracing; events fan out as
children of the emit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hare import Hare, Retry
from hare.testing import (
    Ledger,
    ManualClock,
    drain,
    eventually,
    memory_app,
    publish_raw,
    running_worker,
    until,
)
from hare.tracing import Tracing
from tests.runtime import GOOD_BODY

pytestmark = pytest.mark.anyio


def traced(clock: ManualClock, **settings: Any) -> tuple[Hare, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = memory_app(clock, default_queue="q", **settings)
    app.add_middleware(Tracing(tracer_provider=provider))
    return app, exporter


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def trace_ids(spans: Sequence[ReadableSpan]) -> set[int]:
    return {span.context.trace_id for span in spans if span.context is not None}


async def test_one_trace_from_delay_through_what_a_task_sends_and_its_chain_step() -> None:
    clock = ManualClock()
    app, exporter = traced(clock)
    ledger = Ledger()

    @app.task(name="t.inner")
    def inner() -> None:
        ledger.record("inner")

    @app.task(name="t.second")
    async def second(value: int) -> None:
        ledger.record("second", value)

    @app.task(name="t.first")
    async def first() -> int:
        await inner.adelay()
        return 7

    ledger.bind()
    outside = TracerProvider().get_tracer("test")
    async with running_worker(app):
        link = {"task": "t.second", "args": [], "kwargs": {}, "options": {}}
        with outside.start_as_current_span("checkout") as request_span:
            await first.aapply_async(link=link)
        await ledger.wait_for(2)
        await eventually(lambda: len(exporter.get_finished_spans()) == 6)  # a pool thread
    spans = exporter.get_finished_spans()
    assert trace_ids(spans) == {request_span.get_span_context().trace_id}
    publish, run = one(spans, "apply_async/t.first"), one(spans, "run/t.first")
    assert parent_of(publish) == request_span.get_span_context().span_id
    assert (publish.kind, run.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert parent_of(run) == sid(publish)
    # sent from inside the task: a child of its run
    assert parent_of(one(spans, "apply_async/t.inner")) == sid(run)
    assert parent_of(one(spans, "run/t.inner")) == sid(one(spans, "apply_async/t.inner"))
    # the chain step, sent by the worker after the run ended: a child of the run too
    link_publish = one(spans, "apply_async/t.second")
    assert parent_of(link_publish) == sid(run)
    assert parent_of(one(spans, "run/t.second")) == sid(link_publish)
    assert publish.attributes is not None and run.attributes is not None
    assert dict(publish.attributes) == {
        "celery.action": "apply_async",
        "celery.task_name": "t.first",
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.message.id": run.attributes["messaging.message.id"],
        "messaging.destination.name": "q",
    }
    assert run.attributes["celery.action"] == "run"
    assert run.attributes["celery.task_name"] == "t.first"
    assert run.attributes["messaging.destination.name"] == "q"
    assert run.attributes["celery.state"] == "SUCCESS"
    assert run.status.status_code == StatusCode.UNSET


async def test_a_countdown_and_a_retry_stay_in_one_trace() -> None:
    clock = ManualClock()
    app, exporter = traced(clock)
    ledger = Ledger()

    @app.task(name="t.flaky", max_retries=3)
    async def flaky() -> None:
        ledger.record("flaky")
        if len(ledger.runs) == 1:
            raise Retry(countdown=5, exc=ConnectionError("down"))

    ledger.bind()
    async with running_worker(app):
        await flaky.aapply_async(countdown=30)
        await clock.advance_by(30)
        await ledger.wait_for(1)
        await clock.advance_by(5)
        await ledger.wait_for(2)
        await until(lambda: len(exporter.get_finished_spans()) == 4, clock)
    spans = exporter.get_finished_spans()
    assert len(trace_ids(spans)) == 1
    first_publish, retry_publish = named(spans, "apply_async/t.flaky")
    first_run, second_run = sorted(named(spans, "run/t.flaky"), key=lambda s: s.start_time or 0)
    assert first_publish.attributes is not None and "celery.eta" in first_publish.attributes
    assert parent_of(first_publish) is None
    assert parent_of(first_run) == sid(first_publish)
    assert parent_of(retry_publish) == sid(first_run)  # the retry points at the run it ends
    assert parent_of(second_run) == sid(retry_publish)
    assert first_run.attributes is not None and second_run.attributes is not None
    assert first_run.attributes["celery.state"] == "RETRY"
    assert first_run.attributes["celery.retry.reason"] == "down"
    assert retry_publish.attributes is not None and retry_publish.attributes["celery.retries"] == 1
    assert second_run.attributes["celery.retries"] == 1
    assert second_run.attributes["celery.state"] == "SUCCESS"


async def test_a_failed_run_records_its_exception_in_a_pool_thread() -> None:
    clock = ManualClock()
    app, exporter = traced(clock)

    @app.task(name="t.broken")
    def broken() -> None:
        raise ValueError("no stock")

    async with running_worker(app):
        await broken.adelay()
        await eventually(lambda: len(exporter.get_finished_spans()) == 2)  # a pool thread
    run = one(exporter.get_finished_spans(), "run/t.broken")
    assert run.status.status_code == StatusCode.ERROR
    assert run.status.description == "ValueError: no stock"
    assert run.attributes is not None and run.attributes["celery.state"] == "FAILURE"
    (event,) = run.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached here


async def test_an_emitted_event_is_the_parent_of_each_handlers_run() -> None:
    clock = ManualClock()
    app, exporter = traced(clock)
    ledger = Ledger()

    @app.on("order.paid", name="shop.receipt")
    async def receipt(payload: dict[str, Any]) -> None:
        ledger.record("receipt")

    @app.on("order.*", name="shop.audit")
    def audit(payload: dict[str, Any]) -> None:
        ledger.record("audit")

    ledger.bind()
    async with running_worker(app):
        await app.aemit("order.paid", {"order": "A-1"})
        await ledger.wait_for(2)
        await eventually(lambda: len(exporter.get_finished_spans()) == 3)  # a pool thread
    spans = exporter.get_finished_spans()
    emit = one(spans, "emit/order.paid")
    assert emit.kind == SpanKind.PRODUCER
    assert emit.attributes is not None and emit.attributes["hare.event"] == "order.paid"
    assert parent_of(one(spans, "run/shop.receipt")) == sid(emit)
    assert parent_of(one(spans, "run/shop.audit")) == sid(emit)


async def test_a_celery_producers_traceparent_is_continued() -> None:
    """Celery's instrumentation puts `traceparent` in the AMQP headers of protocol v2."""
    clock = ManualClock()
    app, exporter = traced(clock)
    ledger = Ledger()

    @app.task(name="t.job")
    async def job(*args: Any) -> None:
        ledger.record("job")

    ledger.bind()
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with running_worker(app):
        transport = (await app.publisher()).transport
        headers = {"task": "t.job", "id": "c-1", "traceparent": upstream}
        await publish_raw(transport, "q", GOOD_BODY, headers=headers)
        await ledger.wait_for(1)
        await until(lambda: len(exporter.get_finished_spans()) == 1, clock)
    run = one(exporter.get_finished_spans(), "run/t.job")
    assert run.context is not None and run.parent is not None
    assert run.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert run.parent.span_id == 0xB7AD6B7169203331


async def test_the_traceparent_header_is_set_with_tracing_and_absent_without() -> None:
    for tracing in (True, False):
        clock = ManualClock()
        app = traced(clock)[0] if tracing else memory_app(clock, default_queue="q")

        @app.task(name="t.job")
        def job() -> None: ...

        await job.adelay()
        transport = (await app.publisher()).transport
        (delivery,) = await drain(transport, "q")
        assert ("traceparent" in delivery.properties.headers) is tracing


def test_tracing_without_opentelemetry_is_a_named_error_naming_the_extra() -> None:
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import hare, hare.tracing\n"
        "from hare.tracing import TracingUnavailable\n"
        "try:\n"
        "    hare.tracing.Tracing()\n"
        "except TracingUnavailable as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "pip install 'hare-queue[otel]'" in done.stdout
