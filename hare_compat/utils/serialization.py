"""`celery.utils.serialization`: a stand-in for an exception that cannot travel as it is."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ("UnpickleableExceptionWrapper",)


class UnpickleableExceptionWrapper(Exception):
    """An exception whose class or arguments cannot be serialized, carried by name: its
    module, class name, arguments (as reprs where they do not serialize) and text."""

    def __init__(
        self, exc_module: str, exc_cls_name: str, exc_args: tuple[Any, ...], text: str | None = None
    ) -> None:
        self.exc_module = exc_module
        self.exc_cls_name = exc_cls_name
        self.exc_args = tuple(exc_args)
        self.text = text
        super().__init__(exc_module, exc_cls_name, self.exc_args, text)

    def __str__(self) -> str:
        return self.text or f"{self.exc_cls_name}{self.exc_args!r}"

    def restore(self) -> BaseException:
        """The original exception, rebuilt when its class can be imported; else this one."""
        try:
            cls = getattr(importlib.import_module(self.exc_module), self.exc_cls_name)
            restored: BaseException = cls(*self.exc_args)
        except Exception:
            return self
        return restored

    @classmethod
    def from_exception(cls, exc: BaseException) -> UnpickleableExceptionWrapper:
        """The wrapper of `exc`: its arguments kept where they are plain, else their reprs."""
        args = tuple(
            a if isinstance(a, str | int | float | bool | None) else repr(a) for a in exc.args
        )
        return cls(type(exc).__module__, type(exc).__name__, args, str(exc))
