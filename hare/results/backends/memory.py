"""`memory://`: results kept in this process, for tests.

One `MemoryStore` per app, shared by the app's backends on every event loop (a worker's loop
and the loop that serves sync `get()`), so a result stored on one is seen on the others.
Results go through Celery's JSON body on the way in, as they would over rpc or Redis: a test
sees exactly the values (and decoded exceptions) a real backend would give back. Nothing
expires; the store lives as long as the app.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass, field, replace

from hare.clock import Clock
from hare.core.message import Message
from hare.results import celery_format
from hare.results.backends.base import (
    await_with_timeout,
    encode_for_store,
    group_index,
    join_header,
    settle,
)
from hare.results.state import SUCCESS, GroupRef, TaskResult

__all__ = ("MemoryBackend", "MemoryStore")


@dataclass(slots=True)
class _Chord:
    parts: dict[tuple[str, int | None], TaskResult] = field(default_factory=dict)
    size: int | None = None
    claimed: bool = False
    #: Parts added by `add_to_chord`, on top of `size`.
    added: int = 0


def _checked_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"a chord header has at least one part, not {size!r}")
    return size


def _by_index(result: TaskResult) -> tuple[float, str]:
    index = result.group_index
    return (math.inf if index is None else float(index), result.task_id)


class MemoryStore:
    """Results, waiters and chord counts of one app; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[str, TaskResult] = {}
        self._waiters: dict[str, set[asyncio.Future[TaskResult]]] = {}
        self._chords: dict[str, _Chord] = {}
        self._done_chords: set[str] = set()
        self._headers: dict[str, GroupRef] = {}

    def put(self, result: TaskResult) -> None:
        """Record `result`; a SUCCESS is never replaced (Celery's key-value backends' rule)."""
        with self._lock:
            current = self._results.get(result.task_id)
            if current is not None and current.state == SUCCESS:
                return
            self._results[result.task_id] = result
            waiters = self._waiters.pop(result.task_id, set()) if result.ready else set()
        for future in waiters:
            settle(future, result)

    def get(self, task_id: str) -> TaskResult | None:
        with self._lock:
            return self._results.get(task_id)

    def delete(self, task_id: str) -> None:
        with self._lock:
            self._results.pop(task_id, None)

    def register(self, task_id: str, future: asyncio.Future[TaskResult]) -> TaskResult | None:
        """The ready result if there is one, else wait for it with `future`."""
        with self._lock:
            current = self._results.get(task_id)
            if current is not None and current.ready:
                return current
            self._waiters.setdefault(task_id, set()).add(future)
            return None

    def unregister(self, task_id: str, future: asyncio.Future[TaskResult]) -> None:
        with self._lock:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[task_id]

    def set_chord_size(self, group_id: str, size: int) -> None:
        with self._lock:
            self._done_chords.discard(group_id)
            chord = self._chords.setdefault(group_id, _Chord())
            chord.size, chord.claimed = size, False

    def chord_part(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        with self._lock:
            if group_id in self._done_chords:
                return None
            chord = self._chords.setdefault(group_id, _Chord())
            if chord.size is None:
                chord.size = size
            chord.parts.setdefault((result.task_id, result.group_index), result)
            if chord.size is None:
                return None  # counted: a later part, once the size is set, completes it
            if chord.claimed or len(chord.parts) < chord.size + chord.added:
                return None
            chord.claimed = True
            return sorted(chord.parts.values(), key=_by_index)

    def add_to_chord(self, group_id: str) -> None:
        with self._lock:
            self._chords.setdefault(group_id, _Chord()).added += 1

    def save_header(self, header: GroupRef) -> None:
        with self._lock:
            self._headers[header.id] = header

    def header(self, group_id: str) -> GroupRef | None:
        with self._lock:
            return self._headers.get(group_id)

    def chord_complete(self, group_id: str) -> None:
        with self._lock:
            self._chords.pop(group_id, None)
            self._headers.pop(group_id, None)
            self._done_chords.add(group_id)


class MemoryBackend:
    """A `ResultBackend` on a `MemoryStore`."""

    def __init__(self, store: MemoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def prepare(self) -> None:
        return None

    async def store(self, result: TaskResult, request: Message | None) -> None:
        body = encode_for_store(result, self._clock)
        self._store.put(celery_format.loads(body))

    async def get(self, task_id: str) -> TaskResult | None:
        return self._store.get(task_id)

    async def wait(
        self,
        task_id: str,
        timeout: float | None,  # noqa: ASYNC109 - Celery's API
    ) -> TaskResult:
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        ready = self._store.register(task_id, future)
        if ready is not None:
            return ready
        try:
            return await await_with_timeout(future, timeout, self._clock, task_id)
        finally:
            self._store.unregister(task_id, future)

    async def forget(self, task_id: str) -> None:
        self._store.delete(task_id)

    async def set_chord_size(self, group_id: str, size: int) -> None:
        self._store.set_chord_size(group_id, _checked_size(size))

    async def chord_part_done(
        self, group_id: str, size: int | None, result: TaskResult
    ) -> list[TaskResult] | None:
        entry = celery_format.chord_entry_loads(
            celery_format.chord_entry_dumps(result), group_id=group_id
        )
        part = replace(entry, group_index=group_index(result))
        parts = self._store.chord_part(
            group_id, None if size is None else _checked_size(size), part
        )
        header = None if parts is None else self._store.header(group_id)
        return parts if header is None else await join_header(header, self)

    async def save_chord_header(self, header: GroupRef) -> None:
        self._store.save_header(header)

    async def chord_complete(self, group_id: str, *, failed: bool = False) -> None:
        self._store.chord_complete(group_id)

    async def add_to_chord(self, group_id: str) -> None:
        self._store.add_to_chord(group_id)

    async def aclose(self) -> None:
        return None
