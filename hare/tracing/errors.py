"""The error of tracing without OpenTelemetry (in the tree of `hare.errors`, beside its feature)."""

from __future__ import annotations

from hare.errors import ConfigurationError

__all__ = ("TracingUnavailable",)

#: What to install for `hare.tracing`.
EXTRA = "pip install 'hare-queue[otel]'"


class TracingUnavailable(ConfigurationError):
    """Tracing was asked for (`hare.tracing.Tracing`) and opentelemetry-api is not
    installed: `pip install 'hare-queue[otel]'`."""
