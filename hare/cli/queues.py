"""Which queues an app uses: what a worker started without `-Q` consumes, what `status` shows.

A task sent without `queue=` goes where `Hare.route` says (the app's router, e.g. Celery's
`task_routes`, then the task's own `queue=`, then the default queue); a schedule publishes to
its entry's queue. A worker that consumed only the default queue would leave the others'
messages waiting forever, so without `-Q` it consumes all of them, and every event handler's
queue (`--no-events` leaves those out; with `-Q`, `--events` adds them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hare.app import Hare
from hare.core.priority import consumed_queues

__all__ = ("app_queues", "with_bands", "worker_queues")

logger = logging.getLogger("hare.cli")


def app_queues(
    app: Hare, proposed: Sequence[str] | None = None, *, events: bool = True
) -> list[str]:
    """The queues of `app`, in order and once each: `proposed` (the queues the app object names,
    e.g. Celery's `task_queues`) or else the default queue, then the queue each registered task
    is routed to, then each periodic schedule's queue, then (with `events`) each event
    handler's queue (`hare.events`; a handler's task goes nowhere else)."""
    queues = list(proposed or (app.settings.default_queue,))
    handlers = {handler.task.name for handler in app.events.handlers()}
    for name in sorted(app.tasks):
        if name in handlers:
            continue
        try:
            queues.append(app.route(name))
        except Exception as exc:  # a router that cannot route a call without arguments
            logger.debug("no queue for task %s without arguments: %s", name, exc)
    queues.extend(entry.queue for _, entry in sorted(app.periodics.items()))
    if events:
        queues.extend(app.events.queues())
    return list(dict.fromkeys(queues))


def worker_queues(
    app: Hare, named: Sequence[str], proposed: Sequence[str] | None, handlers: bool | None
) -> list[str]:
    """What `hare worker` consumes: the `-Q` queues (`named`), plus every event handler's queue
    with `--event-handlers`; without `-Q` the app's queues, event handlers' included unless
    `--no-event-handlers` (`handlers` False)."""
    if named:
        return list(dict.fromkeys([*named, *(app.events.queues() if handlers else ())]))
    return app_queues(app, proposed, events=handlers is not False)


def with_bands(app: Hare, queues: Sequence[str]) -> list[str]:
    """`queues` each followed by its priority band (`<queue>.high`), as a worker consumes them
    when the app uses bands (`hare.core.priority`); what `status` and the dashboard show."""
    return list(consumed_queues(queues, app.settings.bands, app.events.queues()))
