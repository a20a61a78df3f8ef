"""Celery's schedules on hare: crontab must fire exactly when Celery's crontab does."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hare.errors import ConfigurationError, NotSupportedError
from hare.periodic.schedules import Interval, every
from hare_compat.schedules import (
    BaseSchedule,
    ParseException,
    crontab,
    maybe_schedule,
    schedule,
    solar,
    to_hare,
)

SPECS: list[dict[str, Any]] = [
    {"minute": "*/15"},
    {"minute": 0, "hour": 3},
    {"minute": 30, "hour": "*/6", "day_of_week": "mon-fri"},
    {"minute": 0, "hour": 0, "day_of_month": 1},
    {"minute": 0, "hour": 12, "day_of_month": "1-7", "day_of_week": "mon"},
    {"minute": [5, 35], "hour": {1, 13}},
    {"minute": 0, "hour": 7, "month_of_year": "*/3", "day_of_month": 15},
    {"minute": "0", "hour": "22-2"},
    {"minute": 0, "hour": 9, "day_of_week": "fri-mon"},
    {"minute": 59, "hour": 23, "day_of_month": 31},
    {"minute": "1,13,30-45,50-59/2", "hour": "0,8-17/2"},
    {"minute": 0, "hour": 0, "day_of_month": 29, "month_of_year": 2},
    {"minute": 15, "day_of_week": "sunday,wed"},
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]


def celery_next(spec: dict[str, Any], zone: str, moment: datetime) -> datetime:
    """The instant Celery's crontab fires next after `moment` (last run), in UTC."""
    import celery
    from celery.schedules import crontab as celery_crontab

    app = celery.Celery(set_as_current=False)
    app.conf.timezone = zone
    schedule = celery_crontab(**spec, app=app, nowfun=lambda: moment)
    remaining: timedelta = schedule.remaining_estimate(moment)
    return moment.astimezone(UTC) + remaining


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda spec: " ".join(f"{k}={v}" for k, v in spec.items())
)
def test_crontab_fires_when_celerys_crontab_fires(spec: dict[str, Any], zone: str) -> None:
    rng = random.Random(f"{spec}{zone}")
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo(zone))
    hare_schedule = crontab(**spec).to_hare(zone)
    # Seeded instants over two years; none lands next to a daylight-saving change, where hare's
    # rules differ on purpose (see the next test).
    for _ in range(25):
        moment = start + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400))
        assert hare_schedule.next_after(moment) == celery_next(spec, zone, moment), moment


def test_daylight_saving_differs_from_celery_as_documented() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = datetime(2025, 3, 30, 0, 0, tzinfo=berlin)  # 02:00-03:00 does not exist
    nightly = crontab(minute=30, hour=2).to_hare("Europe/Berlin")
    assert nightly.next_after(spring) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert celery_next({"minute": 30, "hour": 2}, "Europe/Berlin", spring) == datetime(
        2025, 3, 30, 1, 30, tzinfo=UTC
    )  # Celery: 03:30 CEST
    autumn = datetime(2025, 10, 26, 2, 40, tzinfo=berlin)  # the first 02:40 (CEST)
    hourly = crontab(minute=30).to_hare("Europe/Berlin")
    assert hourly.next_after(autumn) == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert celery_next({"minute": 30}, "Europe/Berlin", autumn) == datetime(
        2025, 10, 26, 2, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("spec", SPECS[:8])
def test_crontab_fields_expand_as_celerys(spec: dict[str, Any]) -> None:
    from celery.schedules import crontab as celery_crontab

    mine, theirs = crontab(**spec), celery_crontab(**spec)
    for field in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year"):
        assert getattr(mine, field) == set(getattr(theirs, field)), field


def test_crontab_from_string_equality_and_repr() -> None:
    parsed = crontab.from_string("0 3 * * mon-fri")
    assert parsed == crontab(minute=0, hour=3, day_of_week="1-5")
    assert parsed != crontab(minute=0, hour=4)
    assert repr(parsed) == "<crontab: 0 3 * * mon-fri (m/h/dM/MY/d)>"
    assert parsed.to_hare("UTC").canonical == "cron:0 3 * * 1-5;tz=UTC"


@pytest.mark.parametrize(
    "spec",
    [
        {"minute": 60},
        {"hour": "25"},
        {"day_of_week": "funday"},
        {"day_of_month": 30, "month_of_year": 2},
    ],
)
def test_a_bad_crontab_raises_on_creation(spec: dict[str, Any]) -> None:
    with pytest.raises(ParseException, match="invalid crontab"):
        crontab(**spec)


def test_crontab_takes_nowfun_and_app_and_notices_nowfun_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import hare_compat.schedules as schedules
    from hare_compat import Celery

    caplog.set_level(logging.INFO, logger="hare_compat.schedules")
    schedules._noticed_nowfun = False
    app = Celery(set_as_current=False, timezone="Asia/Tokyo")
    first = crontab(hour=9, minute=0, nowfun=datetime.now, app=app)
    crontab(hour=9, minute=0, nowfun=datetime.now)
    assert [r.getMessage() for r in caplog.records] == [
        "hare_compat: crontab/schedule nowfun is not called: hare uses its clock"
    ]
    assert to_hare(
        first, lambda: "UTC"
    ).canonical == "cron:0 9 * * *;days=and;tz=Asia/Tokyo".replace(";days=and", "")


def test_intervals_become_every() -> None:
    assert to_hare(timedelta(minutes=5), lambda: "UTC") == every(minutes=5)
    assert to_hare(30.0, lambda: "UTC") == every(seconds=30)
    assert to_hare(schedule(run_every=timedelta(hours=1)), lambda: "UTC") == every(hours=1)
    assert to_hare(schedule(10), lambda: "UTC") == every(seconds=10)
    assert isinstance(maybe_schedule(5), schedule)
    own = every(minutes=1)
    assert to_hare(own, lambda: "UTC") is own
    assert isinstance(to_hare(maybe_schedule(timedelta(seconds=2)), lambda: "UTC"), Interval)
    assert schedule(run_every=60) == timedelta(seconds=60)


def test_the_zone_is_asked_only_for_a_crontab() -> None:
    def no_zone() -> str:
        raise AssertionError("asked")

    assert to_hare(60, no_zone) == every(minutes=1)
    assert (
        to_hare(crontab(minute=0), lambda: "Europe/Berlin").canonical
        == "cron:0 * * * *;tz=Europe/Berlin"
    )


def test_what_hare_cannot_schedule_is_refused() -> None:
    class Custom(BaseSchedule):
        pass

    with pytest.raises(NotSupportedError, match="schedule class Custom"):
        to_hare(Custom(), lambda: "UTC")
    with pytest.raises(NotSupportedError, match="solar"):
        solar("sunrise", 52.5, 13.4)
    with pytest.raises(NotSupportedError, match="schedule 'daily'"):
        to_hare("daily", lambda: "UTC")
    with pytest.raises(ConfigurationError, match="at least 1 s"):
        schedule(run_every=0.5)
