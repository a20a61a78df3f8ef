"""Running a sync task in a process of its own: for tasks that need a hard kill.

`@app.task(isolation="process")` runs each call in a fresh `spawn`ed process. What that buys:

* the hard time limit really stops the task (the process is killed), unlike a thread;
* the soft limit arrives as a signal that raises `SoftTimeLimitExceeded` in the task, as in
  Celery's prefork pool;
* a crash of the task (segfault, `os._exit`, the OOM killer) fails that task, with the signal
  named, instead of taking the worker down with it.

What it costs: a new interpreter per call (tens of milliseconds), and arguments and results
must pickle. The function is imported in the child by module and name, so it must be defined
at module level (which a task is anyway).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from hare.clock import Clock
from hare.errors import HareError, SoftTimeLimitExceeded, TaskProcessDied, TimeLimitExceeded
from hare.worker.limits import within_limits

__all__ = ("run_in_process",)

_SOFT_SIGNAL = signal.SIGUSR1


async def run_in_process(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    clock: Clock,
    soft: float | None,
    hard: float | None,
) -> Any:
    """Call `fn(*args, **kwargs)` in a new process; raise what it raised, or return its value."""
    process, receiver = _spawn(fn, args, kwargs)
    inbox = _inbox(receiver)
    try:
        message = await _reply(process, inbox, clock=clock, soft=soft, hard=hard)
    finally:
        asyncio.get_running_loop().remove_reader(receiver.fileno())
        receiver.close()
        if process.is_alive():
            process.kill()
        await asyncio.to_thread(process.join, 5)
    if message is None:
        raise TaskProcessDied(f"the task's process died with {_exit_reason(process.exitcode)}")
    kind, payload, trace = message
    if kind == "ok":
        return payload
    if isinstance(payload, BaseException):
        payload.add_note(f"raised in the task's own process:\n{trace}")
        raise payload
    raise HareError(f"the isolated task raised {payload} (not picklable):\n{trace}")


def _spawn(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[BaseProcess, Connection]:
    """Start the child that calls `fn`; it and the end of the pipe its messages arrive on."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(sender, fn.__module__, fn.__qualname__, args, kwargs),
        daemon=True,
        name=f"hare-isolated-{fn.__qualname__}",
    )
    process.start()
    sender.close()
    return process, receiver


async def _reply(
    process: BaseProcess,
    inbox: asyncio.Queue[Any],
    *,
    clock: Clock,
    soft: float | None,
    hard: float | None,
) -> Any:
    """The child's reply, waited for under the time limits; `None` if it died first.

    The limits count from when the child is about to call the function, with its soft-limit
    handler installed (before that, SIGUSR1 would simply kill it).
    """
    first = await inbox.get()
    if first is None:
        await asyncio.to_thread(process.join, 5)
        raise TaskProcessDied(
            f"the task's process died while starting: {_exit_reason(process.exitcode)}"
        )
    if first[0] == "error":  # the import failed
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        reply.set_result(first)
    else:
        reply = asyncio.ensure_future(inbox.get())
    at_soft = functools.partial(_signal, process.pid, _SOFT_SIGNAL)
    if not await within_limits(reply, soft=soft, hard=hard, clock=clock, at_soft=at_soft):
        process.kill()
        raise TimeLimitExceeded(f"hard time limit ({hard}s) exceeded: its process was killed")
    message = await reply
    if message is None:
        await asyncio.to_thread(process.join, 5)
    return message


def _inbox(receiver: Connection) -> asyncio.Queue[Any]:
    """The child's messages as they arrive; `None` once the pipe closed (it exited or died)."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(receiver.recv())
        except (EOFError, OSError):
            loop.remove_reader(receiver.fileno())
            inbox.put_nowait(None)

    loop.add_reader(receiver.fileno(), readable)
    return inbox


def _signal(pid: int | None, signum: int) -> None:
    if pid is not None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _child(
    sender: Connection,
    module: str,
    qualname: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:  # pragma: no cover - runs in the child process
    def soft_limit(signum: int, frame: object) -> None:
        raise SoftTimeLimitExceeded("soft time limit exceeded")

    signal.signal(_SOFT_SIGNAL, soft_limit)
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        fn = getattr(target, "fn", target)  # a registered Task wraps the function
        # Only now do the limits start: they are about the function, not the interpreter's
        # start-up and imports.
        sender.send(("ready", None, None))
        sender.send(("ok", fn(*args, **kwargs), None))
    except BaseException as exc:
        trace = traceback.format_exc()
        try:
            sender.send(("error", exc, trace))
        except Exception:
            sender.send(("error", repr(exc), trace))
    finally:
        sender.close()
