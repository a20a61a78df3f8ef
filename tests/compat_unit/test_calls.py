"""Every public callable of hare_compat's Celery API, called as Celery's docs call it.

Each constructor, function and method that `conformance.walk()` pairs with Celery's is
called once with only its required arguments (Celery's defaults for the rest), on the
memory transport: it must work or raise `NotSupportedError` naming what it refuses. Any
other exception fails, which is the class of `AsyncResult(id).revoke()` raising TypeError
because a default (`timeout=None`) reached hare unconverted.

Calls that need a result find one stored (so `get()` returns at once); `inspect()` is made
with a short timeout. The few calls that raise in Celery too (`reraise`, `Task.retry`
outside a worker, abstract schedule methods...) are in `RAISES`, each checked against
Celery itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hare.errors import NotSupportedError
from hare.results.state import TaskResult
from hare.signals import Signal
from hare_compat import Celery, Task, canvas, exceptions, schedules
from hare_compat.app.conf import Settings
from hare_compat.result import EagerResult
from hare_compat.signals import NeverSent
from hare_compat.utils.local import Proxy
from tests.compat_unit import conformance
from tests.compat_unit.conformance import MISSING, Pair

celery = pytest.importorskip("celery")
celery_schedules = pytest.importorskip("celery.schedules")

OK = "calls-ok"  # a task id whose SUCCESS result is stored
OTHER = "calls-other"
WHEN = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


class Stamps(canvas.StampingVisitor):
    """A visitor as users write one: stamps for each signature."""

    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return {"mark": 1}


@dataclass
class Ctx:
    """One app with a task and stored results, and the objects whose methods are called."""

    app: Celery
    echo: Any
    objects: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def result(self, task_id: str = OK) -> Any:
        return self.app.AsyncResult(task_id)

    def sig(self) -> Any:
        return self.echo.s(1, 2)

    def store(self) -> None:
        results = self.app.hare.results
        assert results is not None
        for task_id in (OK, OTHER):
            results._call(
                results.store(TaskResult(task_id=task_id, state="SUCCESS", value=3), None)
            )


def make_ctx() -> Ctx:
    app = Celery(
        "calls",
        broker="memory://",
        backend="memory://",
        set_as_current=False,
        task_default_queue="calls",  # a value set on the app, for app.conf's pop/popitem
    )

    @app.task(shared=False, name="calls.echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return list(args)

    class ClassTask(app.Task):  # type: ignore[name-defined,misc]
        name = "calls.class_task"

        def run(self, *args: Any, **kwargs: Any) -> Any:
            return None

    ctx = Ctx(app, echo)
    ctx.store()
    ctx.objects.update(
        {
            "celery.app.task.Task": lambda: echo,
            "celery.app.task.Context": lambda: type(echo.request)(id=OK, args=[1]),
            "celery.result.AsyncResult": ctx.result,
            "celery.result.ResultSet": lambda: app.ResultSet([ctx.result(), ctx.result(OTHER)]),
            "celery.result.GroupResult": lambda: app.GroupResult(
                "calls-group", [ctx.result(), ctx.result(OTHER)]
            ),
            "celery.result.EagerResult": lambda: echo.apply((1, 2)),
            "celery.canvas.Signature": ctx.sig,
            "celery.canvas.chain": lambda: canvas.chain(ctx.sig(), echo.s(3)),
            "celery.canvas.group": lambda: canvas.group(ctx.sig(), echo.s(3, 4)),
            "celery.canvas.chord": lambda: canvas.chord([ctx.sig(), echo.s(3, 4)], echo.s()),
            "celery.canvas.StampingVisitor": lambda: Stamps(),
            "celery.schedules.BaseSchedule": lambda: schedules.BaseSchedule(app=app),
            "celery.schedules.schedule": lambda: schedules.schedule(60, app=app),
            "celery.schedules.crontab": lambda: schedules.crontab(minute="*/15", app=app),
            "celery.schedules.crontab_parser": lambda: schedules.crontab_parser(),
            "celery.utils.dispatch.signal.Signal": lambda: Signal("calls"),
            "celery.signals.task_internal_error": lambda: NeverSent("calls", "never"),
            "celery.local.Proxy": lambda: Proxy(lambda: echo),
            "celery.Celery": lambda: app,
            "celery.app.control.Control": lambda: app.control,
            "celery.app.control.Inspect": lambda: app.control.inspect(timeout=0.01),
            "celery.app.utils.Settings": lambda: app.conf,
            "class_task": lambda: ClassTask(),
        }
    )
    return ctx


#: Required arguments by method (its last name), as a user would pass them.
ARGUMENTS: dict[str, Callable[[Ctx, Any], tuple[Any, ...]]] = {
    "AsyncResult": lambda c, o: (OK,),
    "GroupResult": lambda c, o: ("calls-group",),
    "ResultSet": lambda c, o: ([c.result()],),
    "EagerResult": lambda c, o: ("calls-eager", 3, "SUCCESS"),
    "add": lambda c, o: (c.result("calls-new"),),
    # StampingVisitor's hooks: the canvas part each visits
    "on_signature": lambda c, o: (c.sig(),),
    "on_callback": lambda c, o: (c.sig(),),
    "on_errback": lambda c, o: (c.sig(),),
    "on_chord_body": lambda c, o: (c.sig(),),
    "on_chain_start": lambda c, o: (c.objects["celery.canvas.chain"](),),
    "on_chain_end": lambda c, o: (c.objects["celery.canvas.chain"](),),
    "on_group_start": lambda c, o: (c.objects["celery.canvas.group"](),),
    "on_group_end": lambda c, o: (c.objects["celery.canvas.group"](),),
    "on_chord_header_start": lambda c, o: (c.objects["celery.canvas.chord"](),),
    "on_chord_header_end": lambda c, o: (c.objects["celery.canvas.chord"](),),
    "add_around": lambda c, o: ("run", lambda fun: fun),
    "add_consumer": lambda c, o: ("calls",),
    "add_defaults": lambda c, o: ({"calls_custom": 1},),
    "add_periodic_task": lambda c, o: (60, c.sig()),
    "add_to_chord": lambda c, o: (c.sig(),),
    "add_trail": lambda c, o: (c.result(),),
    "after_return": lambda c, o: ("SUCCESS", 3, OK, (1, 2), {}, None),
    "append_to_list_option": lambda c, o: ("link", c.sig()),
    "autoscale": lambda c, o: (4, 1),
    "before_start": lambda c, o: (OK, (1, 2), {}),
    "bind": lambda c, o: (c.app,),
    "bind_to": lambda c, o: (print,),
    "broadcast": lambda c, o: ("ping",),
    "cancel_consumer": lambda c, o: ("calls",),
    "chord": lambda c, o: ([c.sig()],),
    "chunks": lambda c, o: ([(1, 2)], 1),
    "config_from_envvar": lambda c, o: ("HARE_COMPAT_CALLS_UNSET",),
    "config_from_object": lambda c, o: ({"task_default_priority": 3},),
    "discard": lambda c, o: (c.result(),),
    "either": lambda c, o: ("task_default_queue",),
    "election": lambda c, o: ("calls-id", "task"),
    "extend_list_option": lambda c, o: ("link", [c.sig()]),
    "find_option": lambda c, o: ("concurrency",),
    "find_value_for_key": lambda c, o: ("concurrency",),
    "from_dict": lambda c, o: (dict(o),),
    "from_string": lambda c, o: ("0 3 * * mon-fri",),
    "fromkeys": lambda c, o: (["calls_custom"],),
    "gen_task_name": lambda c, o: ("echo", "calls"),
    "get": lambda c, o: ("task_default_queue",),
    "get_logger": lambda c, o: ("calls",),
    "get_task_logger": lambda c, o: ("calls.tasks",),
    "hello": lambda c, o: ("calls@node",),
    "is_due": lambda c, o: (WHEN,),
    "link": lambda c, o: (c.sig(),),
    "link_error": lambda c, o: (c.sig(),),
    "map": lambda c, o: ([1, 2],),
    "maybe_make_aware": lambda c, o: (WHEN,),
    "maybe_schedule": lambda c, o: (60,),
    "maybe_signature": lambda c, o: (dict(c.sig()),),
    "mlevel": lambda c, o: ("info",),
    "on_bound": lambda c, o: (c.app,),
    "on_error": lambda c, o: (c.sig(),),
    "on_failure": lambda c, o: (ValueError("x"), OK, (), {}, None),
    "on_replace": lambda c, o: (c.sig(),),
    "on_retry": lambda c, o: (ValueError("x"), OK, (), {}, None),
    "on_success": lambda c, o: (3, OK, (), {}),
    "parse": lambda c, o: ("*/15",),
    "pop": lambda c, o: ("task_default_queue",),
    "precedence": lambda c, o: ("SUCCESS",),
    "prepare_config": lambda c, o: ({},),
    "rate_limit": lambda c, o: ("calls.echo", "10/m"),
    "register_task": lambda c, o: (c.objects["class_task"](),),
    "remaining_delta": lambda c, o: (WHEN,),
    "remaining_estimate": lambda c, o: (WHEN,),
    "remove": lambda c, o: (o.results[0],),
    "replace": lambda c, o: (c.sig(),),
    "reraise": lambda c, o: (ValueError, ValueError("x")),
    "restore": lambda c, o: ("calls-group",),
    "result_from_tuple": lambda c, o: (((OK, None), None),),
    "revoke": lambda c, o: (OK,),
    "revoke_by_stamped_headers": lambda c, o: ({"stamp": "x"},),
    "send_event": lambda c, o: ("task-custom",),
    "send_task": lambda c, o: ("calls.echo",),
    "set_immutable": lambda c, o: (True,),
    "set_in_sighandler": lambda c, o: (False,),
    "setdefault": lambda c, o: ("calls_custom",),
    "shadow_name": lambda c, o: ((), {}, {}),
    "celery.canvas.signature": lambda c, o: ("calls.echo",),
    "celery.signals.Signal": lambda c, o: ("calls",),  # a listed difference: hare's needs a name
    "schedstate": lambda c, o: (True, 1.0),
    "solar": lambda c, o: ("sunrise", 0.0, 0.0),
    "stamp_links": lambda c, o: (None,),
    "starmap": lambda c, o: ([(1, 2)],),
    "subclass_with_self": lambda c, o: (EagerResult,),
    "swap_with": lambda c, o: (Settings(),),
    "terminate": lambda c, o: (OK,),
    "then": lambda c, o: (print,),
    "time_limit": lambda c, o: ("calls.echo",),
    "to_local": lambda c, o: (WHEN,),
    "type_checker": lambda c, o: (lambda x: x,),
    "update": lambda c, o: ([c.result("calls-new")],),
    "value_set_for": lambda c, o: ("task_default_queue",),
}


def _celery_retry() -> Any:
    app = celery.Celery("raises", set_as_current=False)

    def noop() -> None:
        return None

    return app.task(noop, name="raises.retry_noop", shared=False).retry()


def _celery_replace(hook: str) -> Any:
    app = celery.Celery("raises", broker="memory://", set_as_current=False)

    def noop() -> None:
        return None

    task = app.task(noop, name=f"raises.{hook}_noop", shared=False)
    return getattr(task, hook)(task.s())


#: Calls that raise in Celery too: the exception, and the same call on Celery.
RAISES: dict[str, tuple[type[BaseException], Callable[[], Any]]] = {
    "celery.canvas.StampingVisitor": (
        TypeError,  # abstract: a subclass defines on_signature
        lambda: celery.canvas.StampingVisitor(),
    ),
    "celery.exceptions.reraise": (
        ValueError,  # re-raising is its job
        lambda: celery.exceptions.reraise(ValueError, ValueError("x")),
    ),
    "celery.app.task.Task.retry": (
        exceptions.Retry,  # called outside a worker, the retry is raised to the caller
        _celery_retry,
    ),
    "celery.app.task.Task.replace": (
        exceptions.Ignore,  # the replacement is sent, and the task ends with Ignore
        lambda: _celery_replace("replace"),
    ),
    "celery.app.task.Task.on_replace": (
        exceptions.Ignore,  # as replace: sent, then Ignore
        lambda: _celery_replace("on_replace"),
    ),
    "celery.app.task.Task.add_to_chord": (
        ValueError,  # called outside a chord: nothing to add to
        lambda: _celery_replace("add_to_chord"),
    ),
    "celery.schedules.BaseSchedule.is_due": (
        NotImplementedError,  # abstract
        lambda: celery_schedules.BaseSchedule().is_due(WHEN),
    ),
    "celery.schedules.BaseSchedule.remaining_estimate": (
        NotImplementedError,  # abstract
        lambda: celery_schedules.BaseSchedule().remaining_estimate(WHEN),
    ),
    "celery.Celery.signature": (
        TypeError,  # no task named: nothing to sign
        lambda: celery.Celery(set_as_current=False).signature(),
    ),
    "celery.Celery.config_from_envvar": (
        exceptions.ImproperlyConfigured,  # the variable is not set
        lambda: celery.Celery(set_as_current=False).config_from_envvar("HARE_COMPAT_CALLS_UNSET"),
    ),
    "celery.app.utils.Settings.get_by_parts": (
        KeyError,  # no parts: the setting named "" does not exist
        lambda: celery.Celery(set_as_current=False).conf.get_by_parts(),
    ),
}

#: Calls given more than their required arguments, and why.
EXTRA: dict[str, dict[str, Any]] = {
    # Outside a task and without a state, Celery stores a result of state None under the
    # id None; hare refuses to record that (ValueError naming task_id= or state=).
    "celery.app.task.Task.update_state": {"task_id": OK, "state": "PROGRESS"},
}

#: Owners of methods whose objects `make_ctx` makes (classes and instances walked).
OWNERS = frozenset(
    {
        "celery.app.task.Task",
        "celery.app.task.Context",
        "celery.result.AsyncResult",
        "celery.result.ResultSet",
        "celery.result.GroupResult",
        "celery.result.EagerResult",
        "celery.canvas.Signature",
        "celery.canvas.chain",
        "celery.canvas.group",
        "celery.canvas.chord",
        "celery.schedules.BaseSchedule",
        "celery.schedules.schedule",
        "celery.schedules.crontab",
        "celery.schedules.crontab_parser",
        "celery.utils.dispatch.signal.Signal",
        "celery.signals.task_internal_error",
        "celery.local.Proxy",
        "celery.Celery",
        "celery.app.control.Control",
        "celery.app.control.Inspect",
        "celery.app.utils.Settings",
    }
)


def _owner(name: str) -> tuple[str | None, str]:
    """The class (or walked instance) a method belongs to, and the method's name."""
    owner, _, method = name.rpartition(".")
    return (owner, method) if owner in OWNERS or owner in CLASSES else (None, method)


def _callables() -> Iterator[Pair]:
    real = celery.Celery("calls", broker="memory://", set_as_current=False)
    ours = Celery("calls", broker="memory://", set_as_current=False)
    try:
        pairs = list(conformance.walk(real, ours))
    finally:
        ours.close()
        real.close()
    yield from (p for p in pairs if p.callable and p.hare is not MISSING and callable(p.hare))


CALLABLES = list(_callables())
CLASSES = {p.name: p.hare for p in CALLABLES if inspect.isclass(p.celery)}


def _required(target: Any) -> list[str]:
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.default is p.empty and p.kind in kinds]


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context = make_ctx()
    try:
        yield context
    finally:
        context.app.close()


def _target(ctx: Ctx, pair: Pair) -> tuple[Any, str, Any]:
    """The callable to call for `pair` (a method bound to an object made for it), its
    name, and that object."""
    owner, method = _owner(pair.name)
    if owner is None:
        return pair.hare, method, None
    make = ctx.objects.get(owner)
    try:
        if make is not None:
            instance = make()
        else:  # a class that needs no app (an exception): made with its own arguments
            cls = CLASSES[owner]
            given = ARGUMENTS.get(owner.rpartition(".")[2])
            instance = cls(*(given(ctx, None) if given else ()))
    except NotSupportedError as exc:
        # hare refuses the object itself (e.g. a solar schedule): the refusal is the outcome,
        # and it names what is refused.
        return _refused(owner, exc), method, None
    return getattr(instance, method), method, instance


def _refused(owner: str, exc: NotSupportedError) -> Any:
    """A stand-in for a method of an object hare refuses to make: it raises the refusal."""
    assert owner.rpartition(".")[2].lower() in exc.option.lower(), (owner, exc.option)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return refused


def _arguments(ctx: Ctx, pair: Pair, target: Any, method: str, instance: Any) -> tuple[Any, ...]:
    required = _required(target)
    if not required:
        return ()  # Celery's defaults for everything
    given = ARGUMENTS.get(pair.name) or ARGUMENTS.get(method)
    assert given is not None, f"{pair.name}: add its required {required} to ARGUMENTS"
    arguments = given(ctx, instance)
    assert len(arguments) >= len(required), f"{pair.name} needs {required}"
    return arguments


@pytest.mark.parametrize("pair", CALLABLES, ids=[p.name for p in CALLABLES])
def test_called_with_celerys_defaults(ctx: Ctx, pair: Pair) -> None:
    target, method, instance = _target(ctx, pair)
    arguments = _arguments(ctx, pair, target, method, instance)
    expected = RAISES.get(pair.name)
    try:
        outcome = target(*arguments, **EXTRA.get(pair.name, {}))
        if inspect.isgenerator(outcome):
            list(outcome)  # iterdeps(), collect(), iter_native() run when iterated
    except NotSupportedError as exc:
        owner = _owner(pair.name)[0] or ""
        named = (method.lower(), owner.rpartition(".")[2].lower())
        assert any(name and name in exc.option.lower() for name in named) or any(
            name in exc.option for name in _required(target)
        ), f"{pair.name}: NotSupportedError names {exc.option!r}, not {method!r}"
    except Exception as exc:
        if expected is None or not isinstance(exc, expected[0]):
            raise
    else:
        assert expected is None, f"{pair.name} was expected to raise {expected[0].__name__}"


@pytest.mark.parametrize("name", sorted(RAISES))
def test_what_raises_here_raises_in_celery_too(name: str) -> None:
    kind, celery_call = RAISES[name]
    with pytest.raises(Exception) as info:
        celery_call()
    assert kind.__name__ in {k.__name__ for k in type(info.value).__mro__}


def test_every_call_table_entry_is_used() -> None:
    names = {p.name for p in CALLABLES}
    assert set(RAISES) | set(EXTRA) <= names, (set(RAISES) | set(EXTRA)) - names
    methods = {_owner(p.name)[1] for p in CALLABLES} | names
    assert set(ARGUMENTS) <= methods, set(ARGUMENTS) - methods


def test_the_plainest_revoke_reaches_the_control_client(ctx: Ctx) -> None:
    """The call issue 14 found broken, spelled out: Celery's defaults all the way down."""
    ctx.result().revoke()
    ctx.app.GroupResult("g", [ctx.result()]).revoke()
    ctx.app.control.revoke(OK)


def test_a_task_class_made_for_the_app_is_a_task(ctx: Ctx) -> None:
    assert isinstance(ctx.objects["class_task"](), Task)


#: apply_async's options as Celery documents them, each given its default (or a value that
#: only steers Celery's producer), as code written for Celery passes them.
SEND_OPTIONS: dict[str, Any] = {
    "countdown": None,
    "eta": None,
    "expires": None,
    "priority": None,
    "queue": None,
    "time_limit": None,
    "soft_time_limit": None,
    "retry": True,
    "retry_policy": {"max_retries": 3},
    "headers": None,
    "shadow": None,
    "ignore_result": None,
    "serializer": None,
    "compression": None,
    "exchange": None,
    "routing_key": None,
    "task_id": None,
    "producer": None,
    "declare": None,
    "mandatory": False,
    "immediate": False,
}


def test_documented_options_spelled_out_with_celerys_defaults(ctx: Ctx) -> None:
    echo, app = ctx.echo, ctx.app
    echo.apply_async((1, 2), None, **SEND_OPTIONS)
    app.send_task("calls.echo", (1, 2), None, **SEND_OPTIONS)
    ctx.sig().apply_async(**SEND_OPTIONS)
    ctx.sig().set(countdown=None, queue=None, priority=None).apply_async()
    canvas.group(ctx.sig(), echo.s(3)).apply_async(**SEND_OPTIONS)
    canvas.chain(ctx.sig(), echo.s(3)).apply_async(**SEND_OPTIONS)
    canvas.chord([ctx.sig()], echo.s()).apply_async(**SEND_OPTIONS)
    app.signature("calls.echo", args=None, kwargs=None, options=None, app=None).apply_async()
    assert echo.apply((1, 2), None, link=None, task_id=None, retries=None, throw=None).get() == [
        1,
        2,
    ]

    @app.task(shared=False, name="calls.flaky", bind=True, max_retries=1)
    def flaky(self: Any) -> None:
        raise self.retry(
            exc=None, countdown=None, eta=None, max_retries=None, queue=None, priority=None,
            retry=True, retry_policy=None,
        )  # fmt: skip

    assert flaky.apply().state == "FAILURE"  # retried once eagerly, then out of retries
    assert isinstance(flaky.apply().result, exceptions.MaxRetriesExceededError)
    app.control.revoke(OK, destination=None, signal=None, reply=False, timeout=None)
    app.control.broadcast("ping", arguments=None, reply=False, timeout=None, limit=None)
