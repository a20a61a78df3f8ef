"""Celery's `einfo`: an exception with its formatted traceback, as errbacks and `task_retry`
receivers get it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("ExceptionInfo",)


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """What Celery's `einfo` argument carries: the exception and its formatted traceback."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    def __str__(self) -> str:
        return self.traceback
