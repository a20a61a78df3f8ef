"""One child of the prefork pool, seen from the worker process: its process, its pipes, the
call it runs.

`run` sends a job and waits for the verdict under the job's time limits: past the soft limit
the child is signalled (`SoftTimeLimitExceeded` in the task), past the hard one it is killed
(`TimeLimitExceeded`). A child whose pipe closes or whose process ends while it runs a job
fails that job with `WorkerLostError`, worded as Celery's (`Worker exited prematurely: signal 9
(SIGKILL).`); one that dies idle is reported to the pool (`on_idle_death`), which replaces it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from hare.clock import Clock
from hare.errors import ConfigurationError, HareError, TimeLimitExceeded, WorkerLostError
from hare.worker.limits import within_limits
from hare.worker.prefork.child import SOFT_LIMIT_SIGNAL, TERMINATE_SIGNAL, Job
from hare.worker.verdict import Verdict

__all__ = ("ChildProcess",)

logger = logging.getLogger("hare.worker")


class ChildProcess:
    """The parent's handle on one child: its process, its pipes, the call it runs."""

    def __init__(
        self,
        process: BaseProcess,
        channel: Connection,
        relay: Connection,
        *,
        on_idle_death: Callable[[ChildProcess], None],
    ) -> None:
        self.process = process
        self._on_idle_death = on_idle_death
        self.channel = channel
        self.relay = relay
        self.pid: int = process.pid or 0
        self.fds = (channel.fileno(), relay.fileno())
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self._reply: asyncio.Future[Verdict] | None = None
        self.retiring: str | None = None
        self.reason = "running"
        #: Asked to exit (the pool closes): its exit is no loss.
        self.leaving = False
        self.released = False
        self.dead = False
        loop.add_reader(channel.fileno(), self._readable)
        loop.add_reader(process.sentinel, self._exited)

    async def run(
        self, job: Job, *, soft: float | None, hard: float | None, clock: Clock
    ) -> Verdict:
        if self.dead:
            raise WorkerLostError(f"Worker exited prematurely: {self.reason}.")
        reply: asyncio.Future[Verdict] = self._loop.create_future()
        self._reply = reply
        try:
            try:
                self.channel.send_bytes(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
            except OSError:
                self._exited()
            at_soft = self._signal_soft
            if not await within_limits(reply, soft=soft, hard=hard, clock=clock, at_soft=at_soft):
                self.kill()
                raise TimeLimitExceeded(
                    f"hard time limit ({hard}s) exceeded: its child process {self.pid} was killed"
                )
            return await reply
        finally:
            self._reply = None
            if reply.done() and not reply.cancelled():
                reply.exception()  # retrieved: a kill after the limit fails it too

    def stop(self, signal_name: str) -> None:
        """revoke(terminate=True): SIGKILL kills the child; any other signal raises
        `TaskRevoked` in the task."""
        if signal_name.upper().removeprefix("SIG") in ("KILL", "9"):
            self.kill()
        else:
            self._send_signal(TERMINATE_SIGNAL)

    def _signal_soft(self) -> None:
        self._send_signal(SOFT_LIMIT_SIGNAL)

    def _send_signal(self, signum: int) -> None:
        if not self.dead and self.process.pid is not None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def _readable(self) -> None:
        if not self._receive():
            self._exited()

    def _receive(self) -> bool:
        """Take one message from the child; False once its end of the pipe closed."""
        try:
            message = pickle.loads(self.channel.recv_bytes())
        except (EOFError, OSError):
            return False
        except Exception as exc:  # a reply that does not unpickle here
            message = ("done", None, None)
            logger.error("prefork child %d sent an unreadable reply: %s", self.pid, exc)
        self._handle(message)
        return True

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            _resolve(self.ready, None)
        elif kind == "failed":
            _fail(
                self.ready,
                ConfigurationError(f"a prefork child could not load the app:\n{message[1]}"),
            )
        elif kind == "done":
            _, verdict, retire = message
            self.retiring = retire
            if self._reply is not None:
                if verdict is None:
                    _fail(self._reply, HareError("the task's reply could not be read"))
                else:
                    _resolve(self._reply, verdict)

    def _exited(self) -> None:
        """The child's pipe closed or its process ended: whatever it ran is lost."""
        if self.dead:
            return
        try:  # what it sent before it went (a verdict, then its exit on retiring)
            while not self.channel.closed and self.channel.poll(0) and self._receive():
                pass
        except OSError:
            pass
        self.dead = True
        self._unwatch()
        self.process.join(1.0)
        if self.process.exitcode is None:
            self.kill()
        reason = self.reason = _exit_reason(self.process.exitcode)
        if not self.ready.done():
            _fail(self.ready, ConfigurationError(f"a prefork child died while starting: {reason}"))
            return
        reply = self._reply
        if reply is not None and not reply.done():
            logger.error("prefork child %d died (%s) while running a task", self.pid, reason)
            _fail(reply, WorkerLostError(f"Worker exited prematurely: {reason}."))
        elif reply is None and self.retiring is None and not self.leaving:
            logger.error("prefork child %d died (%s) while idle", self.pid, reason)
            self._on_idle_death(self)

    def ask_to_exit(self) -> None:
        self.leaving = True
        if not self.dead:
            try:
                self.channel.send_bytes(pickle.dumps(None))
            except OSError:
                pass

    def kill(self) -> None:
        if not self.released and self.process.exitcode is None:
            self.process.kill()
            self.process.join(1.0)

    def release(self) -> None:
        """Close the pipes and forget the process (after it ended)."""
        if self.released:
            return
        self.released = True
        self.dead = True
        self._unwatch()
        self.channel.close()
        self.relay.close()
        if self.process.exitcode is not None:
            self.process.close()

    def _unwatch(self) -> None:
        for fd in (self.channel, self.relay):
            if not fd.closed:
                self._loop.remove_reader(fd.fileno())
        self._loop.remove_reader(self.process.sentinel)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _exit_reason(code: int | None) -> str:
    """Celery's wording: `signal 9 (SIGKILL)`, `exitcode 1`."""
    if code is not None and code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exitcode {code}"
