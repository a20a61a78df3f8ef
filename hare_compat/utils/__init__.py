"""Celery's `celery.utils` names that projects import: `uuid`, `gen_unique_id`."""

from __future__ import annotations

import uuid as _uuid

__all__ = ("gen_unique_id", "uuid")


def uuid() -> str:
    """A new task id: a random UUID as text (Celery's `celery.utils.uuid`)."""
    return str(_uuid.uuid4())


gen_unique_id = uuid
