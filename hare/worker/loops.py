"""Which event loop a hare process runs on: uvloop when it is installed, else asyncio's.

uvloop (`pip install 'hare-queue[uvloop]'`) runs the same asyncio code with its I/O, callbacks and
timers in C. On this project's 2-core machine it cut a worker's CPU per no-op task by 9-14%
(two in-process drains of 20,000 tasks). `hare worker --loop` chooses: `auto` (the default) takes
uvloop when it can be imported, `uvloop` insists on it, `asyncio` never uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from hare.errors import ConfigurationError

__all__ = ("LOOPS", "LoopChoice", "loop_factory", "run")

T = TypeVar("T")
LoopChoice = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str) -> tuple[str, LoopFactory | None]:
    """The loop's name and its factory (`None`: asyncio's default) for `choice`.

    Raises `ConfigurationError` for an unknown choice, or for `uvloop` when it is not installed.
    """
    if choice not in LOOPS:
        raise ConfigurationError(f"unknown event loop {choice!r}; choose one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                "the uvloop event loop was asked for, but uvloop is not installed "
                "(pip install 'hare-queue[uvloop]')"
            ) from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(main)` on a loop from `factory` (asyncio's own when `None`)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
