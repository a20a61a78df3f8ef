"""OpenTelemetry tracing for hare: a middleware, `Tracing`, that an app registers.

>>> app.add_middleware(hare.tracing.Tracing())          # doctest: +SKIP

It starts a PRODUCER span `apply_async/<task>` around every publish and puts its W3C
`traceparent` (and `tracestate`) in the message's headers, where Celery's
opentelemetry-instrumentation-celery reads and writes them too; a worker starts a CONSUMER
span `run/<task>` as its child. Retries, countdowns through the delay ladder, workflow
follow-ups and event fan-out stay in one trace (docs/observability.md, Tracing).

`otel` is the only module of hare that imports opentelemetry, an optional dependency
(`hare-queue[otel]`): `import hare.tracing` works without it, and `Tracing()` raises
`TracingUnavailable` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hare.tracing.errors import EXTRA, TracingUnavailable

if TYPE_CHECKING:
    from hare.tracing.otel import Tracing as Tracing

__all__ = ("Tracing", "TracingUnavailable")


def __getattr__(name: str) -> Any:
    if name != "Tracing":
        raise AttributeError(f"module 'hare.tracing' has no attribute {name!r}")
    try:
        from hare.tracing.otel import Tracing
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise TracingUnavailable(f"tracing needs opentelemetry-api: {EXTRA}") from exc
    return Tracing
