"""The tracing middleware: the only module of hare that imports opentelemetry.

Spans, named and attributed as opentelemetry-instrumentation-celery names them:

* `apply_async/<task>` (PRODUCER) around each publish, from `before_publish` to the broker's
  confirm (`after_publish`); an emitted event's is `emit/<event>`;
* `run/<task>` (CONSUMER) around each run, from `before_run` to `after_run`, current while
  the task runs (so spans the task makes, and what it sends, are its children).

Context travels in the message's headers (`traceparent`, `tracestate`, by the configured
propagator), which Celery's protocol v2 puts in the AMQP headers: the delay ladder's
dead-lettering keeps them, and a Celery worker with Celery's instrumentation reads them from
its request. What the worker publishes for a run after it ended (its retry, callbacks, the
next chain step) is parented on the run through `request.notes` (`hare.middleware`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from hare import context as hare_context
from hare._version import __version__
from hare.core.headers import EVENT_HEADER
from hare.core.message import Message
from hare.events.names import EVENT_TASK
from hare.middleware import Middleware

if TYPE_CHECKING:
    from hare.worker.request import Request

__all__ = ("Tracing",)

#: `request.notes` keys: the run's span and context token (before_run to after_run), and
#: the run span's context (until the delivery is settled).
_RUN = "hare.tracing.run"
_SPAN = "hare.tracing.span"
_SYSTEM = "rabbitmq"


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads a propagation field from message headers (a str, or bytes from some clients)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)]


_HEADERS = _HeaderGetter()


class Tracing(Middleware):
    """OpenTelemetry spans around every publish and run, context in the messages' headers.

    `tracer_provider` and `propagator` default to OpenTelemetry's global ones (read at each
    use, so they may be set after the app is made). A publish that is never confirmed (its
    send raised) leaves its span open: the oldest of more than `max_pending` such spans is
    ended with an error status.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self._tracer = trace.get_tracer("hare.tracing", __version__, tracer_provider)
        self._propagator = propagator
        self._max_pending = max_pending
        #: Spans of publishes not yet confirmed, by the `traceparent` they put in the
        #: message (by span id with another propagator).
        self._publishing: OrderedDict[str | int, Span] = OrderedDict()
        self._lock = threading.Lock()

    def _textmap(self) -> TextMapPropagator:
        return self._propagator or propagate.get_global_textmap()

    # -- publishing -----------------------------------------------------------------------

    def before_publish(self, message: Message, queue: str) -> Message | None:
        textmap = self._textmap()
        parent = self._parent(message, textmap)
        name, attributes = _publish_span(message, queue)
        span = self._tracer.start_span(
            name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        carrier: dict[str, str] = {}
        textmap.inject(carrier, context=trace.set_span_in_context(span, parent))
        fields = textmap.fields
        headers = {k: v for k, v in message.headers.items() if k not in fields}
        headers.update(carrier)
        if span.is_recording():
            self._hold(carrier.get("traceparent") or span.get_span_context().span_id, span)
        return replace(message, headers=headers)

    def after_publish(self, message: Message, queue: str) -> None:
        key: str | int | None = message.headers.get("traceparent")
        if not isinstance(key, str):
            sent = self._textmap().extract(message.headers, getter=_HEADERS)
            key = trace.get_current_span(sent).get_span_context().span_id
        with self._lock:
            span = self._publishing.pop(key, None)
        if span is not None:
            span.end()

    def _parent(self, message: Message, textmap: TextMapPropagator) -> otel_context.Context:
        """The context a publish belongs to: the run the worker publishes for once it ended
        (its retry, what follows it); else the current span's (inside a task, its run or a
        span it made); else the context the message carries (a message sent back through
        the ladder, a dead letter replayed)."""
        current = otel_context.get_current()
        run = hare_context.current()
        notes = getattr(run, "notes", None)
        if run is not None and notes is not None and _RUN not in notes:
            ran = notes.get(_SPAN)  # (none from a prefork child: then the run's parent)
            if ran is not None:
                return trace.set_span_in_context(NonRecordingSpan(ran), current)
            return textmap.extract(run.message.headers, context=current, getter=_HEADERS)
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        if _carries(message.headers, textmap.fields):
            return textmap.extract(message.headers, context=current, getter=_HEADERS)
        return current

    def _hold(self, key: str | int, span: Span) -> None:
        expired: list[Span] = []
        with self._lock:
            self._publishing[key] = span
            while len(self._publishing) > self._max_pending:
                expired.append(self._publishing.popitem(last=False)[1])
        for old in expired:
            old.set_status(Status(StatusCode.ERROR, "publish not confirmed"))
            old.end()

    # -- running --------------------------------------------------------------------------

    def before_run(self, request: Request) -> None:
        textmap = self._textmap()
        parent = textmap.extract(request.message.headers, getter=_HEADERS)
        span = self._tracer.start_span(
            f"run/{request.task}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=_run_attributes(request),
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        request.notes[_RUN] = (span, token)
        request.notes[_SPAN] = span.get_span_context()

    def on_retry(self, request: Request, exception: BaseException | None) -> None:
        held = request.notes.get(_RUN)
        if held is not None and exception is not None:
            held[0].set_attribute("celery.retry.reason", str(exception))

    def after_run(self, request: Request, state: str, value: Any) -> None:
        held = request.notes.pop(_RUN, None)
        if held is None:
            return
        span, token = held
        if span.is_recording():
            span.set_attribute("celery.state", state)
            if state == "FAILURE" and isinstance(value, BaseException):
                span.record_exception(value)
                span.set_status(Status(StatusCode.ERROR, f"{type(value).__name__}: {value}"))
            elif state in ("REJECTED", "REVOKED"):
                span.set_status(Status(StatusCode.ERROR, state.lower()))
        span.end()
        # Detached where it was attached; a call ended from the loop (a hard time limit)
        # attached it elsewhere, and that context is gone with its thread.
        if trace.get_current_span() is span:
            otel_context.detach(token)


def _carries(headers: Mapping[str, Any], fields: Iterable[str]) -> bool:
    return any(field in headers for field in fields)


def _publish_span(message: Message, queue: str) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {
        "celery.action": "apply_async",
        "celery.task_name": message.task,
        "messaging.system": _SYSTEM,
        "messaging.operation.type": "send",
        "messaging.message.id": message.id,
        "messaging.destination.name": queue,
    }
    if message.retries:
        attributes["celery.retries"] = message.retries
    if message.eta is not None:
        attributes["celery.eta"] = message.eta.isoformat()
    event = message.headers.get(EVENT_HEADER)
    if message.task == EVENT_TASK and isinstance(event, str):
        attributes["hare.event"] = event
        return f"emit/{event}", attributes
    return f"apply_async/{message.task}", attributes


def _run_attributes(request: Request) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "celery.action": "run",
        "celery.task_name": request.task,
        "messaging.system": _SYSTEM,
        "messaging.operation.type": "process",
        "messaging.message.id": request.id,
        "messaging.destination.name": request.queue or "",
    }
    if request.retries:
        attributes["celery.retries"] = request.retries
    if request.hostname:
        attributes["celery.hostname"] = request.hostname
    return attributes
