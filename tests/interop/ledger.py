"""The interop ledger: one JSON line per task execution, written by Celery and hare workers alike.

Both worker apps (`celery_side`, `hare_side`) append to the file named by `INTEROP_LEDGER`;
the tests read it back. Each line is one write(2) on an O_APPEND file, so lines from threads
and processes never interleave. Arguments are stored with type tags (`$datetime`, `$uuid`,
`$decimal`...) so a test can check that a value crossed the wire as its own type, not as a
string or a kombu-tagged dict.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ("ENV", "Entry", "Ledger", "decode_value", "encode_value", "record")

#: The environment variable naming the ledger file.
ENV = "INTEROP_LEDGER"


def encode_value(value: Any) -> Any:
    """`value` as JSON data, with tags for the types JSON cannot tell apart."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, datetime):  # before date: a datetime is a date
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time_of_day):
        return {"$time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, Mapping):
        return {"$dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, Sequence):
        return [encode_value(item) for item in value]
    return {"$other": f"{type(value).__name__}: {value!r}"}


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time_of_day.fromisoformat,
    "$uuid": uuid.UUID,
    "$decimal": Decimal,
    "$bytes": bytes.fromhex,
    "$other": str,
}


def decode_value(data: Any) -> Any:
    """The inverse of `encode_value` (lists stay lists; `$other` comes back as its text)."""
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if isinstance(data, dict):
        ((tag, raw),) = data.items()
        if tag == "$dict":
            return {decode_value(k): decode_value(v) for k, v in raw}
        return _DECODERS[tag](raw)
    return data


@functools.cache
def _fd(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def record(
    *,
    worker: str,
    task: str,
    task_id: str | None,
    retries: int | None,
    key: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> int:
    """Append one execution to the ledger; return how many executions `key` has had (this one
    included), read back from the file, so a task can act on its own attempt number."""
    path = os.environ[ENV]
    line = {
        "worker": worker,
        "task": task,
        "id": task_id,
        "retries": retries,
        "key": key,
        "args": encode_value(list(args)),
        "kwargs": encode_value(dict(kwargs)),
        "at": time.time(),
        "pid": os.getpid(),
    }
    os.write(_fd(path), (json.dumps(line) + "\n").encode())
    return sum(entry.key == key for entry in Ledger(Path(path)).entries())


@dataclass(frozen=True, slots=True)
class Entry:
    """One execution of a task."""

    worker: str  # "celery" or "hare"
    task: str
    id: str | None  # None when the worker could not tell the task its id
    retries: int | None
    key: str
    args: list[Any]
    kwargs: dict[str, Any]
    at: float  # time.time() when the task started
    pid: int


class Ledger:
    """Reads the ledger file back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Entry]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            if not line.endswith("}"):
                continue  # a line being written right now
            data = json.loads(line)
            data["args"] = decode_value(data["args"])
            data["kwargs"] = decode_value(data["kwargs"])
            found.append(Entry(**data))
        return found

    def of(self, key: str) -> list[Entry]:
        """The executions of `key`, in the order they started."""
        return sorted((e for e in self.entries() if e.key == key), key=lambda e: e.at)

    def keys(self) -> set[str]:
        return {entry.key for entry in self.entries()}
