"""The task an in-process test worker answers to show it is up (Celery's `celery.ping`)."""

from __future__ import annotations

from hare_compat import shared_task

__all__ = ("ping",)


@shared_task(name="celery.ping")
def ping() -> str:
    """Answer `pong`."""
    return "pong"
