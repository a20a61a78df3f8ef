"""Celery's logging helpers: `get_task_logger(__name__)`, `get_logger(name)`, `mlevel`.

A task logger is the logger named by the module (as Celery's), made a child of the
`celery.task` logger so a logging configuration written for Celery still applies, and its
records carry `task_id` and `task_name` of the task running in that thread or coroutine
(`???` outside tasks, as Celery's task formatter writes), so a format such as
`"%(task_name)s[%(task_id)s]: %(message)s"` works on any handler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hare.context import current

__all__ = (
    "LOG_LEVELS",
    "TaskFilter",
    "base_logger",
    "get_logger",
    "get_task_logger",
    "in_sighandler",
    "mlevel",
    "set_in_sighandler",
    "task_logger",
)

#: Level names to numbers and numbers to names (Celery's table).
LOG_LEVELS: dict[Any, Any] = dict(logging.getLevelNamesMapping())
LOG_LEVELS.update((number, logging.getLevelName(number)) for number in set(LOG_LEVELS.values()))

_in_sighandler = False

#: Names Celery reserves; `get_task_logger` refuses them.
RESERVED_LOGGER_NAMES = {"celery", "celery.task"}

base_logger = logging.getLogger("celery")
task_logger = logging.getLogger("celery.task")


class TaskFilter(logging.Filter):
    """Adds `task_id` and `task_name` of the running task to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current()
        if context is None:
            record.__dict__.setdefault("task_id", "???")
            record.__dict__.setdefault("task_name", "???")
        else:
            record.task_id = context.message.id
            record.task_name = context.message.task
        return True


_FILTER = TaskFilter()


def get_logger(name: str) -> logging.Logger:
    """The logger called `name` (Celery's helper; hare leaves the hierarchy as it is)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """The logger for task module `name`: records carry the running task's id and name."""
    if name in RESERVED_LOGGER_NAMES:
        raise RuntimeError(f"Logger name {name!r} is reserved!")
    logger = logging.getLogger(name)
    logger.parent = task_logger
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def mlevel(level: Any) -> Any:
    """A level number from a name (`"info"` -> 20); a number as is."""
    if level and not isinstance(level, int):
        return LOG_LEVELS[level.upper()]
    return level


def set_in_sighandler(value: bool) -> None:
    """Record whether a signal handler is running (Celery's logging guard)."""
    global _in_sighandler
    _in_sighandler = value


@contextmanager
def in_sighandler() -> Iterator[None]:
    """While the block runs, a signal handler is recorded as running."""
    set_in_sighandler(True)
    try:
        yield
    finally:
        set_in_sighandler(False)
