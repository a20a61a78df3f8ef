"""Celery's schedules (`celery.schedules`) for `beat_schedule` and `add_periodic_task`.

`crontab(...)` takes Celery's arguments with Celery's meaning (strings such as `"*/15"` or
`"mon-fri"`, ints, sets; a day must match day of month AND day of week) and is evaluated by
hare's own cron code (`hare.periodic.schedules.from_crontab`) in the app's `timezone`.
`schedule(run_every=...)`, a `timedelta` or a number of seconds is an interval: hare anchors
intervals at the Unix epoch, so every worker computes the same instants (`timedelta(hours=1)`
fires on the hour, UTC), where Celery's beat counts from its own start.

What differs: hare computes every occurrence ahead (a worker never asks `is_due`), so a
custom `BaseSchedule` subclass and `solar` raise `NotSupportedError`; `nowfun` is not called
for the occurrences the workers run, which follow the worker's clock (one logged notice).
`is_due`, `remaining_estimate` and `now` answer as Celery's beat would ask them, from the
same occurrences (`nowfun` is called there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from hare.errors import ConfigurationError, NotSupportedError
from hare.periodic.cron import _DAYS, _HOURS, _MINUTES, _MONTHS, _WEEKDAYS, _Field
from hare.periodic.schedules import Cron, CrontabField, Interval, Schedule, every, from_crontab
from hare_compat import _state

if TYPE_CHECKING:
    from hare_compat.app.base import Celery

__all__ = (
    "BaseSchedule",
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedstate",
    "schedule",
    "solar",
    "to_hare",
)

logger = logging.getLogger("hare_compat.schedules")
_noticed_nowfun = False


class ParseException(ConfigurationError):
    """A crontab pattern that cannot be parsed (Celery's name)."""


class schedstate(NamedTuple):
    """`is_due()`'s answer: whether to run now, and in how many seconds to ask again."""

    is_due: bool
    next: float


class ffwd:
    """Stands for Celery's `celery.utils.time.ffwd`, the default of crontab's `ffwd=`:
    hare computes the next occurrence itself and takes no other."""


def _no_other_ffwd(method: str, value: Any) -> None:
    if value is not ffwd:
        raise NotSupportedError(f"crontab.{method}(ffwd=)", "hare computes occurrences itself")


class crontab_parser:
    """Celery's parser of one crontab field: `crontab_parser(60).parse("*/15")` is
    `{0, 15, 30, 45}`; `crontab_parser(31, 1)` for days of month, `(12, 1)` for months."""

    ParseException = ParseException

    def __init__(self, max_: int = 60, min_: int = 0) -> None:
        self.max_ = max_
        self.min_ = min_
        known = {(f.low, f.last + 1 - f.low): f for f in (_MINUTES, _HOURS, _DAYS, _MONTHS)}
        known[(0, 7)] = _WEEKDAYS
        self._field = known.get((min_, max_)) or _Field("field", min_, max_ + min_ - 1)

    def parse(self, spec: str) -> set[int]:
        if any(not part for part in spec.split(",")):
            raise ParseException("empty part")
        try:
            return set(self._field.parse(spec, f"crontab field {spec!r}"))
        except ConfigurationError as exc:
            raise ParseException(str(exc)) from None


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

    @property
    def _app(self) -> Any:
        if self.app is not None:
            return self.app
        return _state.get_current_app()

    @property
    def tz(self) -> ZoneInfo:
        """The app's time zone (crontab fields are read in it)."""
        return ZoneInfo(self._app.timezone_name)

    def now(self) -> datetime:
        """`nowfun()`, else the app's current time."""
        now: datetime = (self.nowfun or self._app.now)()
        return now

    def to_local(self, dt: datetime) -> datetime:
        """`dt` as is: hare runs with enable_utc (Celery's default), where Celery does the same."""
        return dt

    def maybe_make_aware(self, dt: datetime, naive_as_utc: bool = True) -> datetime:
        """`dt` in the app's zone; a naive `dt` is read as UTC (else as the app's zone)."""
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC if naive_as_utc else self.tz)
        return dt.astimezone(self.tz)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        raise NotImplementedError()

    def is_due(self, last_run_at: datetime) -> schedstate:
        raise NotImplementedError()


class schedule(BaseSchedule):
    """Every `run_every` (a `timedelta` or seconds)."""

    def __init__(
        self,
        run_every: timedelta | float | None = None,
        relative: bool = False,
        nowfun: Any = None,
        app: Celery | None = None,
    ) -> None:
        # As in Celery, schedule() without run_every can be made; it cannot be used.
        self.run_every: timedelta | None = None
        self._interval: Interval | None = None
        if run_every is not None:
            self.run_every = _as_timedelta(run_every)
            self._interval = every(self.run_every)  # validates: at least 1 s, whole ms
        self.relative = relative
        super().__init__(nowfun=nowfun, app=app)

    def _every(self) -> timedelta:
        if self.run_every is None:
            raise ConfigurationError("schedule() needs run_every")
        return self.run_every

    @property
    def seconds(self) -> float:
        return self._every().total_seconds()

    def to_hare(self, zone: str) -> Schedule:
        if self._interval is None:
            raise ConfigurationError("schedule() needs run_every")
        return self._interval

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """How long until `run_every` after `last_run_at` (rounded down to its resolution
        when `relative`), as Celery's beat computes it."""
        end = self.maybe_make_aware(last_run_at) + self._every()
        if self.relative:
            end = _resolution(end, self._every())
        return end - self.maybe_make_aware(self.now())

    def is_due(self, last_run_at: datetime) -> schedstate:
        """`(True, run_every)` once `run_every` passed since `last_run_at`, else `(False,
        seconds left)`."""
        left = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        return schedstate(True, self.seconds) if left == 0 else schedstate(False, left)

    def __repr__(self) -> str:
        if self.run_every is None:
            return "<freq: None>"
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
    def from_string(cls, crontab: str) -> crontab:
        """`crontab.from_string("0 3 * * mon-fri")`: minute hour dom month dow."""
        fields = crontab.split()
        if len(fields) != 5:
            raise ParseException(f"{crontab!r} needs 5 fields: minute hour dom month dow")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year)

    def to_hare(self, zone: str) -> Schedule:
        return self._build(zone)

    def _next_after(self, moment: datetime) -> datetime:
        zone = self.tz
        return self._build(zone.key).next_after(self.maybe_make_aware(moment)).astimezone(zone)

    def remaining_delta(
        self, last_run_at: datetime, tz: Any = None, ffwd: type = ffwd
    ) -> tuple[datetime, timedelta, datetime]:
        """`(last_run_at, delta, now)`: the next occurrence is `last_run_at + delta`."""
        _no_other_ffwd("remaining_delta", ffwd)
        last_run_at = self.maybe_make_aware(last_run_at)
        return last_run_at, self._next_after(last_run_at) - last_run_at, self.now()

    def remaining_estimate(self, last_run_at: datetime, ffwd: type = ffwd) -> timedelta:
        """How long until the first occurrence after `last_run_at`."""
        _no_other_ffwd("remaining_estimate", ffwd)
        return self._next_after(last_run_at) - self.maybe_make_aware(self.now())

    def is_due(self, last_run_at: datetime) -> schedstate:
        """`(True, seconds to the next one)` when an occurrence after `last_run_at` is due,
        else `(False, seconds to it)`."""
        left = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        if left == 0:
            return schedstate(True, max(self.remaining_estimate(self.now()).total_seconds(), 0))
        return schedstate(False, left)

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
    s: Any, relative: bool = False, app: Celery | None = None
) -> BaseSchedule | None:
    """A number or `timedelta` as a `schedule`; a schedule as is (Celery's helper)."""
    if s is None or isinstance(s, BaseSchedule):
        return s
    return schedule(_as_timedelta(s), relative, app=app)


def _resolution(moment: datetime, delta: timedelta) -> datetime:
    """`moment` rounded down to whole days, hours or minutes, as `delta` is (Celery's
    `delta_resolution`)."""
    seconds = max(delta.total_seconds(), 0)
    if seconds >= 86400:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if seconds >= 3600:
        return moment.replace(minute=0, second=0, microsecond=0)
    if seconds >= 60:
        return moment.replace(second=0, microsecond=0)
    return moment


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
