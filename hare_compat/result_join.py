"""Whether waiting for a result is allowed here: Celery's guard against a task that waits
for another task's result on a worker (and may deadlock it), and the two blocks that change
the rule (`allow_join_result`, `denied_join_result`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from hare.context import current

__all__ = ("E_WOULDBLOCK", "allow_join_result", "assert_will_not_block", "denied_join_result")

E_WOULDBLOCK = (
    "Never call result.get() within a task!\n"
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)


#: Whether waiting inside a task is allowed here (`allow_join_result`), or refused even
#: outside one (`denied_join_result`); None: refused inside a task only.
_join_allowed: ContextVar[bool | None] = ContextVar("hare_compat_join_allowed", default=None)


def assert_will_not_block() -> None:
    """Celery's guard: waiting for a result inside a task running on a worker deadlocks."""
    allowed = _join_allowed.get()
    if allowed is None:
        context = current()
        allowed = context is None or context.is_eager
    if not allowed:
        raise RuntimeError(E_WOULDBLOCK)


@contextmanager
def _joins(allowed: bool) -> Iterator[None]:
    token = _join_allowed.set(allowed)
    try:
        yield
    finally:
        _join_allowed.reset(token)


def allow_join_result() -> AbstractContextManager[None]:
    """Allow `get()` inside a task for the block (Celery's; mind the deadlock it risks)."""
    return _joins(True)


def denied_join_result() -> AbstractContextManager[None]:
    """Refuse `get()` in the block, even outside a task (Celery's)."""
    return _joins(False)
