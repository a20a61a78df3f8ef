"""A worker's side of remote control: answer Celery's pidbox requests.

`celery inspect ping`, Flower and `app.control.inspect()` (Celery's or hare's) broadcast
requests on `celery.pidbox`; a `ControlServer` consumes its node's queue and replies as a
Celery 5.7 worker does (`hare.control.pidbox` has the wire format). What it reports comes from the
worker through the small `WorkerView` protocol, so this module does not import the worker.

Revocations go to `revocation_stream.Revocations`, which the worker also reads from the stream;
a revoke broadcast by a Celery client (which writes no stream entry) is written to the stream
here, so workers that start later learn it too.

Never crashes on a request: one that cannot be read is logged and dropped, a handler that
fails replies `{"error": ...}` as kombu does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import platform
import resource
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hare._version import __version__
from hare.clock import Clock, SystemClock
from hare.control import pidbox, refusals
from hare.control.pidbox import PERSISTED
from hare.control.revocation import signal_name, stamps_matching, task_ids
from hare.control.revocation_stream import Revocations, publish_revocation
from hare.core.envelope import Delivery, Envelope, Properties
from hare.errors import BrokerError, BrokerUnavailable, ConfigurationError, HareError, TaskRevoked
from hare.results.state import PENDING, RETRY, REVOKED, TaskResult
from hare.transport.base import Consumer, Transport

__all__ = ("ControlServer", "ControlState", "WorkerView")

logger = logging.getLogger("hare.control")

#: Commands whose effect matters even when nobody waits for the reply any more.
_SIDE_EFFECTS = frozenset({"revoke", "hello"})
_RUSAGE = (
    "utime stime maxrss ixrss idrss isrss minflt majflt nswap inblock oublock msgsnd msgrcv "
    "nsignals nvcsw nivcsw"
).split()


class WorkerView(Protocol):
    """What a `ControlServer` asks of the worker it serves (all called on the event loop)."""

    def active(self) -> list[dict[str, Any]]:
        """The running tasks in Celery's `Request.info()` shape: id, name, args, kwargs,
        type, hostname, time_start, acknowledged, delivery_info, worker_pid."""
        ...

    def reserved(self) -> list[dict[str, Any]]:
        """Received tasks that wait for a free slot, same shape as `active`."""
        ...

    def registered(
        self, taskinfoitems: Sequence[str] | None = None, builtins: bool = False
    ) -> list[str]:
        """The task names this worker runs, with `taskinfoitems` fields as Celery lists them."""
        ...

    def stats(self) -> dict[str, Any]:
        """Celery `stats` fields the worker knows: `pool` (`max-concurrency`, ...), `total`
        ({task name: count}), `prefetch_count`, `broker`; merged over pid, uptime, rusage."""
        ...

    def queues(self) -> list[str]:
        """The queues this worker consumes."""
        ...

    def query(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        """`{id: [state, info]}` for the ids this worker holds (Celery's `query_task`)."""
        ...

    def scheduled(self) -> list[dict[str, Any]]:
        """ETA tasks this worker sent to the delay ladder, not due yet (`scheduled`)."""
        ...

    def running_headers(self) -> dict[str, Mapping[str, Any]]:
        """The message headers of the tasks running here, by task id."""
        ...


@dataclass(frozen=True, slots=True)
class ControlState:
    """What a command of the app's own gets first (Celery's `state`)."""

    app: Any
    hostname: str
    worker: WorkerView


class ControlServer:
    """Answers the pidbox requests addressed to `nodename` on behalf of one worker.

    Call `subscribe(transport)` each time the worker (re)connects. `skew` is how many seconds
    past a request's `expires` it is still answered (hosts' clocks differ).
    """

    def __init__(
        self,
        worker: WorkerView,
        revocations: Revocations,
        *,
        nodename: str | None = None,
        namespace: str = pidbox.DEFAULT_NAMESPACE,
        clock: Clock | None = None,
        skew: float = 10.0,
        commands: Mapping[str, Callable[..., Any]] | None = None,
        app: Any = None,
    ) -> None:
        self.nodename = nodename or pidbox.default_nodename(socket.gethostname())
        if "@" not in self.nodename:
            raise ConfigurationError(f"a nodename looks like 'name@host', not {self.nodename!r}")
        self.worker = worker
        self.revocations = revocations
        self.namespace = namespace
        self.lamport = pidbox.LamportClock()
        self._clock = clock or SystemClock()
        self._skew = skew
        # Commands of the app's own (`Hare.control_command`), looked up at each request so
        # that those registered after the worker started are answered too.
        self._commands: Mapping[str, Callable[..., Any]] = commands if commands is not None else {}
        self._state = ControlState(app=app, hostname=self.nodename, worker=worker)
        self._started = self._clock.monotonic()
        self._transport: Transport | None = None
        self._consumer: Consumer | None = None
        self._subscribed = False
        self._background: set[asyncio.Task[Any]] = set()
        self._refused: set[str] = set()
        self._handlers: dict[str, Callable[..., Any]] = {
            "ping": lambda **_: {"ok": "pong"},
            "revoke": self._revoke,
            "revoke_by_stamped_headers": self._revoke_stamped,
            "active": lambda **_: self.worker.active(),
            "reserved": lambda **_: self.worker.reserved(),
            "scheduled": lambda **_: self.worker.scheduled(),
            "registered": lambda taskinfoitems=None, builtins=False, **_: sorted(
                self.worker.registered(taskinfoitems, bool(builtins))
            ),
            "stats": lambda **_: self._stats(),
            "query_task": lambda ids=(), **_: self.worker.query(
                [ids] if isinstance(ids, str) else list(ids or ())
            ),
            "active_queues": lambda **_: [pidbox.queue_as_dict(q) for q in self.worker.queues()],
            "revoked": lambda **_: self.revocations.revoked_ids(),
            "report": lambda **_: {"ok": _report()},
            "clock": lambda **_: {"clock": self.lamport.value},
            "hello": self._hello,
        }

    async def subscribe(self, transport: Transport) -> None:
        """Declare this node's queue as a Celery worker does and consume it."""
        self._transport = transport
        await transport.declare_exchange(pidbox.control_exchange(self.namespace))
        await transport.declare_exchange(pidbox.reply_exchange(self.namespace))
        queue = pidbox.node_queue(self.nodename, self.namespace)
        try:
            await transport.declare_queue(queue)
        except BrokerUnavailable:
            raise
        except BrokerError as exc:
            if self._subscribed:
                # After a reconnect the broker may not have noticed yet that the old connection,
                # which owned the exclusive queue, is gone: the reconnect loop tries again.
                raise BrokerUnavailable(f"{queue.name!r} is still held: {exc}") from exc
            raise ConfigurationError(
                f"cannot declare {queue.name!r} ({exc}): is another worker using the nodename "
                f"{self.nodename!r}? Give each worker its own."
            ) from exc
        self._subscribed = True
        await transport.bind(pidbox.node_binding(self.nodename, self.namespace))
        self._consumer = await transport.consume(queue.name, self._on_request, prefetch=32)

    async def close(self) -> None:
        """Stop consuming, and wait for stream writes still under way."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.close()
        if self._background:
            await asyncio.wait(self._background)

    # -- requests ----------------------------------------------------------------------------

    async def _on_request(self, delivery: Delivery) -> None:
        try:
            await self._serve(delivery)
        except Exception:
            logger.exception("control request failed on %s", self.nodename)
        finally:
            await self._settle(delivery)

    async def _serve(self, delivery: Delivery) -> None:
        properties = delivery.properties
        try:
            request = pidbox.decode_request(
                delivery.body, properties.headers, properties.content_type
            )
        except HareError as exc:
            logger.warning("dropping a control request: %s", exc)
            return
        self.lamport.adjust(request.clock)
        if not pidbox.is_addressed_to(request, self.nodename):
            return
        expired = pidbox.is_expired(request, self._clock.time(), tolerance=self._skew)
        if expired and request.method not in _SIDE_EFFECTS:
            logger.debug("control request %r expired before it came", request.method)
            return
        reply = self.dispatch(request)
        if inspect.isawaitable(reply):  # a command with I/O to finish before it replies
            reply = await reply
        if request.reply_to is not None and not expired:
            await self._reply(request, reply)

    def dispatch(self, request: pidbox.Request) -> Any:
        """Run a request's command; its reply (`{"error": ...}` when it fails)."""
        # The app's own commands come first: as in Celery, one may stand in for a built-in.
        own = self._commands.get(request.method)
        handler = self._handlers.get(request.method) if own is None else None
        if handler is None and own is None:
            refusal = refusals.answer(request.method, self._state.app, self.nodename, self._refused)
            if refusal is not None:  # Flower's buttons: Celery's error shape, with the reason
                return refusal
            known = ", ".join(sorted({*self._handlers, *self._commands}))
            return {"error": f"hare does not know the command {request.method!r} ({known})"}
        try:
            if own is not None:
                return own(self._state, **request.arguments)
            assert handler is not None
            if request.method == "revoke":
                return self._revoke(**request.arguments, _everyone=request.destination is None)
            return handler(**request.arguments)
        except Exception as exc:
            logger.exception("control command %r failed", request.method)
            return {"error": repr(exc)}

    async def _reply(self, request: pidbox.Request, reply: Any) -> None:
        assert request.reply_to is not None
        envelope = Envelope(
            exchange=request.reply_to.exchange,
            routing_key=request.reply_to.routing_key,
            body=pidbox.encode_reply(self.nodename, reply),
            properties=Properties(
                content_type=pidbox.CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=1,
                headers={"ticket": request.ticket, "clock": self.lamport.forward()},
            ),
        )
        transport = self._transport
        if transport is None:
            return
        try:
            # Not mandatory: a client that gave up has deleted its queue (kombu does the same).
            await transport.publish(envelope, mandatory=False)
        except BrokerError as exc:
            logger.warning("could not reply to %r: %s", request.method, exc)

    async def _settle(self, delivery: Delivery) -> None:
        transport = self._transport
        if transport is not None:
            try:
                await transport.ack(delivery)
            except BrokerError as exc:
                logger.debug("could not ack a control request: %s", exc)

    # -- commands ----------------------------------------------------------------------------

    def _revoke(
        self,
        task_id: Any = None,
        terminate: bool = False,
        signal: Any = None,
        _everyone: bool = False,
        **kwargs: Any,
    ) -> dict[str, str] | Awaitable[dict[str, str]]:
        ids = task_ids(task_id if task_id is not None else ())
        name = signal_name(signal)
        logger.info("tasks flagged as revoked: %s", ", ".join(ids))  # Celery's line, too
        stopped = self.revocations.apply(ids, terminate=bool(terminate), signal=name)
        if _everyone and not kwargs.get(PERSISTED):
            # From a Celery client: no stream entry exists, so write one for later workers.
            self._spawn(self._persist(ids, bool(terminate), name))
        if terminate:
            reply = {"ok": "terminate: " + (", ".join(stopped) or "tasks unknown")}
        else:
            reply = {"ok": f"tasks {set(ids)!r} flagged as revoked"}
        results = getattr(self._state.app, "results", None)
        if results is None:
            return reply
        running = set(self.worker.running_headers())
        return self._mark_revoked(results, [i for i in ids if i not in running], reply)

    async def _mark_revoked(
        self, results: Any, ids: Sequence[str], reply: dict[str, str]
    ) -> dict[str, str]:
        """Celery 5.7's worker: a revoked task no one started is REVOKED in the result store
        at once (one started elsewhere, or finished, keeps its state)."""
        for task_id in ids:
            try:
                found = await results.alookup(task_id)
                if found is not None and found.state not in _NOT_STARTED:
                    continue
                revoked = TaskResult(task_id=task_id, state=REVOKED, value=TaskRevoked("revoked"))
                await results.store(revoked, None)
            except HareError as exc:
                logger.warning(
                    "could not mark task %s revoked in the result store: %s", task_id, exc
                )
        return reply

    def _revoke_stamped(
        self, headers: Any = None, terminate: bool = False, signal: Any = None, **_: Any
    ) -> dict[str, str]:
        """Celery's `revoke_by_stamped_headers`: messages stamped so are not started; with
        `terminate`, those running with such a stamp are stopped."""
        given = self.revocations.stamps.add(headers or {})
        logger.info("stamps flagged as revoked: %s", given)
        if not terminate:
            return {"ok": f"headers {headers} flagged as revoked, but not terminated"}
        matched: dict[str, set[Any]] = {}
        stop = []
        for task_id, message_headers in self.worker.running_headers().items():
            match = stamps_matching(message_headers, given)
            if match is not None:
                stop.append(task_id)
                for name, value in match.items():
                    matched.setdefault(name, set()).add(value)
        if stop:  # their ids revoked too: they are not to run again either
            self.revocations.apply(stop, terminate=True, signal=signal_name(signal))
        if not matched:
            return {"ok": f"headers {headers} were not terminated"}
        return {"ok": f"headers {matched} revoked"}

    async def _persist(self, ids: tuple[str, ...], terminate: bool, signal: str) -> None:
        transport = self._transport
        if transport is None:
            return
        try:
            await publish_revocation(
                transport,
                ids,
                terminate=terminate,
                signal=signal,
                ttl=self.revocations.ttl,
                clock=self._clock,
            )
        except HareError as exc:
            logger.warning("could not write the revocation of %s to the stream: %s", ids, exc)

    def _hello(self, from_node: str = "", revoked: Any = None, **_: Any) -> Any:
        # Celery's mingle: a starting Celery worker sends its revoked ids and takes ours.
        if from_node == self.nodename:
            return None
        if isinstance(revoked, dict):  # Celery 5's LimitedSet as sent: {id: [stamp, seq, id]}
            revoked = list(revoked)
        if isinstance(revoked, list) and all(isinstance(i, str) and i for i in revoked):
            if revoked:
                self.revocations.apply(revoked)
        return {"revoked": self.revocations.revoked_ids(), "clock": self.lamport.forward()}

    def _stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats: dict[str, Any] = {
            "pid": os.getpid(),
            "clock": str(self.lamport.value),
            "uptime": round(self._clock.monotonic() - self._started),
            "rusage": {key: getattr(usage, "ru_" + key) for key in _RUSAGE},
            "total": {},
        }
        stats.update(self.worker.stats())
        return stats

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


#: States of a task no worker has started: a revoke records REVOKED over them.
_NOT_STARTED = frozenset({PENDING, "RECEIVED", RETRY, "REJECTED"})


def _report() -> str:
    return (
        f"software -> hare:{__version__} py:{platform.python_version()}\n"
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"imp:{sys.implementation.name}\n"
    )
