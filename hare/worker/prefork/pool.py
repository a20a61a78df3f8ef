"""The parent side of the prefork pool: children started once, fed one call each, replaced.

The worker process keeps the broker connection, the prefetch and the acks; the pool hands a
sync call to an idle child (`run`), waits for its verdict under the call's time limits, and
gives the child back to the idle ones. What can happen to a child, and what the task gets:

* the soft limit passes: the child is signalled and `SoftTimeLimitExceeded` is raised in the
  task, which may catch it and return;
* the hard limit passes: the child is killed (SIGKILL) and replaced; the task fails with
  `TimeLimitExceeded`, judged by its retry policy;
* the child dies (a segfault, `os._exit`, the OOM killer): the task fails with
  `WorkerLostError` naming the signal or exit code (or is retried or requeued, by its
  `retry_on_worker_lost` / `reject_on_worker_lost`); the child is replaced;
* the child retires after a task (`max_tasks_per_child`, `max_memory_per_child`): it exits by
  itself and a fresh one takes its place; no task is interrupted;
* the worker is cancelled mid-call (a drain past its timeout): the child is killed, and the
  delivery goes back to the queue.

A child that cannot be replaced (its app no longer imports) is retried with backoff while the
worker runs on the children it has: the worker process never dies because a child did.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import sys
from collections.abc import Callable
from typing import Any

from hare.app import Hare, as_hare
from hare.clock import Clock
from hare.errors import ConfigurationError, HareError
from hare.transport.base import Transport
from hare.transport.reconnect import backoff_delay
from hare.worker.call import TaskCall
from hare.worker.prefork.child import ChildLimits, Job, child_main
from hare.worker.prefork.config import PoolConfig
from hare.worker.prefork.forwarding import serve_relay
from hare.worker.prefork.process import ChildProcess
from hare.worker.verdict import Verdict

__all__ = ("ProcessPool",)

logger = logging.getLogger("hare.worker")

#: How long a new child may take to load the app and say it is ready.
START_TIMEOUT = 60.0
#: How long stopping children may take before they are killed.
STOP_TIMEOUT = 5.0


class ProcessPool:
    """`size` long-lived children that run sync calls (see the module's docstring)."""

    def __init__(
        self, app: Hare, config: PoolConfig, size: int, transport: Transport, clock: Clock
    ) -> None:
        self._app = app
        self._config = config
        self.size = size
        self._transport = transport
        self._clock = clock
        root = logging.getLogger()
        formatter = root.handlers[0].formatter if root.handlers else None
        self._limits = ChildLimits(
            config.max_tasks_per_child,
            config.max_memory_per_child,
            log_level=root.getEffectiveLevel(),
            log_format=formatter._fmt if formatter is not None else None,
        )
        self._context: Any = multiprocessing.get_context(config.start_method)
        self._source: Hare | str = app if config.start_method == "fork" else _app_path(app, config)
        self._children: set[ChildProcess] = set()
        self._idle: asyncio.Queue[ChildProcess] = asyncio.Queue()
        self._refills: set[asyncio.Task[None]] = set()
        self._closing = False
        self._rng = random.Random()
        #: Children started to replace one that died, was killed or retired.
        self.replaced = 0

    @property
    def pids(self) -> list[int]:
        return sorted(child.pid for child in self._children)

    async def start(self) -> None:
        """Start every child; `ConfigurationError` with the child's traceback if one cannot
        load the app."""
        children = await asyncio.gather(
            *(self._start_child() for _ in range(self.size)), return_exceptions=True
        )
        problems = [child for child in children if isinstance(child, BaseException)]
        for child in children:
            if isinstance(child, ChildProcess):
                self._children.add(child)
                self._idle.put_nowait(child)
        if problems:
            await self.close()
            raise problems[0]
        logger.info(
            "prefork pool: %d children (%s), pids %s",
            self.size,
            self._config.start_method,
            ", ".join(map(str, self.pids)),
        )

    async def run(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        soft: float | None,
        hard: float | None,
    ) -> Verdict:
        """Run `call` in a child under its time limits; its verdict. Raises
        `TimeLimitExceeded` (the child was killed) or `WorkerLostError` (the child died)."""
        if self._closing:
            raise HareError("the prefork pool is closed")
        child = await self._idle.get()
        while child.dead:  # died while idle: its replacement is on its way
            child = await self._idle.get()
        job = Job(call.task.name, call.context, args, kwargs, soft)
        call.stop_remote = child.stop
        healthy = False
        try:
            verdict = await child.run(job, soft=soft, hard=hard, clock=self._clock)
            healthy = child.retiring is None
            return verdict
        finally:
            call.stop_remote = None
            if healthy:
                self._idle.put_nowait(child)
            else:
                self._replace(child)

    def _replace(self, child: ChildProcess) -> None:
        """Let go of `child` (killed if it still runs) and start one in its place."""
        self._children.discard(child)
        if child.retiring is not None:
            logger.info("prefork child %d retires: %s", child.pid, child.retiring)
        child.kill()
        child.release()
        if self._closing:
            return
        refill = asyncio.ensure_future(self._refill())
        self._refills.add(refill)
        refill.add_done_callback(self._refills.discard)

    async def _refill(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                child = await self._start_child()
            except Exception as exc:
                delay = backoff_delay(attempt, self._rng)
                logger.error("could not start a prefork child (%s); again in %.1fs", exc, delay)
                attempt += 1
                await self._clock.sleep(delay)
                continue
            if self._closing:
                child.kill()
                child.release()
                return
            self.replaced += 1
            self._children.add(child)
            self._idle.put_nowait(child)
            return

    async def _start_child(self) -> ChildProcess:
        ours, theirs = self._context.Pipe()
        relay_ours, relay_theirs = self._context.Pipe()
        # A forked child must not hold its siblings' ends of their pipes.
        inherited = (
            [fd for c in self._children for fd in c.fds] + [ours.fileno(), relay_ours.fileno()]
            if self._config.start_method == "fork"
            else []
        )
        process = self._context.Process(
            target=child_main,
            args=(theirs, relay_theirs, self._source, self._limits, inherited),
            name="hare-pool-child",
            daemon=True,
        )
        process.start()
        theirs.close()
        relay_theirs.close()
        child = ChildProcess(process, ours, relay_ours, on_idle_death=self._replace)
        serve_relay(relay_ours, self._transport)
        try:
            await asyncio.wait_for(child.ready, START_TIMEOUT)
        except BaseException:
            child.kill()
            child.release()
            raise
        return child

    async def close(self) -> None:
        """Stop every child: idle ones exit, the rest are killed after `STOP_TIMEOUT`."""
        self._closing = True
        for refill in list(self._refills):
            refill.cancel()
        children = list(self._children)
        for child in children:
            child.ask_to_exit()
        deadline = self._clock.monotonic() + STOP_TIMEOUT
        for child in children:
            left = max(0.0, deadline - self._clock.monotonic())
            if not child.released:
                await asyncio.to_thread(child.process.join, left)
            child.kill()
            child.release()
        self._children.clear()


def _app_path(app: Hare, config: PoolConfig) -> str:
    """Where a spawned child imports the app from: `config.app_path`, else the module
    attribute that holds it."""
    if config.app_path is not None:
        return config.app_path
    for name, module in list(sys.modules.items()):
        if module is None or name in ("__main__", "__mp_main__"):
            continue
        for attr, value in list(vars(module).items()):
            if value is app or (
                hasattr(type(value), "__hare_app__") and _quietly(as_hare, value) is app
            ):
                return f"{name}:{attr}"
    raise ConfigurationError(
        f"pool_start_method={config.start_method!r} starts children that import the app, "
        "and no module holds it: give app_path='module:attribute' (hare worker passes its "
        "APP argument)"
    )


def _quietly(fn: Callable[[Any], Any], value: Any) -> Any:
    try:
        return fn(value)
    except Exception:
        return None
