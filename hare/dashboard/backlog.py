"""What waits: dead letters per queue, the delay ladder, the periodic schedules, one result.

Thin over what the CLI already reads: dead letters through `hare.dlq` (a browse that hands
every message back in place), the ladder through `hare.cli.ladder_view`, the schedules through
`hare.cli.schedules` (the pending tick of each slot), a task's stored result through the
app's result backend. A schedule's last run is the newest task of its name in the events ring
(workers with `-E`).
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime

from hare import dlq
from hare.app import Hare
from hare.cli.ladder_view import Delayed, browse
from hare.cli.schedules import schedule_rows
from hare.dashboard.broker import connected
from hare.dashboard.ring import TaskRing, TaskSeen
from hare.errors import HareError, NotFound
from hare.results.state import TaskResult

__all__ = ("DeadQueue", "Schedule", "dead_letters", "delayed", "lookup_result", "schedules")


@dataclass(frozen=True, slots=True)
class DeadQueue:
    """A work queue's dead letters: how many, and the first `limit` of them."""

    queue: str
    dead_queue: str
    count: int
    rows: list[dlq.DeadLetterRow]


async def dead_letters(app: Hare, queues: list[str], limit: int) -> list[DeadQueue]:
    """The dead letters of each of `queues` that has any, the first `limit` rows of each."""
    counts: dict[str, int] = {}
    async with connected(app) as transport:
        for queue in queues:
            try:
                counts[queue] = await transport.message_count(dlq.dead_queue_name(queue))
            except NotFound:
                continue
    found = []
    for queue, count in counts.items():
        if not count:
            continue
        rows = []
        async with aclosing(dlq.list_dead_letters(app, queue)) as listing:
            async for row in listing:
                rows.append(row)
                if len(rows) >= limit:
                    break
        found.append(DeadQueue(queue, dlq.dead_queue_name(queue), count, rows))
    return found


async def delayed(app: Hare, limit: int) -> tuple[list[Delayed], dict[str, int]]:
    """Up to `limit` delayed messages of each ladder level, soonest due first, and the depth
    of each level."""
    read, depths = await browse(app, limit=limit)
    read.sort(key=lambda d: (d.due is None, d.due or datetime.min.replace(tzinfo=UTC)))
    return read, depths


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic schedule as `hare schedules` shows it, with its last run seen."""

    fields: dict[str, str]
    last: TaskSeen | None


async def schedules(app: Hare, ring: TaskRing) -> list[Schedule]:
    if not app.periodics:
        return []
    header, *rows = await schedule_rows(app)
    shown = [dict(zip(header, row, strict=True)) for row in rows]
    return [Schedule(fields, ring.last_of(fields["task"])) for fields in shown]


async def lookup_result(app: Hare, task_id: str) -> TaskResult | str | None:
    """The stored result of `task_id`; None when the app keeps no results; else, as text, why
    there is none to show."""
    if app.results is None:
        return None
    try:
        found = await app.results.alookup(task_id)
    except HareError as exc:
        return f"the result backend did not answer: {exc}"
    return found if found is not None else "no result stored under this id (PENDING)"
