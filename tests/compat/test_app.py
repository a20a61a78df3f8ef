"""The app: Django-style configuration, the task registry and options, beat_schedule, eager mode.

None of these need a worker; all but eager mode read the environment the broker tests set up.
Eager mode runs the shop's own Django-style test suite (`shop/tests.py`, unittest) in a
subprocess with `SHOP_SETTINGS_MODULE=shop.testing_settings`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.compat.conftest import CompatEnv
from tests.compat.harness import ROOT, Variant
from tests.compat.rewrite import PROJECTS_DIR

BERLIN = ZoneInfo("Europe/Berlin")

SHOP_TASKS = {
    "add", "audited", "backoff", "boom", "collect", "export_orders", "fetch_rates",
    "fire_and_forget", "flaky", "give_up", "hold", "member", "mul", "nightly_report", "on_boom",
    "polite", "progress", "refuse", "relay", "remember", "skip", "slow_add", "step", "throttled",
    "urgent", "whoami",
}  # fmt: skip


@pytest.fixture
def shop_app(variant: Variant, compat_env: CompatEnv) -> Any:
    """The shop's app in `variant`, its tasks imported (no worker)."""
    variant.module("shop.tasks")
    return variant.module("shop.celery").app


@pytest.mark.amqp
def test_settings_come_from_the_django_style_module(variant: Variant, shop_app: Any) -> None:
    conf = shop_app.conf
    prefix = variant.package("shop").upper()
    assert conf.broker_url == os.environ[f"{prefix}_BROKER_URL"]
    assert conf.result_backend == os.environ[f"{prefix}_RESULT_BACKEND"]
    assert (conf.timezone, conf.enable_utc, conf.result_expires) == ("Europe/Berlin", True, 600)
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    assert conf.task_default_queue == "celery"
    assert conf.task_track_started is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_always_eager is False
    assert conf.task_routes == {
        variant.task_name("shop.tasks.nightly_report"): {"queue": "reports"},
        variant.task_name("shop.tasks.export_*"): {"queue": "reports"},
    }


@pytest.mark.amqp
def test_the_registry_holds_every_task_by_its_module_name(variant: Variant, shop_app: Any) -> None:
    package = variant.package("shop")
    mine = {name for name in shop_app.tasks if name.startswith(package + ".")}
    assert mine == {f"{package}.tasks.{name}" for name in SHOP_TASKS}
    tasks = variant.module("shop.tasks")
    assert shop_app.tasks[f"{package}.tasks.add"].name == tasks.add.name
    assert tasks.add(2, 3) == 5  # calling a task calls the function, here


@pytest.mark.amqp
def test_task_options_are_kept(variant: Variant, shop_app: Any) -> None:
    tasks = variant.module("shop.tasks")
    assert tasks.backoff.autoretry_for == (tasks.TransientError,)
    assert (tasks.backoff.retry_backoff, tasks.backoff.retry_jitter) == (1, False)
    assert (tasks.backoff.max_retries, tasks.backoff.retry_backoff_max) == (2, 60)
    assert (tasks.flaky.max_retries, tasks.flaky.default_retry_delay) == (3, 30)
    assert tasks.urgent.queue == "priority"
    assert tasks.fire_and_forget.ignore_result is True
    assert tasks.throttled.rate_limit == "2/s"
    assert tasks.polite.soft_time_limit == 1
    assert isinstance(tasks.audited, tasks.AuditedTask)
    assert isinstance(tasks.audited, variant.lib("").Task)


# -- beat_schedule ---------------------------------------------------------------------------


def _celery_next(schedule: Any, after: datetime) -> datetime:
    """When Celery's beat runs a crontab next after a run at `after`."""
    last_run_at, delta, _ = schedule.remaining_delta(after)
    return last_run_at + delta  # type: ignore[no-any-return]


def _schedules(variant: Variant, app: Any) -> dict[str, dict[str, Any]]:
    """Each beat_schedule entry as what it runs, where and when: `next(after)` for crontabs,
    `every` for intervals. Celery: read through celery.beat's own entries; hare: the
    periodic tasks the finalized hare app created from the same setting."""
    found: dict[str, dict[str, Any]] = {}
    if variant.name == "celery":
        from celery.beat import ScheduleEntry
        from celery.schedules import crontab

        for name, spec in app.conf.beat_schedule.items():
            entry = ScheduleEntry(name=name, app=app, **spec)
            schedule = entry.schedule
            route = app.amqp.router.route({}, entry.task)
            found[name] = {
                "task": entry.task,
                "args": tuple(entry.args),
                "queue": route["queue"].name,
            }
            if isinstance(schedule, crontab):
                found[name]["next"] = functools.partial(_celery_next, schedule)
            else:
                found[name]["every"] = schedule.run_every
        return found
    for name, periodic in app.__hare_app__().periodics.items():
        found[name] = {"task": periodic.task, "args": tuple(periodic.args), "queue": periodic.queue}
        if hasattr(periodic.schedule, "period"):
            found[name]["every"] = periodic.schedule.period
        else:
            found[name]["next"] = periodic.schedule.next_after
    return found


@pytest.mark.amqp
def test_beat_schedule_maps_to_the_same_runs(variant: Variant, shop_app: Any) -> None:
    schedules = _schedules(variant, shop_app)
    assert set(schedules) == {"nightly-report", "restock"}
    nightly, restock = schedules["nightly-report"], schedules["restock"]
    assert (nightly["task"], nightly["args"]) == (
        variant.task_name("shop.tasks.nightly_report"),
        ("eu",),
    )
    assert nightly["queue"] == "reports"  # task_routes apply to beat's sends too
    assert (restock["task"], restock["args"], restock["queue"]) == (
        variant.task_name("shop.tasks.add"),
        (1, 2),
        "celery",
    )
    assert restock["every"] == timedelta(minutes=10)
    # crontab(hour=3, minute=0, day_of_week="mon-fri") in the app's zone, Europe/Berlin
    cases = [
        (datetime(2024, 3, 8, 3, 0, tzinfo=BERLIN), datetime(2024, 3, 11, 3, 0, tzinfo=BERLIN)),
        (datetime(2024, 3, 12, 1, 0, tzinfo=BERLIN), datetime(2024, 3, 12, 3, 0, tzinfo=BERLIN)),
        # across the switch to summer time (31 March): 03:00 CEST, not 03:00 CET
        (datetime(2024, 3, 29, 3, 0, tzinfo=BERLIN), datetime(2024, 4, 1, 3, 0, tzinfo=BERLIN)),
    ]
    for after, expected in cases:
        assert nightly["next"](after) == expected, after


# -- eager mode ------------------------------------------------------------------------------


def run_project_suite(variant: Variant, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARE_", "SHOP"))}
    env |= {
        "SHOP_SETTINGS_MODULE": f"{variant.package('shop')}.testing_settings",
        "COMPAT_LEDGER": str(tmp_path / "eager.jsonl"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(PROJECTS_DIR)]),
    }
    command = [
        sys.executable,
        "-m",
        "tests.compat.launch",
        "unittest",
        f"{variant.package('shop')}.tests",
    ]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)


def test_eager_mode_runs_the_projects_test_suite_inline(variant: Variant, tmp_path: Path) -> None:
    done = run_project_suite(variant, tmp_path)
    report = done.stderr
    assert "Ran 9 tests" in report and done.returncode == 0, report[-6000:]
    assert report.rstrip().endswith("OK"), report[-6000:]
