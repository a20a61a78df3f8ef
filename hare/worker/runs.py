"""The runs of one worker by run key, so that a message delivered again is not run again.

A connection cut loses the acks of the deliveries whose tasks are running or have just
finished: the broker delivers them again, often to the same worker while the first run still
goes on; and a producer whose confirm was lost publishes its message again. Every such copy
carries the same *run key* (`run_key`). A retry (`retries` + 1), a replayed dead letter
(`hare-replays` + 1), a task's replacement (Celery's `Task.replace`: same id, another task,
one more nesting level) and the same id sent again in another workflow have keys of their
own and run.

A worker registers a key before it runs the task and keeps what the run ended as, for the
last `RECENT_RUNS` runs. A copy that arrives meanwhile waits for the first run to end, then
is settled by its outcome (`hare.worker.delivery`): acked when the first run's settlement had
published what it needed (a retry, a dead letter, what follows it in a workflow), or settled
by the same decision when it had not. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from hare.core.headers import REPLAYS_HEADER
from hare.core.message import Message
from hare.core.outcome import Outcome
from hare.core.retry import Decision
from hare.task import Task

__all__ = ("RECENT_RUNS", "SETTLED", "Run", "RunKey", "Runs", "remember", "run_key")

#: How many finished runs a worker remembers. At 1,000 tasks a second that is ten seconds of
#: history, far more than a reconnect and a publisher's retry take.
RECENT_RUNS = 10_000

#: What makes one delivery a copy of another: the task id and name, retries, replays,
#: replacement nesting, and a digest of where the message stands (group, parent, root) and
#: of its body. A copy (a redelivery, a producer's re-sent publish) is the same message to
#: the byte; the same task id sent again in another workflow (another group or parent) or
#: with other arguments is a new run.
RunKey = tuple[str, str, int, int, int, int]

K = TypeVar("K")
V = TypeVar("V")


def run_key(headers: Mapping[str, Any], body: bytes = b"", queue: str = "") -> RunKey | None:
    """The run key of a message from its raw headers and body, delivered from `queue`; `None`
    without a task id. The same message in two queues is two runs: an event's copies in its
    handlers' queues (`hare.events`) are byte for byte the same."""
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id:
        return None
    name = headers.get("task")
    if isinstance(name, str):
        name = sys.intern(name)  # one string per task name in the remembered keys
    place = (headers.get("group"), headers.get("parent_id"), headers.get("root_id"))
    return (
        task_id,
        name if isinstance(name, str) else "",
        _count(headers.get("retries")),
        _count(headers.get(REPLAYS_HEADER)),
        _count(headers.get("replaced_task_nesting")),
        hash((repr(place), body, queue)),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(slots=True, eq=False)
class Run:
    """One run of a task in this worker, from before it started until it was settled."""

    key: RunKey
    #: Whether the delivery that made this run is done with (settled or not); `wait_over`
    #: waits for it (its event is made only for a copy that waits: most runs have none).
    is_over: bool = False
    _over: asyncio.Event | None = None
    #: What ran and how it ended: set when the task has run.
    task: Task[Any, Any] | None = None
    message: Message | None = None
    outcome: Outcome | None = None
    decision: Decision | None = None
    #: The result is stored and what follows the task (callbacks, a chain) is sent.
    recorded: bool = False
    #: Everything the settlement publishes (a retry, a dead letter) is confirmed: only the
    #: ack of the delivery was left, and a copy needs only an ack.
    settled: bool = False
    #: The task ran (whatever its outcome).
    ran: bool = False

    def ran_as(
        self, task: Task[Any, Any], message: Message, outcome: Outcome, decision: Decision
    ) -> None:
        self.task, self.message, self.outcome, self.decision = task, message, outcome, decision
        self.ran = True

    async def wait_over(self) -> None:
        """Return once the delivery that made this run is done with."""
        if self.is_over:
            return
        if self._over is None:
            self._over = asyncio.Event()
        await self._over.wait()

    def finish(self) -> None:
        """The delivery that made this run is done with: wake the copies waiting for it."""
        self.is_over = True
        if self._over is not None:
            self._over.set()

    def mark_settled(self) -> None:
        self.settled = True
        # A copy of a settled run needs only an ack: let go of the message and the outcome
        # (its arguments, its return value), which `RECENT_RUNS` runs would otherwise keep.
        self.task = self.message = self.outcome = self.decision = None


#: What `Runs` keeps of a run whose delivery was settled: shared by every such run.
SETTLED = Run(("", "", 0, 0, 0, 0), is_over=True, settled=True, ran=True)


class Runs:
    """The runs under way in one worker, and the last `size` that ended."""

    def __init__(self, size: int = RECENT_RUNS) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self._size = size
        self._current: dict[RunKey, Run] = {}
        self._recent: OrderedDict[RunKey, Run] = OrderedDict()

    def get(self, key: RunKey) -> Run | None:
        """The run of `key` under way or among the recent ones, if any."""
        return self._current.get(key) or self._recent.get(key)

    def begin(self, key: RunKey) -> Run:
        """Register a run of `key` about to start (the caller checked `get` first)."""
        run = Run(key)
        self._current[key] = run
        return run

    def end(self, run: Run) -> None:
        """The delivery of `run` is done with: keep the run if its task ran, else forget it."""
        if self._current.get(run.key) is run:
            del self._current[run.key]
        if run.ran and self._size:
            # A settled run is remembered by its key alone (all a copy of it needs is an
            # ack): 10,000 Run objects would be ~1 MB of a worker's RSS.
            self._recent[run.key] = SETTLED if run.settled else run
            self._recent.move_to_end(run.key)
            while len(self._recent) > self._size:
                self._recent.popitem(last=False)
        run.finish()

    def __len__(self) -> int:
        return len(self._current) + len(self._recent)


def remember(table: dict[K, V], key: K, value: V) -> None:
    """Add to an insertion-ordered table bounded at `RECENT_RUNS`: the oldest go first."""
    table[key] = value
    while len(table) > RECENT_RUNS:
        del table[next(iter(table))]
