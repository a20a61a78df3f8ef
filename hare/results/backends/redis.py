"""`redis://`: results in Redis, in Celery's keys and format, readable by any process.

Celery's Redis backend (`celery/backends/redis.py`) writes a result as `SETEX
celery-task-meta-<id> <result_expires> <JSON body>` and `PUBLISH`es the same body on a
channel named like the key, in one MULTI/EXEC; hare writes and reads exactly that, so Celery
clients read hare's results and the other way round. A stored SUCCESS is never overwritten
(Celery's rule against a lost worker's late duplicate). Waiting subscribes to the key's
channel, then reads the key (a result stored before the subscription is not missed), and reads
it again every few seconds in case a message was lost with a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from hare.clock import Clock
from hare.core.message import Message
from hare.core.settings import mask_url
from hare.errors import ConfigurationError, MalformedResult, ResultBackendError, ResultTimeout
from hare.results import celery_format
from hare.results.backends.base import (
    await_with_timeout,
    encode_for_store,
    group_index,
    join_header,
    settle,
)
from hare.results.backends.redis_chord import CHORD_CLEANUP_LUA, CHORD_PART_LUA, chord_keys
from hare.results.state import (
    SUCCESS,
    GroupRef,
    TaskResult,
)
from hare.transport.reconnect import backoff_delay

__all__ = ("RedisBackend", "task_key")

logger = logging.getLogger("hare.results")

#: A waiter reads its key again this often, in case a PUBLISH was lost with a connection.
RECHECK_INTERVAL = 5.0
#: How long the part that completes a chord holds its claim while it publishes the body.
CLAIM_SECONDS = 60


def task_key(task_id: str) -> str:
    if not task_id:
        raise ValueError("a task id must not be empty")
    return celery_format.TASK_KEY_PREFIX + task_id


@contextlib.asynccontextmanager
async def _redis_errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise ResultBackendError(f"{what}: {type(exc).__name__}: {exc}") from exc


class RedisBackend:
    """The Redis `ResultBackend` of one event loop (a connection pool of its own)."""

    def __init__(
        self, url: str, *, expires: float, clock: Clock, claim_seconds: int = CLAIM_SECONDS
    ) -> None:
        try:
            self._client: aioredis.Redis = aioredis.Redis.from_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"result_backend {mask_url(url)!r}: {exc}") from exc
        self._where = mask_url(url)
        self._expires = max(1, int(expires))
        self._clock = clock
        self._claim_seconds = claim_seconds
        self._rng = random.Random()
        self._waiters: dict[str, set[asyncio.Future[TaskResult]]] = {}
        self._pubsub: PubSub | None = None
        self._pubsub_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._claims: dict[str, str] = {}
        self._part_script = self._client.register_script(CHORD_PART_LUA)
        self._cleanup_script = self._client.register_script(CHORD_CLEANUP_LUA)

    async def prepare(self) -> None:
        return None

    # -- store and read -----------------------------------------------------------------------

    async def store(self, result: TaskResult, request: Message | None) -> None:
        key = task_key(result.task_id)
        body = encode_for_store(result, self._clock)
        async with _redis_errors(f"storing the result of task {result.task_id} in {self._where}"):
            if await self._stored_state(key) == SUCCESS:
                return
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(key, body, ex=self._expires)  # SETEX, as Celery writes it
                pipe.publish(key, body)
                await pipe.execute()

    async def _stored_state(self, key: str) -> str | None:
        current = await self._client.get(key)
        if current is None:
            return None
        try:
            return celery_format.loads(current).state
        except MalformedResult:
            return None  # unreadable: replace it

    async def get(self, task_id: str) -> TaskResult | None:
        async with _redis_errors(f"reading the result of task {task_id} from {self._where}"):
            body = await self._client.get(task_key(task_id))
        if body is None:
            return None
        return celery_format.loads(body, task_id=task_id)

    async def forget(self, task_id: str) -> None:
        async with _redis_errors(f"forgetting task {task_id} in {self._where}"):
            await self._client.delete(task_key(task_id))

    # -- waiting ------------------------------------------------------------------------------

    async def wait(
        self,
        task_id: str,
        timeout: float | None,  # noqa: ASYNC109 - Celery's API
    ) -> TaskResult:
        key = task_key(task_id)
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        first = task_id not in self._waiters
        self._waiters.setdefault(task_id, set()).add(future)
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        try:
            if first:
                await self._subscribe(key)
            while True:
                current = await self.get(task_id)
                if current is not None and current.ready:
                    return current
                left = RECHECK_INTERVAL
                if deadline is not None:
                    left = min(left, deadline - self._clock.monotonic())
                try:
                    return await await_with_timeout(future, left, self._clock, task_id)
                except ResultTimeout:
                    if deadline is not None and self._clock.monotonic() >= deadline:
                        raise ResultTimeout(task_id, timeout or 0.0) from None
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[task_id]
                    await self._unsubscribe(key)

    async def _subscribe(self, key: str) -> None:
        async with self._pubsub_lock, _redis_errors(f"subscribing to {key} in {self._where}"):
            if self._pubsub is None:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(key)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(self._pubsub))

    async def _unsubscribe(self, key: str) -> None:
        async with self._pubsub_lock:
            if self._pubsub is None:
                return
            try:
                await self._pubsub.unsubscribe(key)
            except RedisError as exc:  # the channel goes with the connection anyway
                logger.debug("redis results: unsubscribe from %s failed: %s", key, exc)

    async def _read(self, pubsub: PubSub) -> None:
        """Hand each published result to the waiters of its task, until cancelled."""
        attempt = 0
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                attempt = 0
            except (RedisError, OSError) as exc:
                logger.warning("redis results: reading published results failed: %s", exc)
                await self._clock.sleep(backoff_delay(attempt, self._rng))
                attempt += 1
                continue
            if message is not None and message.get("type") == "message":
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        task_id = channel.removeprefix(celery_format.TASK_KEY_PREFIX)
        outcome: TaskResult | BaseException
        try:
            outcome = celery_format.loads(message["data"], task_id=task_id)
        except MalformedResult as exc:
            outcome = exc
        if isinstance(outcome, TaskResult) and not outcome.ready:
            return
        for future in self._waiters.get(task_id, set()):
            settle(future, outcome)

    # -- chords -------------------------------------------------------------------------------

    async def set_chord_size(self, group_id: str, size: int) -> None:
        """Celery's `set_chord_size`: a new run of the chord (its claim cleared), and its size."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"a chord header has at least one part, not {size!r}")
        keys = chord_keys(group_id)
        async with _redis_errors(f"recording the size of chord {group_id} in {self._where}"):
            await self._client.delete(keys[".c"])
            await self._client.set(keys[".s"], size, ex=self._expires)

    async def save_chord_header(self, header: GroupRef) -> None:
        """Celery's Redis `apply_chord`: the header, under its group's key."""
        key = chord_keys(header.id)[""]
        async with _redis_errors(f"saving the header of chord {header.id} in {self._where}"):
            await self._client.set(key, celery_format.group_dumps(header), ex=self._expires)

    async def chord_part_done(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"a chord header has at least one part, not {size!r}")
        keys = chord_keys(group_id)
        index = group_index(result)
        token = uuid.uuid4().hex
        args: list[str | int | float | bytes] = [
            result.task_id,
            celery_format.chord_entry_dumps(result),
            1,
            "+inf" if index is None else index,
            self._expires,
            self._expires,
            self._claim_seconds,
            token,
            "" if size is None else size,
        ]
        order = [keys[s] for s in (".j", ".t", ".s", ".d", "", ".c")]
        async with _redis_errors(f"counting a part of chord {group_id} in {self._where}"):
            ready, _, known_size, claimed = await self._part_script(keys=order, args=args)
            if int(ready) == -1:
                return None
            if known_size is None:
                # Counted. Celery's client sets the size just before it sends the last part
                # (a generator header, nested groups), so a part may finish before it: the
                # part that counts last, after the size is set, completes the chord.
                return None
            if not int(claimed):
                return None
            self._claims[group_id] = token
            header = await self._saved_header(group_id)
            if header is not None:
                return await join_header(header, self)
            entries = await self._client.zrange(keys[".j"], 0, -1, withscores=True)
        parts = []
        for body, score in cast(list[tuple[bytes, float]], entries):
            part = celery_format.chord_entry_loads(body, group_id=group_id)
            position = None if math.isinf(score) else int(score)
            parts.append(
                TaskResult(
                    task_id=part.task_id,
                    state=part.state,
                    value=part.value,
                    group_id=group_id,
                    group_index=position,
                )
            )
        return parts

    async def _saved_header(self, group_id: str) -> GroupRef | None:
        """The header saved when the chord was applied (by hare or Celery), if any."""
        saved = await self._client.get(chord_keys(group_id)[""])
        if saved is None:
            return None
        try:
            return celery_format.group_loads(saved)
        except MalformedResult as exc:
            logger.warning("chord %s: its saved header is unreadable, not used: %s", group_id, exc)
            return None

    async def chord_complete(self, group_id: str, *, failed: bool = False) -> None:
        token = self._claims.pop(group_id, None)
        if token is None:
            raise ResultBackendError(
                f"chord {group_id}: this backend holds no claim on it (chord_complete goes "
                "after the chord_part_done that returned the parts, on the same loop)"
            )
        keys = chord_keys(group_id)
        order = [keys[s] for s in (".c", ".j", ".t", ".s", ".d")]
        done_seconds = max(self._claim_seconds * 2, 300)
        async with _redis_errors(f"completing chord {group_id} in {self._where}"):
            args: list[str | int] = [token, done_seconds, int(failed)]
            cleaned = await self._cleanup_script(keys=order, args=args)
        if not int(cleaned):
            logger.warning(
                "chord %s: the claim expired before the body was published; "
                "its state was left to expire",
                group_id,
            )

    async def add_to_chord(self, group_id: str) -> None:
        """Celery's `add_to_chord`: one more part in `.t`, which the count adds to the size."""
        key = chord_keys(group_id)[".t"]
        async with _redis_errors(f"adding a part to chord {group_id} in {self._where}"):
            await self._client.incr(key)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        closed = ResultBackendError(f"the Redis result backend {self._where} was closed")
        for waiters in self._waiters.values():
            for future in waiters:
                settle(future, closed)
        pubsub, self._pubsub = self._pubsub, None
        with contextlib.suppress(RedisError, OSError):
            if pubsub is not None:
                # redis-py < 8.2 leaves `PubSub.aclose` untyped, 8.2 types it: a typed
                # reference satisfies mypy against both without a `type: ignore`.
                close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
                await close_pubsub()
            await self._client.aclose()
