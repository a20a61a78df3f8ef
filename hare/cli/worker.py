"""`hare worker`: run an app's tasks until a signal drains it; `--processes N` supervises N.

Options are checked before anything starts (a bad value is a usage error, exit 2); Celery's
worker flags are handled by `hare.cli.celery_flags`, the pool (`-P`) by
`hare.cli.pool_options`. Without `-Q` the worker consumes every queue the app's tasks and
schedules use (`hare.cli.queues`). It says at start which pool runs its sync tasks and, once
connected, which broker, vhost and queues. With `--processes N` each log line names the
process that wrote it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from hare.cli.celery_flags import add_celery_flags, apply_celery_flags
from hare.cli.common import (
    EXIT_BROKER,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_app_argument,
    app_path,
    as_hare,
    describe_broker,
    fail,
    locate_object,
    not_an_app,
    seconds,
    whole_number,
    worker_defaults,
)
from hare.cli.pidfile import pidfile
from hare.cli.pool_options import add_pool_options, check_pool, describe_pool, pool_options
from hare.cli.queues import worker_queues
from hare.control.pidbox import expand_nodename
from hare.errors import BrokerUnavailable, ConfigurationError, HareError
from hare.worker.health import Health, HealthServer, worker_health, write_status
from hare.worker.loops import LOOPS, LoopFactory, loop_factory
from hare.worker.loops import run as run_on_loop
from hare.worker.metering import worker_metrics
from hare.worker.supervisor import PROCESS_INDEX_ENV, STATUS_ENV, Supervisor, child_command
from hare.worker.worker import Worker

__all__ = ("add_worker_parser", "run_worker")

logger = logging.getLogger("hare.cli")
#: Libraries whose DEBUG and INFO lines `-l debug` leaves out.
THIRD_PARTY_LOGGERS = ("aiormq", "pamqp")

LEVELS = {"warn": "warning", "fatal": "critical"}

_DESCRIPTION = """\
Run the app's tasks until SIGTERM or Ctrl-C, which drain it: running tasks get
--drain-timeout seconds to finish, the rest go back to the broker.

Without -Q the worker consumes the default queue, the queue of each task the app
registers (its queue= or the app's routes), each schedule's queue and each event
handler's queue (hare.ev.APP.HANDLER; see --event-handlers). Every worker
also keeps the app's periodic schedules going: there is no beat process.

Async tasks run on the worker's event loop, sync tasks in its pool (-P): -c prefork
child processes (a Celery app's default, as in Celery), threads (a hare app's default)
or solo, one at a time."""

_EPILOG = """\
examples:
  hare worker shop.tasks:app
  hare worker -A proj -l INFO -c 32            # a Celery project (hare_compat)
  hare worker -A proj -P prefork -c 8 --max-tasks-per-child 100
  hare worker shop.tasks:app -Q emails,default --processes 4 --health-port 8080

exit codes: 0 clean stop; 1 the worker failed; 2 bad usage or an app that cannot be
loaded; 3 the broker could not be reached at start."""


def _level(text: str) -> str:
    level = text.strip().lower()
    return LEVELS.get(level, level)


def add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`hare worker APP [options]`."""
    parser = commands.add_parser(
        "worker",
        help="run the app's tasks (the Celery worker's counterpart)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_app_argument(parser)
    _add_options(parser)
    parser.add_argument(
        "--event-handlers",
        dest="handlers",
        action=argparse.BooleanOptionalAction,
        help="consume every event handler's queue (default: yes without -Q, no with -Q)",
    )
    add_pool_options(parser)
    add_celery_flags(parser)


def _add_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "-Q",
        "--queues",
        metavar="QUEUES",
        help="comma-separated queues to consume (default: the app's, see above)",
    )
    add(
        "-c",
        "--concurrency",
        type=whole_number(1),
        metavar="N",
        help="tasks run at once (with -P prefork: child processes), and the prefetch of each "
        "queue (default: the app's, else a child per CPU for prefork, 16 for threads)",
    )
    add(
        "-n",
        "--hostname",
        help="this worker's node name, as Celery's -n: %%h (host), %%n (its first label), "
        "%%d (domain), %%i (process index); default hare.<pid>@<host>",
    )
    add(
        "--processes",
        type=whole_number(1),
        metavar="N",
        default=1,
        help="independent worker processes, supervised and restarted if they die, each with "
        "its own pool (default 1)",
    )
    add(
        "--health-port",
        type=whole_number(1, 65535),
        metavar="PORT",
        help="serve /livez, /readyz (Kubernetes probes) and /metrics (Prometheus) here",
    )
    add(
        "--drain-timeout",
        type=seconds(),
        default=30.0,
        metavar="S",
        help="seconds running tasks get to finish on SIGTERM before they are requeued (30)",
    )
    add(
        "--no-startup-retry",
        dest="startup_retry",
        action="store_false",
        default=None,
        help="exit 3 at once if the broker does not answer at start (default: wait for it)",
    )
    add("--loop", default="auto", choices=LOOPS, help="event loop: auto (uvloop if installed)")
    add(
        "-l",
        "--loglevel",
        type=_level,
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        metavar="LEVEL",
        help="debug, info (the default), warning, error or critical, in any case",
    )


def run_worker(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run the worker `args` describe; the exit code."""
    try:
        path = app_path(args)
        check_pool(args)
        notes = apply_celery_flags(args)
        _configure_logging(args)
        if args.health_port is not None:
            _check_port(args.health_port)
    except UsageError as exc:
        return fail("worker", exc, EXIT_USAGE)
    if os.environ.get(PROCESS_INDEX_ENV) is None:  # said once, by the supervisor
        for note in notes:
            print(f"hare worker: {note}", file=sys.stderr)
    try:
        with pidfile(args.pidfile):
            return _start(args, path, argv)
    except UsageError as exc:
        return fail("worker", exc, EXIT_USAGE)


def _start(args: argparse.Namespace, path: str, argv: Sequence[str] | None) -> int:
    try:
        worker = _worker(args, path)
        loop_name, factory = loop_factory(args.loop)
    except ConfigurationError as exc:
        return fail("", exc, EXIT_USAGE)
    if args.processes > 1:
        given = sys.argv[1:] if argv is None else list(argv)
        command = child_command(_without_pidfile(given))
        return asyncio.run(Supervisor(command, args.processes, health_port=args.health_port).run())
    logger.info(
        "event loop: %s; pool: %s", loop_name, describe_pool(worker.pool, worker.concurrency)
    )
    return _run_here(worker, args.health_port, factory)


def _worker(args: argparse.Namespace, path: str) -> Worker:
    """Load the app (and `-I` modules) and make the worker the options describe, its own
    or else the app's (`worker_defaults`)."""
    obj, found = locate_object(path)
    for module in _names(args.include):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"-I {module}: {exc}") from exc
    app = as_hare(obj) or not_an_app(path)
    if args.task_events:  # -E: Celery's events, as the app's worker_send_task_events
        app.settings = app.settings.with_changes(worker_send_task_events=True)
    metrics = worker_metrics(app, args.health_port if args.processes == 1 else None)
    defaults = worker_defaults(obj)
    queues = worker_queues(app, _names(args.queues), defaults.get("queues"), args.handlers)
    excluded = set(_names(args.exclude_queues))
    queues = [queue for queue in queues if queue not in excluded]
    if not queues:
        raise ConfigurationError("-X leaves no queue to consume")
    worker = Worker(
        app,
        queues=queues,
        **pool_options(args, defaults),
        app_path=found,
        transport=None if metrics is None else metrics.transport,
        drain_timeout=args.drain_timeout,
        nodename=_nodename(args.hostname),
        retry_on_startup=(
            args.startup_retry
            if args.startup_retry is not None
            else defaults.get("retry_on_startup", True)
        ),
    )
    worker.on_state_change.append(_announce(describe_broker(app.settings.broker_url)))
    return worker if metrics is None else metrics.install(worker)


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()] if text else []


def _announce(broker: str) -> Callable[[Worker], None]:
    """A state listener that says once, when the worker first consumes, where it is."""
    said = False

    def listener(worker: Worker) -> None:
        nonlocal said
        if worker.state == "consuming" and not said:
            said = True
            logger.info(
                "%s connected to %s; consuming %s",
                worker.nodename,
                broker,
                ", ".join(worker.queues),
            )

    return listener


def _run_here(worker: Worker, health_port: int | None, factory: LoopFactory | None) -> int:
    try:
        run_on_loop(_run_worker(worker, health_port), factory)
    except UsageError as exc:
        return fail("worker", exc, EXIT_USAGE)
    except BrokerUnavailable as exc:
        return fail("", exc, EXIT_BROKER)
    except HareError as exc:
        return fail("", f"worker failed: {exc}", EXIT_FAILED)
    _exit_past_stuck_threads(worker, EXIT_OK)
    return EXIT_OK


def _configure_logging(args: argparse.Namespace) -> None:
    """Log at `-l`'s level to stderr (or `-f`'s file); with `--processes` each line says
    which process wrote it: `[supervisor]` or `[worker <index>]`."""
    index = os.environ.get(PROCESS_INDEX_ENV)
    if index is not None:
        tag = f" [worker {index}]"
    else:
        tag = " [supervisor]" if args.processes > 1 else ""
    try:
        logging.basicConfig(
            level=getattr(logging, args.loglevel.upper()),
            format=f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s",
            filename=args.logfile,
        )
    except OSError as exc:
        raise UsageError(f"--logfile {args.logfile}: {exc.strerror}") from None
    # `-l debug` is for hare's own lines: aiormq's frame dumps stay out unless a logging
    # configuration of the user's own sets those loggers lower.
    for name in THIRD_PARTY_LOGGERS:
        third = logging.getLogger(name)
        if third.level == logging.NOTSET:
            third.setLevel(max(logging.WARNING, logging.getLogger().level))


def _check_port(port: int) -> None:
    """Refuse a health port that is taken now, before anything starts (the server binds it
    again later, on the event loop)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            raise UsageError(_port_problem(port, exc)) from None


def _port_problem(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"--health-port {port}: the port is in use by another process"
    return f"--health-port {port}: cannot listen there ({exc.strerror})"


def _without_pidfile(argv: Sequence[str]) -> list[str]:
    """`argv` minus `--pidfile FILE`: the supervisor holds the file, not its children."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--pidfile":
            skip = True
        elif not arg.startswith("--pidfile="):
            out.append(arg)
    return out


def _nodename(template: str | None) -> str | None:
    """The node name `-n` asks for (a `--processes` child adds its index), or None."""
    if not template:
        return None
    index = os.environ.get(PROCESS_INDEX_ENV)
    return expand_nodename(template, socket.gethostname(), int(index) if index else None)


def _exit_past_stuck_threads(worker: Worker, code: int) -> None:
    """Exit now if a sync task still runs in a thread after the drain.

    Its delivery was already requeued (or, past its hard time limit, settled); a thread cannot
    be killed, and the interpreter would otherwise wait for it at exit, hanging the deploy.
    """
    if worker.busy_threads:
        logger.warning("exiting with %d sync task(s) still running in threads", worker.busy_threads)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def _run_worker(worker: Worker, health_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    status_file = os.environ.get(STATUS_ENV)
    if status_file:  # a child of `--processes`: report to the supervisor
        worker.on_state_change.append(lambda w: write_status(status_file, _health(w)))
    server = HealthServer(health_port, lambda: _health(worker)) if health_port else None
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.warning(
                "%s received: draining (a second signal stops at once)", signal.Signals(signum).name
            )
            worker.stop()
        else:
            logger.warning("second signal: stopping at once")
            os._exit(EXIT_FAILED)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if server is not None and health_port is not None:
        try:
            await server.start()
        except OSError as exc:  # taken between the check and now
            raise UsageError(_port_problem(health_port, exc)) from None
    try:
        await worker.run()
    finally:
        if server is not None:
            await server.close()


def _health(worker: Worker) -> Health:
    since = worker.disconnected_since
    now = worker.app.clock.monotonic()
    return worker_health(worker.state, None if since is None else now - since)
