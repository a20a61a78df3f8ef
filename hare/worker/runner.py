"""Running a task's function: async on the loop, sync in a bounded thread pool, time-limited.

Time limits follow Celery's meaning: at the soft limit `SoftTimeLimitExceeded` is raised
*inside* the task, so it can clean up; at the hard limit the task is stopped and fails with
`TimeLimitExceeded`.

* async tasks: the soft limit is thrown into the coroutine at the `await` it is suspended in;
  the hard limit cancels it.
* sync tasks: the soft limit is raised in the running thread (as Celery's prefork pool raises
  it in the child), delivered when the thread next runs Python bytecode, so not while it is
  blocked in a C call such as a socket read or `time.sleep`. A thread cannot be killed: at the
  hard limit the worker stops waiting, fails the task with `TimeLimitExceeded` and discards
  whatever the thread returns later; the thread stays busy (and counted in `busy_threads`)
  until the function returns.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hare.clock import Clock
from hare.core.outcome import (
    Failed,
    Outcome,
    Rejected,
    RetryRequested,
    format_traceback,
    outcome_of,
)
from hare.errors import (
    ConfigurationError,
    SoftTimeLimitExceeded,
    TaskRevoked,
    TimeLimitExceeded,
    WorkerLostError,
)
from hare.worker.limits import within_limits

if TYPE_CHECKING:
    from hare.task import Task
    from hare.worker.call import TaskCall
    from hare.worker.prefork.pool import ProcessPool
    from hare.worker.verdict import Verdict

__all__ = ("TaskRunner", "lost_outcome", "raise_in_thread")


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Raise `exc_type` in the thread `thread_id` when it next runs Python bytecode."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


class TaskRunner:
    """Runs task functions under their time limits (`hare.worker.limits`): on the loop, in a
    bounded thread pool, or in a child of the prefork pool (`hare.worker.prefork`)."""

    def __init__(
        self,
        threads: int,
        clock: Clock,
        *,
        pool: ProcessPool | None = None,
        prefork: bool = False,
    ) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="hare-task")
        self._clock = clock
        self._lock = threading.Lock()
        self._busy = 0
        self.threads = threads
        #: The prefork pool, when this worker has one; `prefork`: sync tasks run in it
        #: unless their `isolation` says "thread".
        self.pool = pool
        self._prefork = prefork

    def in_child(self, task: Task[Any, Any]) -> bool:
        """Whether `task` runs in a child of the prefork pool."""
        if task.is_async:
            return False
        isolation = task.options.isolation
        return isolation == "process" or (isolation is None and self._prefork)

    async def run_call(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        soft: float | None,
        hard: float | None,
    ) -> Verdict:
        """Make `call` where its task runs, under its time limits; its verdict, judged where
        it ran or, for a call that could not end itself (a hard limit, a lost child), here."""
        task = call.task
        try:
            if self.in_child(task):
                if self.pool is None:
                    raise ConfigurationError(
                        f"task {task.name} runs in a process (isolation='process') and this "
                        "worker has no process pool"
                    )
                return await self.pool.run(call, args, kwargs, soft=soft, hard=hard)
            verdict = await self.call(
                call.wrap(), args, kwargs, is_async=task.is_async, soft=soft, hard=hard
            )
        except WorkerLostError as exc:
            return call.ended(lost_outcome(call, exc))
        except Exception as exc:  # stopped at its hard time limit
            return call.ended(outcome_of(exc, format_traceback(exc)))
        assert verdict is not None  # the loop ends a call only when the runner did not return
        return verdict  # type: ignore[no-any-return]

    @property
    def busy_threads(self) -> int:
        """Sync tasks running in threads now, including any past their hard limit."""
        return self._busy

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        is_async: bool,
        soft: float | None = None,
        hard: float | None = None,
    ) -> Any:
        """Call `fn` under its time limits: return what it returned, raise what it raised, or
        `TimeLimitExceeded` at the hard limit. Without limits, straight to the function."""
        if is_async:
            if soft is None and hard is None:
                return await fn(*args, **kwargs)
            return await self._run_async(fn, args, kwargs, soft, hard)
        call = _ThreadCall(fn, args, kwargs, self)
        future = asyncio.get_running_loop().run_in_executor(self._executor, call.run)
        if soft is None and hard is None:
            return await future
        limited = within_limits(
            future, soft=soft, hard=hard, clock=self._clock, at_soft=call.raise_soft_limit
        )
        if not await limited:
            call.abandon()
            raise TimeLimitExceeded(
                f"hard time limit ({hard}s) exceeded; the function keeps running in its thread "
                "(threads cannot be killed) and its result will be discarded"
            )
        return await future

    async def _run_async(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        soft: float | None,
        hard: float | None,
    ) -> Any:
        """An async call with limits: the soft one thrown in at its `await`, the hard one
        cancelling it."""
        coro = fn(*args, **kwargs)
        if not asyncio.iscoroutine(coro):
            return await coro
        driver = _Interruptible(coro)
        inner: asyncio.Task[Any] = asyncio.ensure_future(_await(driver))

        def soft_limit() -> None:
            driver.interrupt(SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded"))
            inner.cancel()

        hard_fired = False
        try:
            if not await within_limits(
                inner, soft=soft, hard=hard, clock=self._clock, at_soft=soft_limit
            ):
                hard_fired = True
                inner.cancel()
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if hard_fired and inner.cancelled():
                raise TimeLimitExceeded(f"hard time limit ({hard}s) exceeded") from None
            inner.cancel()  # we were cancelled (a drain): take the task down with us
            raise

    def _count(self, delta: int) -> None:
        with self._lock:
            self._busy += delta


class _ThreadCall:
    """One sync call in a pool thread, which the loop can interrupt with the soft limit."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        runner: TaskRunner,
    ) -> None:
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._runner = runner
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._finished = False
        self.abandoned = False

    def run(self) -> Any:
        with self._lock:
            self._thread = threading.get_ident()
        self._runner._count(1)
        try:
            return self._fn(*self._args, **self._kwargs)
        finally:
            with self._lock:
                self._finished = True
            self._runner._count(-1)

    def raise_soft_limit(self) -> None:
        """Raise `SoftTimeLimitExceeded` in the thread, if it still runs this call."""
        with self._lock:
            if self._thread is None or self._finished:
                return
            raise_in_thread(self._thread, SoftTimeLimitExceeded)

    def abandon(self) -> None:
        self.abandoned = True


async def _await(driver: _Interruptible) -> Any:
    return await driver


class _Interruptible:
    """Drives a coroutine like `await` does, and can throw an exception in at its `await`.

    To interrupt, set the exception with `interrupt()` and cancel the task awaiting this
    driver: the cancellation wakes the task, and the driver throws the chosen exception into
    the coroutine instead (and withdraws the cancellation with `Task.uncancel`).
    """

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._pending: BaseException | None = None

    def interrupt(self, exc: BaseException) -> None:
        self._pending = exc

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                if to_throw is not None:
                    yielded = coro.throw(to_throw)
                else:
                    yielded = coro.send(to_send)
            except StopIteration as stop:
                return stop.value
            to_send, to_throw = None, None
            try:
                to_send = yield yielded
            except asyncio.CancelledError as cancelled:
                pending, self._pending = self._pending, None
                task = asyncio.current_task()
                if pending is not None and task is not None:
                    task.uncancel()
                    to_throw = pending
                else:
                    to_throw = cancelled
            except BaseException as exc:  # thrown in by the task: pass it on
                to_throw = exc


def lost_outcome(call: TaskCall, exc: WorkerLostError) -> Outcome:
    """How a call whose child died ended: terminated (revoke(terminate=True) killed it),
    retried (`retry_on_worker_lost`, which wins, as in Celery 5.7), requeued
    (`reject_on_worker_lost`), else failed with `WorkerLostError`."""
    trace = format_traceback(exc)
    if call.terminating is not None:
        return Failed(TaskRevoked(f"terminated ({call.terminating})"), trace)
    options = call.task.options
    if options.retry_on_worker_lost:
        return RetryRequested(exception=exc, traceback=trace)
    if options.reject_on_worker_lost:
        return Rejected(str(exc), exc, requeue=True)
    return Failed(exc, trace)
