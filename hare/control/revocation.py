"""Revoked task ids that outlive a worker: the expiring set and the stream's record format.

Pure: the time is always passed in. A revoke is written to a RabbitMQ stream
(`hare.revoked.v1`) that every worker reads from its start, so a worker that starts later
still learns every id revoked within the retention window; `revocation_stream` does the
I/O.

Each stream entry is a small JSON object:

* `{"hare": "revoke", "v": 1, "ids": [...], "terminate": bool, "signal": "SIGTERM",
  "revoked_at": epoch, "expires_at": epoch}`: these ids must not start before `expires_at`;
* `{"hare": "sync", "v": 1, "token": "..."}`: a marker a worker writes when it subscribes;
  reading its own marker back means it has read everything written before it.

A reader skips entries of another kind or a later version, so the format can grow.
"""

from __future__ import annotations

import heapq
import signal as signals
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hare.core.codec import json_dumps, json_loads
from hare.core.topology import Queue
from hare.errors import ConfigurationError, MalformedMessage

__all__ = (
    "DEFAULT_TTL",
    "MAX_TTL",
    "STREAM",
    "RevocationRecord",
    "RevokedSet",
    "RevokedStamps",
    "SyncMarker",
    "decode_entry",
    "encode_marker",
    "encode_record",
    "revocation_stream",
    "signal_name",
    "stamps_matching",
    "task_ids",
)

#: The stream's name; the version is in it so a new format can start a new stream.
STREAM = "hare.revoked.v1"
#: The stream keeps entries at least a day (`x-max-age`; RabbitMQ drops whole segments once
#: all they hold is older), so a revocation may last at most that long.
MAX_TTL = 86_400.0
#: How long a revocation lasts unless told otherwise: as long as the stream keeps it.
DEFAULT_TTL = MAX_TTL
#: Small segments, so retention drops old entries in steps of about a megabyte rather than
#: RabbitMQ's default 500 MB (which a revocation list would never fill).
_SEGMENT_BYTES = 1_000_000
_VERSION = 1


def revocation_stream() -> Queue:
    """The stream's declaration: every process declares it with exactly these arguments."""
    return Queue(
        name=STREAM,
        arguments={
            "x-queue-type": "stream",
            "x-max-age": "1D",
            "x-stream-max-segment-size-bytes": _SEGMENT_BYTES,
        },
    )


def task_ids(task_id: str | Iterable[str]) -> tuple[str, ...]:
    """One id or several, as a tuple without duplicates; `ConfigurationError` if any is empty."""
    ids = (task_id,) if isinstance(task_id, str) else tuple(task_id)
    for one in ids:
        if not isinstance(one, str) or not one:
            raise ConfigurationError(f"a task id must be a non-empty string, not {one!r}")
    if not ids:
        raise ConfigurationError("revoke needs at least one task id")
    return tuple(dict.fromkeys(ids))


def signal_name(value: str | int | None) -> str:
    """A signal as Celery names it ("SIGTERM"), from "TERM", "SIGTERM", 15 or None (SIGTERM)."""
    if value is None:
        return "SIGTERM"
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return signals.Signals(value).name
        if isinstance(value, str):
            text = value.strip().upper()
            if text.isdigit():
                return signals.Signals(int(text)).name
            name = text if text.startswith("SIG") else "SIG" + text
            return signals.Signals[name].name
    except (KeyError, ValueError):
        pass
    raise ConfigurationError(f"unknown signal {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationRecord:
    """Task ids revoked at `revoked_at`, not to be started until `expires_at` (epoch s)."""

    ids: tuple[str, ...]
    terminate: bool = False
    signal: str = "SIGTERM"
    revoked_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class SyncMarker:
    """A reader's marker: seeing it means everything written before it was read."""

    token: str


def encode_record(record: RevocationRecord) -> bytes:
    return json_dumps(
        {
            "hare": "revoke",
            "v": _VERSION,
            "ids": list(record.ids),
            "terminate": record.terminate,
            "signal": record.signal,
            "revoked_at": record.revoked_at,
            "expires_at": record.expires_at,
        }
    )


def encode_marker(token: str) -> bytes:
    return json_dumps({"hare": "sync", "v": _VERSION, "token": token})


def decode_entry(body: bytes) -> RevocationRecord | SyncMarker | None:
    """An entry of the stream; `None` for one of a kind or version this reader does not know.

    `MalformedMessage` for one that cannot be read at all.
    """
    try:
        data = json_loads(body)
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"revocation entry is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedMessage(f"revocation entry is a {type(data).__name__}, not an object")
    version = data.get("v")
    if not isinstance(version, int) or version != _VERSION:
        return None
    kind = data.get("hare")
    if kind == "sync":
        return SyncMarker(_field(data, "token", str))
    if kind != "revoke":
        return None
    ids = data.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise MalformedMessage(f"revocation entry with bad ids: {ids!r}")
    return RevocationRecord(
        ids=tuple(ids),
        terminate=_field(data, "terminate", bool),
        signal=_field(data, "signal", str),
        revoked_at=float(_field(data, "revoked_at", (int, float))),
        expires_at=float(_field(data, "expires_at", (int, float))),
    )


def _field(data: dict[str, Any], key: str, kind: Any) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise MalformedMessage(f"revocation entry with bad {key}: {value!r}")
    return value


class RevokedSet:
    """Task ids with the time each stops being revoked; lookups are O(1).

    Expired ids are dropped as time passes (`purge`, also run by `add`), oldest deadline
    first, so memory holds what is revoked now and no more. Each id also remembers whether
    its running task was already asked to terminate, and whether that stopped it here, so the
    same request arriving twice (by the stream and by a broadcast) terminates once.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._terminated: dict[str, bool] = {}  # asked to terminate -> whether it stopped here
        self._deadlines: list[tuple[float, str]] = []  # a heap; stale entries are skipped

    def __len__(self) -> int:
        return len(self._until)

    def add(self, task_id: str, expires_at: float, now: float) -> None:
        """Revoke `task_id` until `expires_at` (kept if it already lasts longer)."""
        self.purge(now)
        if expires_at <= now:
            return
        if self._until.get(task_id, float("-inf")) >= expires_at:
            return
        self._until[task_id] = expires_at
        heapq.heappush(self._deadlines, (expires_at, task_id))

    def mark_terminated(self, task_id: str) -> bool:
        """Note a terminate request for `task_id`; whether it is the first one."""
        if task_id in self._terminated or task_id not in self._until:
            return False
        self._terminated[task_id] = False
        return True

    def mark_stopped(self, task_id: str) -> None:
        """The terminate request for `task_id` stopped its task here."""
        if task_id in self._terminated:
            self._terminated[task_id] = True

    def stopped(self, task_id: str) -> bool:
        """Whether a terminate request stopped `task_id` here."""
        return self._terminated.get(task_id, False)

    def contains(self, task_id: str, now: float) -> bool:
        """Whether `task_id` is revoked at `now`."""
        until = self._until.get(task_id)
        return until is not None and until > now

    def ids(self, now: float) -> list[str]:
        """The ids revoked at `now`, in the order they were first revoked."""
        return [task_id for task_id, until in self._until.items() if until > now]

    def until(self, now: float) -> dict[str, float]:
        """The ids revoked at `now`, each with when its revocation ends."""
        return {task_id: until for task_id, until in self._until.items() if until > now}

    def discard(self, task_id: str) -> None:
        """Revoke `task_id` no more (its heap entry is skipped as stale)."""
        self._until.pop(task_id, None)
        self._terminated.pop(task_id, None)

    def purge(self, now: float) -> int:
        """Forget the ids whose revocation has expired; how many went."""
        dropped = 0
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, task_id = heapq.heappop(self._deadlines)
            if self._until.get(task_id) == deadline:  # else: extended since, a stale entry
                del self._until[task_id]
                self._terminated.pop(task_id, None)
                dropped += 1
        return dropped


class RevokedStamps:
    """Stamp values revoked by stamp name (Celery's `revoke_by_stamped_headers`).

    A message is revoked when one of its `stamped_headers` has a value (or, for a list, any
    value) among those revoked for that name. Held in memory, as Celery's worker holds them.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[Any]] = {}

    def add(self, headers: Mapping[str, Any] | Iterable[str]) -> dict[str, list[Any]]:
        """Revoke `{name: value or [values]}` (or Celery 3.1's `["name=value", ...]`); the
        headers as a mapping of lists."""
        given = _stamp_headers(headers)
        for name, values in given.items():
            self._values.setdefault(name, []).extend(v for v in values if not self._has(name, v))
        return given

    def matching(self, message_headers: Mapping[str, Any]) -> dict[str, Any] | None:
        """The revoked `{name: value}` a message's stamps match, or None."""
        return stamps_matching(message_headers, self._values)

    def clear(self) -> None:
        self._values.clear()

    def _has(self, name: str, value: Any) -> bool:
        return value in self._values.get(name, ())


def stamps_matching(
    message_headers: Mapping[str, Any], revoked: Mapping[str, Iterable[Any]]
) -> dict[str, Any] | None:
    """The first `{name: value}` of a message's stamps that `revoked` names, or None."""
    names = message_headers.get("stamped_headers") or ()
    stamps = message_headers.get("stamps") or {}
    if not isinstance(names, list | tuple) or not isinstance(stamps, Mapping):
        return None
    for name in names:
        if not isinstance(name, str) or name not in revoked or stamps.get(name) is None:
            continue
        value = stamps[name]
        values = list(value) if isinstance(value, list | tuple) else [value]
        wanted = list(revoked[name])
        for one in values:
            if one in wanted:
                return {name: one}
    return None


def _stamp_headers(headers: Mapping[str, Any] | Iterable[str]) -> dict[str, list[Any]]:
    if not isinstance(headers, Mapping):
        pairs = [str(h).split("=", 1) for h in headers]
        headers = {pair[0]: pair[1] if len(pair) > 1 else None for pair in pairs}
    return {
        str(name): list(value) if isinstance(value, list | tuple | set) else [value]
        for name, value in headers.items()
    }
