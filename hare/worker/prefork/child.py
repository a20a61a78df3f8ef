"""The child side of the prefork pool: one call at a time, in the process's main thread.

A child loads the app once (inherited with `fork`, imported from its path otherwise), says it
is ready, then runs the calls its parent sends, one after the other, each with its context and
signals (`hare.worker.call.TaskCall`), and sends back the verdict. It never touches the
broker: what its tasks publish goes through the parent (`hare.worker.prefork.forwarding`).

Signals from the parent reach the task in the main thread, so they interrupt blocking calls
(`time.sleep`, a socket read) as in Celery's prefork pool:

* `SIGUSR1`, the soft time limit: `SoftTimeLimitExceeded` is raised in the task;
* `SIGUSR2`, revoke(terminate=True): `TaskRevoked` is raised in the task.

Both are ignored between tasks. `SIGINT` and `SIGTERM` are ignored: a Ctrl-C reaches the whole
process group and systemd signals every process of a unit, but the parent decides when a
running task stops (its drain). The child dies with its parent (`PR_SET_PDEATHSIG`), so no
task runs on after the worker that would settle it is gone.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import pickle
import random
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from hare import signals
from hare.app import Hare, as_hare
from hare.core.outcome import Failed, RetryRequested
from hare.core.retry import DeadLetterAs
from hare.errors import (
    ConfigurationError,
    HareError,
    RemoteError,
    SoftTimeLimitExceeded,
    TaskNotRegistered,
    TaskRevoked,
)
from hare.worker.call import TaskCall
from hare.worker.prefork.forwarding import ForwardingTransport, Relay, round_trips
from hare.worker.request import Request
from hare.worker.verdict import Verdict

__all__ = ("SOFT_LIMIT_SIGNAL", "TERMINATE_SIGNAL", "ChildLimits", "Job", "child_main")

SOFT_LIMIT_SIGNAL = signal.SIGUSR1
TERMINATE_SIGNAL = signal.SIGUSR2

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Job:
    """One call for a child: the task by name, its context, its arguments."""

    task: str
    request: Request
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    soft: float | None


@dataclass(frozen=True, slots=True)
class ChildLimits:
    """When a child retires, between tasks: after `max_tasks`, or above `max_memory_kib`;
    and how it logs when it does not inherit its parent's logging (spawn, forkserver)."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None
    log_level: int = logging.WARNING
    log_format: str | None = None


class _Running:
    """The call in progress, which the signal handlers interrupt; `None` between tasks."""

    call: TaskCall | None = None
    soft: float | None = None


_running = _Running()


def child_main(
    channel: Connection,
    relay: Connection,
    source: Hare | str,
    limits: ChildLimits,
    inherited: Sequence[int] = (),
) -> None:  # pragma: no cover - runs in the child process (tests/worker/test_prefork*.py)
    """The child's life: set up, say ready (or why not), run jobs until told to stop."""
    _set_up_process(inherited)
    root = logging.getLogger()
    if not root.handlers:  # a fresh interpreter: log as the worker process does
        logging.basicConfig(
            level=limits.log_level, format=limits.log_format or logging.BASIC_FORMAT
        )
    try:
        app = _load(source)
        # Every connection the app would open goes through the parent; nothing here
        # consumes rpc replies (nothing in a task waits for one).
        app.connections.forward_to(lambda: ForwardingTransport(Relay(relay)))
        if app.results is not None:
            app.results.detach_replies()
        signals.worker_process_init.send(sender=None)
    except BaseException:
        channel.send_bytes(pickle.dumps(("failed", traceback.format_exc())))
        return
    base_data = _data_kib()
    if limits.max_memory_kib is not None and base_data is not None:
        _cap_growth(base_data + limits.max_memory_kib)
    channel.send_bytes(pickle.dumps(("ready", os.getpid())))
    rng = random.Random()
    ran = 0
    while True:
        try:
            job = pickle.loads(channel.recv_bytes())
        except (EOFError, OSError):
            return  # the parent has gone
        if job is None:
            return
        verdict = run_job(app, job, rng)
        ran += 1
        retire = _retirement(limits, ran, verdict)
        channel.send_bytes(encode_reply(verdict, retire))
        if retire is not None:
            return


def run_job(app: Hare, job: Job, rng: random.Random) -> Verdict:
    """Run one job as the worker process would run it in a thread; its verdict."""
    task = app.tasks.get(job.task)
    if task is None:
        problem = TaskNotRegistered(f"task {job.task!r} is not registered in the pool's child")
        return Verdict(Failed(problem, ""), DeadLetterAs("failed"))
    call = TaskCall(task, job.request, rng)
    fn = task.fn

    def interruptible(*args: Any, **kwargs: Any) -> Any:
        _running.call, _running.soft = call, job.soft
        try:
            return fn(*args, **kwargs)
        finally:
            _running.call = None

    verdict = call.wrap(interruptible)(*job.args, **job.kwargs)
    assert verdict is not None  # nothing else ends a call in a child
    return verdict  # type: ignore[no-any-return]


def encode_reply(verdict: Verdict, retire: str | None) -> bytes:
    """The verdict as the parent can read it: an exception whose class does not survive
    pickling travels as a `RemoteError` naming it (as results record it); a return value
    that cannot be pickled fails the task with the reason."""
    outcome = verdict.outcome
    exc = getattr(outcome, "exception", None)
    if isinstance(exc, BaseException) and not round_trips(exc):
        portable: Any = replace(outcome, exception=_stand_in(exc))  # type: ignore[arg-type]
        verdict = verdict._replace(outcome=portable)
    try:
        return pickle.dumps(("done", verdict, retire), pickle.HIGHEST_PROTOCOL)
    except Exception as problem:
        error = HareError(
            f"the task's result cannot be sent from the pool's child process ({problem}); "
            "return values must pickle (and serialize for the result backend)"
        )
        failed = Verdict(Failed(error, ""), DeadLetterAs("failed"))
        return pickle.dumps(("done", failed, retire), pickle.HIGHEST_PROTOCOL)


def _stand_in(exc: BaseException) -> RemoteError:
    kind = type(exc)
    return RemoteError(kind.__qualname__, kind.__module__, [str(exc)])


def _retirement(limits: ChildLimits, ran: int, verdict: Verdict) -> str | None:
    """Why this child should be replaced now, between tasks; `None` to carry on."""
    if limits.max_tasks is not None and ran >= limits.max_tasks:
        return f"ran {ran} tasks (max_tasks_per_child)"
    outcome = verdict.outcome
    if isinstance(outcome, Failed | RetryRequested) and isinstance(outcome.exception, MemoryError):
        return "its task ran out of memory"
    if limits.max_memory_kib is not None:
        resident = _resident_kib()
        if resident is not None and resident > limits.max_memory_kib:
            return (
                f"resident memory {resident} KiB > {limits.max_memory_kib} KiB "
                "(max_memory_per_child)"
            )
    return None


# -- the process ------------------------------------------------------------------------------


def _set_up_process(inherited: Sequence[int]) -> None:  # pragma: no cover - in the child
    """Signals, the parent's fds that a forked child holds and must not, death with the
    parent."""
    try:
        signal.set_wakeup_fd(-1)  # a forked child must not wake the parent's event loop
    except ValueError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(SOFT_LIMIT_SIGNAL, _soft_limit)
    signal.signal(TERMINATE_SIGNAL, _terminate)
    for fd in inherited:
        try:
            os.close(fd)
        except OSError:
            pass
    if sys.platform == "linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _soft_limit(signum: int, frame: object) -> None:
    if _running.call is not None:
        limit = f" ({_running.soft}s)" if _running.soft is not None else ""
        raise SoftTimeLimitExceeded(f"soft time limit{limit} exceeded")


def _terminate(signum: int, frame: object) -> None:
    call = _running.call
    if call is not None:
        call.terminating = call.terminating or "SIGTERM"
        raise TaskRevoked(f"terminated ({call.terminating})")


def _load(source: Hare | str) -> Hare:
    """The app: inherited (fork), or imported from "module:attribute"."""
    if isinstance(source, Hare):
        return source
    module_name, _, attr = source.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        target = getattr(target, part)
    app = as_hare(target)
    if app is None:
        raise ConfigurationError(f"{source} is not a hare app")
    return app


def _read_status(field: str) -> int | None:
    """A `kB` figure of /proc/self/status (Linux), or `None`."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _data_kib() -> int | None:
    return _read_status("VmData")


def _resident_kib() -> int | None:
    resident = _read_status("VmRSS")
    if resident is not None:
        return resident
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cap_growth(kib: int) -> None:
    """Let the data segment grow to `kib` KiB and no further: an allocation past it raises
    `MemoryError` in the task, instead of growing the child until the OOM killer ends it."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        wanted = kib * 1024
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass
