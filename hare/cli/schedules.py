"""`hare schedules APP`: each periodic schedule, its spec, next occurrence and pending tick.

The pending tick is read from the slot's depth only: peeking at its content would take it out
of the slot for a moment, and another pod's offer could slip in (see `hare.periodic`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hare.cli.common import EXIT_BROKER, EXIT_OK, EXIT_USAGE, load_app
from hare.errors import BrokerUnavailable, ConfigurationError, HareError

if TYPE_CHECKING:
    from hare.app import Hare

__all__ = ("add_schedules_parser", "run_schedules")


def add_schedules_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("schedules", help="list the app's periodic schedules")
    parser.add_argument("app", help="MODULE:ATTR of the app, or MODULE holding one app")


def run_schedules(args: argparse.Namespace) -> int:
    try:
        app = load_app(args.app)
    except ConfigurationError as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not app.periodics:
        print(f"{args.app}: no periodic schedules")
        return EXIT_OK
    try:
        rows = asyncio.run(_rows(app))
    except BrokerUnavailable as exc:
        print(f"hare: {exc}", file=sys.stderr)
        return EXIT_BROKER
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return EXIT_OK


async def _rows(app: Hare) -> list[tuple[str, ...]]:
    from hare.periodic.ticks import slot_name

    transport = app.make_transport()
    await transport.connect()
    now = datetime.fromtimestamp(app.clock.time(), UTC)
    rows: list[tuple[str, ...]] = [
        ("schedule", "task", "queue", "spec", "next occurrence (UTC)", "pending tick")
    ]
    try:
        for name, entry in sorted(app.periodics.items()):
            try:
                depth = await transport.message_count(slot_name(app.main or "app", name))
                pending = "yes" if depth else "none (a worker will offer one)"
            except HareError:  # a missing slot is a state to show
                pending = "no slot yet (no worker has run)"
            nxt = entry.schedule.next_after(now).isoformat(timespec="seconds")
            rows.append((name, entry.task, entry.queue, entry.schedule.canonical, nxt, pending))
    finally:
        await transport.close()
    return rows
