"""Celery's schedules (`celery.schedules`) for `beat_schedule` and `add_periodic_task`.

`crontab(...)` takes Celery's arguments with Celery's meaning (strings such as `"*/15"` or
`"mon-fri"`, ints, sets; a day must match day of month AND day of week) and is evaluated by
hare's own cron code (`hare.schedule.from_crontab`) in the app's `timezone`.
`schedule(run_every=...)`, a `timedelta` or a number of seconds is an interval: hare anchors
intervals at the Unix epoch, so every worker computes the same instants (`timedelta(hours=1)`
fires on the hour, UTC), where Celery's beat counts from its own start.

What differs: hare computes every occurrence ahead (there is no `is_due` to override), so a
custom `BaseSchedule` subclass and `solar` raise `NotSupportedError`; `nowfun` is accepted but
not called: occurrences follow the worker's clock (with one logged notice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hare.errors import ConfigurationError, NotSupportedError
from hare.schedule import Cron, CrontabField, Interval, Schedule, every, from_crontab

if TYPE_CHECKING:
    from hare_compat.app.base import Celery

__all__ = (
    "BaseSchedule",
    "ParseException",
    "crontab",
    "maybe_schedule",
    "schedule",
    "solar",
    "to_hare",
)

logger = logging.getLogger("hare_compat.schedules")
_noticed_nowfun = False


class ParseException(ConfigurationError):
    """A crontab pattern that cannot be parsed (Celery's name)."""


class BaseSchedule:
    """A Celery schedule; hare's counterpart comes from `to_hare(zone)`."""

    def __init__(self, nowfun: Any = None, app: Celery | None = None) -> None:
        global _noticed_nowfun
        if nowfun is not None and not _noticed_nowfun:
            _noticed_nowfun = True
            logger.info("hare_compat: crontab/schedule nowfun is not called: hare uses its clock")
        self.nowfun = nowfun
        self.app = app

    def to_hare(self, zone: str) -> Schedule:
        """The hare schedule with the same occurrences, for wall clock zone `zone`."""
        raise NotSupportedError(
            f"schedule class {type(self).__name__}",
            "hare computes occurrences ahead; use crontab, schedule, a timedelta or seconds",
        )


class schedule(BaseSchedule):
    """Every `run_every` (a `timedelta` or seconds)."""

    def __init__(
        self,
        run_every: timedelta | float | None = None,
        relative: bool = False,
        nowfun: Any = None,
        app: Celery | None = None,
    ) -> None:
        if run_every is None:
            raise ConfigurationError("schedule() needs run_every")
        self.run_every = _as_timedelta(run_every)
        self.relative = relative
        self._interval = every(self.run_every)  # validates: at least 1 s, whole ms
        super().__init__(nowfun=nowfun, app=app)

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    def to_hare(self, zone: str) -> Schedule:
        return self._interval

    def __repr__(self) -> str:
        return f"<freq: {self.seconds:g} seconds>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return self.run_every == other.run_every
        return self.run_every == other

    __hash__ = None  # type: ignore[assignment]  # mutable-ish and compared by value, as Celery


class crontab(BaseSchedule):
    """Celery's crontab: fields as strings, ints or sets; a day matches dom AND dow."""

    def __init__(
        self,
        minute: CrontabField = "*",
        hour: CrontabField = "*",
        day_of_week: CrontabField = "*",
        day_of_month: CrontabField = "*",
        month_of_year: CrontabField = "*",
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - {"nowfun", "app"}
        if unknown:
            raise TypeError(f"crontab() got unexpected arguments {sorted(unknown)}")
        self._orig = tuple(
            "*" if field is None else field
            for field in (minute, hour, day_of_week, day_of_month, month_of_year)
        )
        try:
            self._cron = self._build("UTC")
        except ConfigurationError as exc:
            raise ParseException(f"invalid crontab {self._fields_text()}: {exc}") from None
        super().__init__(**kwargs)

    def _build(self, zone: str) -> Cron:
        minute, hour, day_of_week, day_of_month, month_of_year = self._orig
        return from_crontab(minute, hour, day_of_week, day_of_month, month_of_year, tz=zone)

    @classmethod
    def from_string(cls, text: str) -> crontab:
        """`crontab.from_string("0 3 * * mon-fri")`: minute hour dom month dow."""
        fields = text.split()
        if len(fields) != 5:
            raise ParseException(f"{text!r} needs 5 fields: minute hour dom month dow")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year)

    def to_hare(self, zone: str) -> Schedule:
        return self._build(zone)

    @property
    def minute(self) -> set[int]:
        return set(self._cron.minutes)

    @property
    def hour(self) -> set[int]:
        return set(self._cron.hours)

    @property
    def day_of_week(self) -> set[int]:
        return set(range(7) if self._cron.weekdays is None else self._cron.weekdays)

    @property
    def day_of_month(self) -> set[int]:
        return set(range(1, 32) if self._cron.days is None else self._cron.days)

    @property
    def month_of_year(self) -> set[int]:
        return set(self._cron.months)

    def _fields_text(self) -> str:
        minute, hour, day_of_week, day_of_month, month_of_year = self._orig
        return f"{minute} {hour} {day_of_month} {month_of_year} {day_of_week}"

    def __repr__(self) -> str:
        return f"<crontab: {self._fields_text()} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return self._cron == other._cron
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._orig)


class solar(BaseSchedule):
    """Celery's sunrise/sunset schedule: not available in hare."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        raise NotSupportedError("solar schedules", "use crontab in the right timezone")


def _as_timedelta(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"a schedule needs seconds or a timedelta, not {value!r}")
    return timedelta(seconds=value)


def maybe_schedule(
    value: Any, relative: bool = False, app: Celery | None = None
) -> BaseSchedule | None:
    """A number or `timedelta` as a `schedule`; a schedule as is (Celery's helper)."""
    if value is None or isinstance(value, BaseSchedule):
        return value
    return schedule(_as_timedelta(value), relative, app=app)


def to_hare(value: Any, zone: Callable[[], str]) -> Schedule:
    """The hare schedule for what `beat_schedule` accepts (hare's own schedules pass through).

    `zone()` names the app's timezone (asked only for a crontab); a crontab made with `app=`
    uses that app's instead.
    """
    if isinstance(value, Interval | Cron):
        return value
    if isinstance(value, timedelta | int | float) and not isinstance(value, bool):
        return every(_as_timedelta(value))
    if isinstance(value, BaseSchedule):
        app = value.app
        return value.to_hare(app.timezone_name if app is not None else zone())
    raise NotSupportedError(
        f"schedule {value!r}",
        "hare takes crontab, schedule, a timedelta or seconds (or its own every/cron)",
    )
