"""What the queues and workers pages show, read from the broker as `hare status` reads it.

Queues: ready messages and consumers from a passive declare (what AMQP tells); unacked
messages and publish/deliver rates only from RabbitMQ's management API
(`hare.cli.management`), shown as `?` when it does not answer, with the reason. Each queue has
its dead letters' count beside it; event handler queues are listed apart, with the events
parked unhandled. Workers: those that answer the pidbox (`hare.control.client.Control`), with
their `stats` (concurrency, processed counts, uptime) and `active` tasks.

Each read opens a connection of its own and closes it: the dashboard holds nothing between
two refreshes, so a broker restart costs it one failed refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from hare.app import Hare
from hare.cli.management import QueueStats, fetch
from hare.control.client import Control
from hare.core.deadletter import dead_queue_name
from hare.errors import NotFound
from hare.events.names import UNHANDLED_QUEUE
from hare.transport.base import Transport

__all__ = ("ActiveTask", "Overview", "QueueView", "WorkerView", "connected", "overview", "workers")


@asynccontextmanager
async def connected(app: Hare) -> AsyncIterator[Transport]:
    """A transport of `app`, connected for the block and closed after it."""
    transport = app.make_transport()
    await transport.connect()
    try:
        yield transport
    finally:
        await transport.close()


@dataclass(frozen=True, slots=True)
class QueueView:
    name: str
    ready: str  # "-": no such queue yet
    unacked: str  # "?": the management API did not say
    consumers: str
    publish_rate: str
    deliver_rate: str
    dead: str
    handler: str | None = None  # the event handler whose queue it is


@dataclass(frozen=True, slots=True)
class Overview:
    queues: list[QueueView]
    handlers: list[QueueView]
    unhandled: str
    management: str | None  # why the management API did not answer; None when it did


async def overview(
    app: Hare, queues: list[str], management: str | None, *, api: bool = True
) -> Overview:
    """The app's `queues` (as `hare status` lists them), read now. `management` is the API's
    base URL (None: no API to ask, e.g. the memory broker)."""
    stats: dict[str, QueueStats] | str = "the broker has no management API"
    if management is not None and api:
        stats = await fetch(management, app.settings.broker_url)
    handlers = {handler.queue: handler.task.name for handler in app.events.handlers()}
    async with connected(app) as transport:
        rows = [await _queue(transport, name, stats, handlers.get(name)) for name in queues]
        unhandled = await _count(transport, UNHANDLED_QUEUE)
    return Overview(
        queues=[row for row in rows if row.handler is None],
        handlers=[row for row in rows if row.handler is not None],
        unhandled=unhandled,
        management=stats if isinstance(stats, str) else None,
    )


async def _queue(
    transport: Transport, name: str, stats: dict[str, QueueStats] | str, handler: str | None
) -> QueueView:
    ready, dead = await _count(transport, name), await _count(transport, dead_queue_name(name))
    known = stats.get(name) if isinstance(stats, dict) else None
    if known is None:
        consumers = "-" if ready == "-" else str(await transport.consumer_count(name))
        return QueueView(name, ready, "?", consumers, "?", "?", dead, handler)
    return QueueView(
        name,
        ready,
        str(known.unacked),
        str(known.consumers),
        f"{known.publish_rate or 0.0:.1f}/s",
        f"{known.deliver_rate or 0.0:.1f}/s",
        dead,
        handler,
    )


async def _count(transport: Transport, queue: str) -> str:
    try:
        return str(await transport.message_count(queue))
    except NotFound:
        return "-"


@dataclass(frozen=True, slots=True)
class ActiveTask:
    id: str
    name: str
    args: str
    started: float | None


@dataclass(frozen=True, slots=True)
class WorkerView:
    name: str
    concurrency: str
    processed: int
    uptime: str
    pool: str
    queues: list[str]
    active: list[ActiveTask] = field(default_factory=list)


async def workers(app: Hare, window: float) -> list[WorkerView]:
    """The workers that answer the pidbox within `window` seconds, by name."""
    async with connected(app) as transport:
        inspect = Control(transport, clock=app.clock).inspect(timeout=window)
        stats, active, queues = await asyncio.gather(
            inspect.stats(), inspect.active(), inspect.active_queues()
        )
    stats, active, queues = stats or {}, active or {}, queues or {}
    return [
        _worker(name, stats.get(name), active.get(name), queues.get(name))
        for name in sorted(set(stats) | set(active) | set(queues))
    ]


def _worker(name: str, stats: Any, active: Any, queues: Any) -> WorkerView:
    stats = stats if isinstance(stats, dict) else {}
    pool = stats.get("pool") if isinstance(stats.get("pool"), dict) else {}
    totals = stats.get("total") if isinstance(stats.get("total"), dict) else {}
    uptime = stats.get("uptime")
    return WorkerView(
        name=name,
        concurrency=str(pool.get("max-concurrency", "?")),
        processed=sum(n for n in totals.values() if isinstance(n, int)),
        uptime=_span(uptime) if isinstance(uptime, int | float) else "?",
        pool=str(pool.get("implementation", "?")),
        queues=[str(q.get("name")) for q in queues or [] if isinstance(q, dict)],
        active=[_active(info) for info in active or [] if isinstance(info, dict)],
    )


def _active(info: dict[str, Any]) -> ActiveTask:
    started = info.get("time_start")
    return ActiveTask(
        id=str(info.get("id", "?")),
        name=str(info.get("name", "?")),
        args=str(info.get("args", "")),
        started=float(started) if isinstance(started, int | float) else None,
    )


def _span(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `4m 10s`, `12s`."""
    whole = int(seconds)
    days, hours, minutes = whole // 86_400, whole % 86_400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {whole % 60}s" if minutes else f"{whole}s"
