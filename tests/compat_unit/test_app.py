"""The Celery app over hare: tasks, shared tasks, discovery, beat_schedule, logging, signals."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from hare.context import TaskContext, running
from hare.core.message import Message
from hare.errors import ConfigurationError, NotSupportedError
from hare.periodic.schedules import every
from hare_compat import Celery, Task, current_app, shared_task, signals
from hare_compat.app import beat
from hare_compat.exceptions import NotRegistered
from hare_compat.schedules import crontab
from hare_compat.utils.local import Proxy
from hare_compat.utils.log import get_task_logger


def make_app(**settings: Any) -> Celery:
    return Celery("proj", broker="memory://", set_as_current=False, **settings)


def test_app_task_is_lazy_until_the_app_finalizes() -> None:
    app = make_app()

    @app.task(shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    assert type(cast(object, add)) is Proxy and app._tasks == {}  # nothing created yet
    app.conf.task_time_limit = 30  # set after the decorator: the task still sees it
    assert add.time_limit == 30
    assert isinstance(add, Task)
    assert add(2, 3) == 5
    assert app.tasks[f"{__name__}.add"] is cast(Any, add)._get_current_object()
    with pytest.raises(NotRegistered):
        app.tasks["no.such.task"]


def test_shared_tasks_reach_every_app_and_resolve_to_the_current_one() -> None:
    before = make_app()
    before.finalize()

    @shared_task(name="d1.shared.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    after = make_app()
    assert "d1.shared.mul" in before.tasks and "d1.shared.mul" in after.tasks
    after.set_current()
    assert mul.app is after
    before.set_current()
    assert mul.app is before
    assert current_app._get_current_object() is before  # type: ignore[attr-defined]
    assert mul(3, 4) == 12


def test_a_worker_load_binds_every_task_to_the_hare_app() -> None:
    app = make_app()

    @app.task(shared=False, name="d1.bound.one")
    def one() -> int:
        return 1

    hare = app.__hare_app__()
    assert "d1.bound.one" in hare.tasks
    later = app.task(shared=False, name="d1.bound.two")(lambda: 2)
    assert later.name == "d1.bound.two" and "d1.bound.two" in hare.tasks
    assert app.__hare_app__() is hare


def test_beat_schedule_becomes_hare_periodic_tasks() -> None:
    app = make_app(timezone="Europe/Berlin", task_routes={"reports.*": "reports"})
    app.conf.beat_schedule = {
        "nightly": {"task": "reports.nightly", "schedule": crontab(hour=3, minute=0), "args": (1,)},
        "often": {"task": "tasks.poll", "schedule": timedelta(seconds=30), "kwargs": {"k": 2}},
        "float": {"task": "tasks.poll", "schedule": 10.0, "options": {"queue": "fast"}},
    }
    periodics = app.__hare_app__().periodics
    assert {name: (p.task, p.queue, p.args, dict(p.kwargs)) for name, p in periodics.items()} == {
        "nightly": ("reports.nightly", "reports", (1,), {}),
        "often": ("tasks.poll", "celery", (), {"k": 2}),
        "float": ("tasks.poll", "fast", (), {}),
    }
    assert periodics["nightly"].schedule.canonical == "cron:0 3 * * *;tz=Europe/Berlin"
    assert periodics["often"].schedule == every(seconds=30)


def test_add_periodic_task_from_on_after_configure_and_after_the_worker_started() -> None:
    app = make_app()
    sig = {"task": "tasks.add", "args": (1,), "kwargs": {}, "options": {}, "immutable": False}

    @app.on_after_configure.connect
    def setup(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(10.0, sig, args=(0,), name="add ten")
        sender.add_periodic_task(crontab(minute=0), SimpleNamespace(name="tasks.ping"))

    hare = app.__hare_app__()
    assert app.conf.beat_schedule["add ten"]["args"] == (0, 1)
    assert sorted(hare.periodics) == ["add ten", "tasks.ping()"]
    key = app.add_periodic_task(timedelta(minutes=1), sig, kwargs={"z": 1}, queue="q")
    assert key == "tasks.add(1, z=1)"
    assert (hare.periodics[key].queue, dict(hare.periodics[key].kwargs)) == ("q", {"z": 1})


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"priority": 5}, NotSupportedError, r"options \['priority'\]"),
        ({"expires": -1}, ConfigurationError, "expires must be positive"),
    ],
)
def test_beat_options_other_than_queue_are_refused(
    options: dict[str, Any], error: type, named: str
) -> None:
    app = make_app(beat_schedule={"e": {"task": "t", "schedule": 60, "options": options}})
    with pytest.raises(error, match=named):
        app.__hare_app__()


def test_beat_expires_reaches_the_hare_schedule() -> None:
    app = make_app(beat_schedule={"e": {"task": "t", "schedule": 60, "options": {"expires": 30}}})
    assert app.__hare_app__().periodics["e"].expires == 30


def test_expires_is_passed_on_once_hare_takes_it() -> None:
    calls: list[dict[str, Any]] = []

    class FakeHare:
        def add_periodic(
            self, name: str, schedule: Any, *, task: str, expires: float | None = None, **kw: Any
        ) -> None:
            calls.append({"name": name, "task": task, "expires": expires, **kw})

    entry = beat.periodic(
        "e",
        {"task": "t", "schedule": 60, "options": {"expires": timedelta(seconds=30)}},
        zone=lambda: "UTC",
        route=lambda task, options: "q",
    )
    beat.register(FakeHare(), entry)  # type: ignore[arg-type]
    assert calls == [
        {"name": "e", "task": "t", "expires": 30.0, "args": (), "kwargs": {}, "queue": "q"}
    ]


def test_crontabs_need_a_named_zone() -> None:
    local = make_app(
        enable_utc=False, beat_schedule={"c": {"task": "t", "schedule": crontab(minute=0)}}
    )
    with pytest.raises(NotSupportedError, match="enable_utc=False without timezone"):
        local.__hare_app__()
    intervals = make_app(enable_utc=False, beat_schedule={"i": {"task": "t", "schedule": 60}})
    assert list(intervals.__hare_app__().periodics) == ["i"]


def test_a_bad_beat_entry_is_a_clear_error() -> None:
    app = make_app(beat_schedule={"x": {"task": "t"}})
    with pytest.raises(ConfigurationError, match=r"beat_schedule\['x'\] needs a schedule"):
        app.__hare_app__()


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Packages `<p>_a` (tasks.py with a shared task), `<p>_b` (no tasks), `<p>_c` (jobs.py)."""
    prefix = f"d1pkg{abs(hash(tmp_path)) % 10**8}"
    for suffix, files in {
        "a": {
            "tasks.py": "from hare_compat import shared_task\n"
            f"@shared_task(name='{prefix}.a')\ndef a():\n    return 'a'\n"
        },
        "b": {},
        "c": {"jobs.py": "IMPORTED = True\n"},
        "inc": {},
    }.items():
        package = tmp_path / f"{prefix}_{suffix}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for name, text in files.items():
            (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield prefix
    for name in list(sys.modules):
        if name.startswith(prefix):
            del sys.modules[name]


def test_autodiscovery_is_lazy_until_the_worker_loads_the_app(packages: str) -> None:
    app = make_app(include=[f"{packages}_inc"])
    app.autodiscover_tasks([f"{packages}_a", f"{packages}_b"])
    app.autodiscover_tasks(lambda: [f"{packages}_c"], related_name="jobs")
    assert f"{packages}_a.tasks" not in sys.modules
    hare = app.__hare_app__()
    assert f"{packages}_c.jobs" in sys.modules and f"{packages}_inc" in sys.modules
    assert f"{packages}.a" in app.tasks and f"{packages}.a" in hare.tasks


def test_autodiscovery_can_be_forced(packages: str) -> None:
    app = make_app()
    app.autodiscover_tasks([f"{packages}_a"], force=True)
    assert f"{packages}_a.tasks" in sys.modules
    with pytest.raises(ModuleNotFoundError):
        app.autodiscover_tasks([f"{packages}_missing"], force=True)


def test_imports_and_signals_at_worker_load(packages: str) -> None:
    seen: list[str] = []
    signals.import_modules.connect(
        lambda sender, **kw: seen.append("import_modules"), dispatch_uid="d1-im"
    )
    signals.celeryd_init.connect(
        lambda sender, conf, instance, **kw: seen.append(f"init {instance}"), dispatch_uid="d1-ci"
    )
    try:
        app = make_app(imports=(f"{packages}_c.jobs",))
        app.__hare_app__()
    finally:
        signals.import_modules.disconnect(dispatch_uid="d1-im")
        signals.celeryd_init.disconnect(dispatch_uid="d1-ci")
    assert seen == ["init None", "import_modules"]
    assert f"{packages}_c.jobs" in sys.modules


def test_a_django_project_discovers_its_installed_apps(
    packages: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    apps = SimpleNamespace(
        ready=False,
        get_app_configs=lambda: [
            SimpleNamespace(name=f"{packages}_a"),
            SimpleNamespace(name=f"{packages}_b"),
        ],
    )

    def setup() -> None:
        calls.append("setup")
        apps.ready = True

    monkeypatch.setitem(sys.modules, "django", SimpleNamespace(setup=setup))
    monkeypatch.setitem(sys.modules, "django.apps", SimpleNamespace(apps=apps))
    monkeypatch.setitem(
        sys.modules,
        "django.db",
        SimpleNamespace(close_old_connections=lambda: calls.append("close")),
    )
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    app = make_app()
    app.autodiscover_tasks()
    assert calls == []
    app.__hare_app__()
    assert calls == ["setup"]
    assert f"{packages}.a" in app.tasks
    from hare import signals as hare_signals

    message = Message(id="i", task="t")
    with running(TaskContext(message=message)):
        hare_signals.task_prerun.send(sender=None, task_id="i")
    with running(TaskContext(message=message, is_eager=True)):
        hare_signals.task_postrun.send(sender=None, task_id="i")
    hare_signals.task_prerun.disconnect(
        dispatch_uid="hare_compat.app.djangofixup.close_old_connections"
    )
    hare_signals.task_postrun.disconnect(
        dispatch_uid="hare_compat.app.djangofixup.close_old_connections"
    )
    assert calls == ["setup", "close"]


def test_task_logger_records_carry_the_running_task(caplog: pytest.LogCaptureFixture) -> None:
    logger = get_task_logger("d1.tasks.module")
    assert logger.parent is logging.getLogger("celery.task")
    caplog.set_level(logging.INFO)
    logger.info("outside")
    with running(TaskContext(message=Message(id="abc", task="shop.charge"))):
        logger.info("inside")
    fields = [
        (r.getMessage(), getattr(r, "task_id", None), getattr(r, "task_name", None))
        for r in caplog.records
        if r.name == "d1.tasks.module"
    ]
    assert fields == [("outside", "???", "???"), ("inside", "abc", "shop.charge")]
    with pytest.raises(RuntimeError, match="reserved"):
        get_task_logger("celery")


def test_signals_are_hares_and_unsent_ones_say_so(caplog: pytest.LogCaptureFixture) -> None:
    from hare import signals as hare_signals

    assert signals.task_prerun is hare_signals.task_prerun
    caplog.set_level(logging.INFO, logger="hare_compat.signals")
    signals.beat_init.connect(lambda **kw: None, dispatch_uid="d1-b1")
    signals.beat_init.connect(dispatch_uid="d1-b2")(lambda **kw: None)
    assert signals.beat_init.receivers == 2
    assert [r.getMessage() for r in caplog.records] == [
        "hare_compat: signal beat_init is never sent: "
        "hare runs periodic tasks without a beat process"
    ]


def test_celery_machinery_and_entry_points_are_refused() -> None:
    with pytest.raises(NotSupportedError, match=r"Celery\(loader=\)"):
        Celery(loader="celery.loaders.app:AppLoader")
    with pytest.raises(NotSupportedError, match="hare worker"):
        make_app().worker_main()


def test_timezone_and_now() -> None:
    app = make_app(timezone="Asia/Tokyo")
    assert app.timezone.key == "Asia/Tokyo"
    assert app.now().utcoffset() == timedelta(hours=9)
    assert make_app().uses_utc_timezone()
