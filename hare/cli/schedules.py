"""`hare schedules APP`: each periodic schedule, the spec the fleet runs, and its next occurrence.

The spec the fleet runs is the pending tick's (a newer deploy's workers may have replaced the
one in the local code), so the tick is read from its slot: taken with basic.get and put back
with a requeue. Only the leading worker may publish to a slot (`hare.periodic.election`), so
the CLI never offers a copy. The slot looks empty for the milliseconds the tick is out; should
the leader's watchdog offer meanwhile, the slot holds two ticks until they fire, and the leader
fires an occurrence once (it drops a second tick for one it fired). A tick about to fire is
not read at all.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hare.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    fail,
    load_app,
    run_job,
    table,
)
from hare.errors import (
    ConfigurationError,
    HareError,
    MessageError,
    NotFound,
)
from hare.periodic.ticks import Tick, slot_name, tick_from, v1_tick_queue_name

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.transport.base import Transport

__all__ = (
    "PendingTick",
    "add_schedules_parser",
    "read_pending",
    "run_schedules",
    "schedule_rows",
)

#: A tick due sooner than this is left alone (the workers' guard is at most 2 s).
IMMINENT = 2.0


def add_schedules_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "schedules",
        help="the periodic schedules: the spec the fleet runs, the next occurrence",
        description="List the app's periodic schedules: the spec in the local code, the spec "
        "the fleet runs (the pending tick's, with its deploy generation) and when it fires "
        "next. There is no beat process: the broker picks the worker that runs them.",
    )
    add_app_argument(parser)


def run_schedules(args: argparse.Namespace) -> int:
    try:
        app = load_app(app_path(args))
    except (UsageError, ConfigurationError) as exc:
        return fail("schedules", exc, EXIT_USAGE)
    if not app.periodics:
        print(f"{app.main or 'the app'}: no periodic schedules")
        return EXIT_OK
    return run_job("schedules", _print(app))


async def _print(app: Hare) -> int:
    for line in table(await schedule_rows(app)):
        print(line)
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class PendingTick:
    """What a schedule's slot holds: the tick, or why there is none to show."""

    state: str
    tick: Tick | None = None


async def read_pending(transport: Transport, app: Hare, schedule: str) -> PendingTick:
    """The pending tick of `schedule`, read without losing or doubling it (see the module)."""
    slot = slot_name(app.main or "app", schedule)
    try:
        depth = await transport.message_count(slot)
    except NotFound:
        return await _no_tick(transport, app, "no slot yet (no worker has run)")
    if depth == 0:
        return await _no_tick(transport, app, "none (the leading worker offers one)")
    local = app.periodics.get(schedule)
    now = app.clock.time()
    if local is not None:
        upcoming = local.schedule.next_after(datetime.fromtimestamp(now, UTC)).timestamp()
        if upcoming - now < IMMINENT:
            return PendingTick("firing now (not read)")
    delivery = await transport.get(slot)
    if delivery is None:
        return PendingTick("firing now (taken by a worker)")
    await transport.reject(delivery, requeue=True)
    try:
        tick = tick_from(delivery.body, delivery.properties)
    except MessageError:
        return PendingTick("unreadable (the leading worker replaces it)")
    return PendingTick("yes", tick)


async def _no_tick(transport: Transport, app: Hare, state: str) -> PendingTick:
    """No v2 tick: say so, or that periodic v1 workers still run the schedules."""
    with contextlib.suppress(NotFound):
        if await transport.consumer_count(v1_tick_queue_name(app.main or "app")):
            return PendingTick("kept by periodic v1 workers (an upgrade in progress)")
    return PendingTick(state)


async def schedule_rows(app: Hare) -> list[tuple[str, ...]]:
    transport = app.make_transport()
    await transport.connect()
    now = datetime.fromtimestamp(app.clock.time(), UTC)
    rows: list[tuple[str, ...]] = [
        ("schedule", "task", "queue", "spec (this code)", "spec (fleet)", "next (UTC)", "tick")
    ]
    try:
        for name, entry in sorted(app.periodics.items()):
            try:
                pending = await read_pending(transport, app, name)
            except HareError as exc:
                pending = PendingTick(f"cannot read: {exc}")
            tick = pending.tick
            if tick is None:
                fleet, nxt = "?", entry.schedule.next_after(now)
            else:
                fleet = f"{tick.spec} (generation {tick.generation})"
                nxt = datetime.fromtimestamp(tick.occurrence_ms / 1000, UTC)
                if tick.kind == "lease":
                    fleet += ", running (overlap=False)"
            spec = entry.schedule.canonical
            when = nxt.isoformat(timespec="seconds")
            rows.append((name, entry.task, entry.queue, spec, fleet, when, pending.state))
    finally:
        await transport.close()
    return rows
