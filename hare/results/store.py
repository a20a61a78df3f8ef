"""An app's results: the backend for each event loop, and what the worker and handles call.

`result_backend` picks the backend: `rpc://` (replies to the caller's own queue), `redis://`
(Celery's Redis keys, a store any process reads) or `memory://` (this process, for tests).
A backend's connections belong to one event loop, so there is one per loop, made on first
use. Every call has an async form (`a...`, for code on a loop) and a sync form, which runs on
the app's home loop (`Connections.home_portal()`: the worker's loop inside a worker).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import uuid
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from hare.clock import Clock, SystemClock
from hare.core.message import Message
from hare.core.settings import Settings, mask_url
from hare.errors import ConfigurationError, NotSupportedError
from hare.results.backends.base import ResultBackend
from hare.results.backends.memory import MemoryBackend, MemoryStore
from hare.results.backends.replies import ReplyRouter
from hare.results.backends.rpc import RpcBackend, reply_queue, reply_queue_name
from hare.results.state import TaskResult

if TYPE_CHECKING:
    from hare.canvas.continuation import Plan
    from hare.connections import Connections

__all__ = ("Results", "backend_kind")

T = TypeVar("T")


def backend_kind(url: str) -> str:
    """`"rpc"`, `"redis"` or `"memory"` for a `result_backend` URL; raise for any other."""
    if url in ("rpc", "rpc://"):
        return "rpc"
    if url.startswith(("redis://", "rediss://", "unix://")):
        if importlib.util.find_spec("redis") is None:
            raise ConfigurationError(
                "result_backend='redis://...' needs the redis package: "
                "pip install 'hare-queue[redis]'"
            )
        return "redis"
    if url == "memory://":
        return "memory"
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise NotSupportedError(
        f"result_backend {mask_url(url)!r}",
        f"hare has no {scheme!r} result backend; it has rpc://, redis://host:port/db, memory://",
    )


class Results:
    """The result backend of one app (`result_backend`), per event loop."""

    def __init__(
        self, settings: Settings, connections: Connections, clock: Clock | None = None
    ) -> None:
        if not settings.result_backend:
            raise ConfigurationError("Results needs a result_backend")
        self._settings = settings
        self._connections = connections
        self._clock: Clock = clock or SystemClock()
        self.url = settings.result_backend
        self.kind = backend_kind(self.url)
        self._backends: dict[asyncio.AbstractEventLoop, ResultBackend] = {}
        self._lock = threading.Lock()
        self._router = ReplyRouter()
        self._memory = MemoryStore()
        self._node = uuid.uuid4().int
        self._reply_to: tuple[int, str] | None = None
        self._consumes_replies = True

    def detach_replies(self) -> None:
        """Consume no reply queue in this process, and forget the backends it inherited: a
        prefork child, where nothing waits for an rpc result (Celery forbids `get()` in a
        task) and whose parent's loops are not usable."""
        self._consumes_replies = False
        self._backends = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Results {mask_url(self.url)}>"

    @property
    def reply_to(self) -> str | None:
        """The reply queue this process's task messages name (rpc only), else `None`."""
        if self.kind != "rpc":
            return None
        pid = os.getpid()
        if self._reply_to is None or self._reply_to[0] != pid:  # a forked child gets its own
            self._reply_to = (pid, reply_queue_name(self._node, pid, id(self)))
        return self._reply_to[1]

    def backend(self) -> ResultBackend:
        """The backend of the running event loop, made on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            backend = self._backends.get(loop)
            if backend is None:
                for old in [other for other in self._backends if other.is_closed()]:
                    del self._backends[old]
                backend = self._backends[loop] = self._make_backend()
            return backend

    def _make_backend(self) -> ResultBackend:
        expires = self._settings.result_expires
        if self.kind == "rpc":
            name = self.reply_to
            assert name is not None
            # The memory broker refuses x-expires (it cannot expire an idle queue).
            expiring = not self._settings.broker_url.startswith("memory://")
            return RpcBackend(
                router=self._router,
                queue=reply_queue(name, expires, expiring=expiring),
                connections=self._connections,
                settings=self._settings,
                clock=self._clock,
            )
        if self.kind == "redis":
            from hare.results.backends.redis import RedisBackend

            claim = max(60, int(2 * self._settings.publish_timeout))
            return RedisBackend(self.url, expires=expires, clock=self._clock, claim_seconds=claim)
        return MemoryBackend(self._memory, self._clock)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        portal, _ = self._connections.home_portal()
        return portal.call(coro)

    # -- the client side ----------------------------------------------------------------------

    async def prepare(self, message: Message) -> None:
        """Before publishing `message`: be ready for its result (rpc: declare and consume the
        reply queue, once per process, as Celery's client does on its first publish)."""
        if (
            self._consumes_replies
            and message.reply_to is not None
            and message.reply_to == self.reply_to
        ):
            await self.backend().prepare()

    async def alookup(self, task_id: str) -> TaskResult | None:
        """The latest known result of `task_id`, without waiting; `None` when unknown."""
        return await self.backend().get(task_id)

    def lookup(self, task_id: str) -> TaskResult | None:
        return self._call(self.alookup(task_id))

    async def await_ready(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - Celery's API
    ) -> TaskResult:
        """Wait for `task_id`'s ready result; `ResultTimeout` after `timeout` seconds."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout}")
        return await self.backend().wait(task_id, timeout)

    def wait_ready(self, task_id: str, timeout: float | None = None) -> TaskResult:
        return self._call(self.await_ready(task_id, timeout))

    async def aforget(self, task_id: str) -> None:
        """Drop `task_id`'s result (Redis: delete the key; rpc: this process's copy)."""
        await self.backend().forget(task_id)

    def forget(self, task_id: str) -> None:
        self._call(self.aforget(task_id))

    # -- the worker side ----------------------------------------------------------------------

    async def store(self, result: TaskResult, request: Message | None) -> None:
        """Record `result` for the task `request` carried; nothing if it ignores results."""
        if request is not None and request.ignore_result:
            return
        await self.backend().store(result, request)

    async def astore_state(
        self,
        task_id: str,
        state: str,
        meta: Mapping[str, Any] | BaseException | None = None,
        *,
        request: Message | None = None,
    ) -> None:
        """Celery's `update_state`: record a (custom) state with its `meta`.

        rpc needs the task's `request` (it names the reply queue).
        """
        if not isinstance(state, str) or not state:
            raise ValueError(f"a state is a non-empty string, not {state!r}")
        value = dict(meta) if isinstance(meta, Mapping) else meta
        result = TaskResult(task_id=task_id, state=state, value=value)
        await self.store(result, request)

    def store_state(
        self,
        task_id: str,
        state: str,
        meta: Mapping[str, Any] | BaseException | None = None,
        *,
        request: Message | None = None,
    ) -> None:
        """`astore_state` from a sync task's thread (runs on the worker's loop)."""
        self._call(self.astore_state(task_id, state, meta, request=request))

    async def set_chord_size(self, group_id: str, size: int) -> None:
        """Record a chord's header size as it is applied (Celery's `set_chord_size`)."""
        await self.backend().set_chord_size(group_id, size)

    async def record_chords(self, plan: Plan) -> None:
        """What Celery records for the chords a workflow applies, before its messages go
        out: each header with a group among its results (`apply_chord`), then each size."""
        backend = self.backend()
        for header in plan.chord_headers:
            await backend.save_chord_header(header)
        for group_id, size in plan.chord_sizes:
            await backend.set_chord_size(group_id, size)

    async def chord_part_done(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        """Count one chord header part (`size`: the header's, when the message says it);
        every part, in group-index order, to the one caller whose part completes it."""
        return await self.backend().chord_part_done(group_id, size, result)

    async def chord_complete(self, group_id: str, *, failed: bool = False) -> None:
        """The chord body is published (or, `failed`, will not run): drop the chord's state
        for good (a failed chord's parts stay)."""
        await self.backend().chord_complete(group_id, failed=failed)

    async def aadd_to_chord(self, group_id: str) -> None:
        """One more part for the chord `group_id`, added by a task of its header."""
        await self.backend().add_to_chord(group_id)

    def add_to_chord(self, group_id: str) -> None:
        """`aadd_to_chord` from a sync task's thread (runs on the worker's loop)."""
        self._call(self.aadd_to_chord(group_id))

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the backend of the running loop."""
        with self._lock:
            backend = self._backends.pop(asyncio.get_running_loop(), None)
        if backend is not None:
            await backend.aclose()

    def close(self) -> None:
        """Close the backends of loops other than the caller's that still run (e.g. the
        private loop sync calls used); call before `Connections.close()`."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            backends = [
                (loop, backend) for loop, backend in self._backends.items() if loop is not running
            ]
            for loop, _ in backends:
                del self._backends[loop]
        for loop, backend in backends:
            if loop.is_running() and not loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(backend.aclose(), loop)
                try:
                    future.result(10)
                except Exception:  # closing is best effort: the process is going
                    pass
