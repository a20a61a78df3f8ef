"""The errors of events (in the tree of `hare.errors`, kept beside their feature)."""

from __future__ import annotations

from hare.errors import ConfigurationError, HareError

__all__ = ("InvalidEventName", "InvalidPayload")


class InvalidEventName(ConfigurationError):
    """An event name (or a handler's pattern) that is not dot-separated topic words, or an
    emitted name with a wildcard (`hare.events.names`)."""


class InvalidPayload(HareError):
    """An event's payload that does not match its handler's annotated parameter: the worker
    dead-letters it with reason `invalid-payload` (`hare.events.payload`)."""
