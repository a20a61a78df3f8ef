"""Cron schedules: five-field expressions evaluated on the wall clock of a time zone.

`cron("0 3 * * 1-5", tz="Europe/Berlin")` runs at 03:00 Berlin time on weekdays. The syntax
is Vixie cron's, as croniter reads it: `*`, values, ranges `a-b`, steps `*/n`, `a-b/n` and
`a/n` (`a` to the field's end), lists `a,b`, names `jan`..`dec` and `sun`..`sat` (also spelt
out, any case), day-of-week 0-7 with 0 and 7 both Sunday, and the nicknames `@hourly`,
`@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`. A range whose end is
below its start wraps around (`fri-mon`, `22-2`), its steps continuing across the wrap, as in
Celery's crontab.

Day of month and day of week (croniter's rule, which is Vixie's without its bug):

* When both are restricted a day matches if EITHER does: `0 0 13 * fri` runs on every 13th
  and on every Friday. A field is unrestricted when it is written `*`, or when it covers every
  value and the other day field contains a `*` (so `1-31` with `*/2` means `*` with `*/2`).
  Vixie cron also calls `*/2` unrestricted (anything starting with `*`); croniter and hare
  treat it as restricted.
* Celery's `crontab` requires BOTH instead (`day_or=False`; `hare.periodic.schedules.from_crontab`).

Daylight saving time. Call an expression *hourly* when its hour field is every hour:

* A wall-clock time skipped by a spring-forward gap runs at the first instant after the gap
  (02:30 on Berlin's spring-forward Sunday runs at 03:00 CEST; several times in the gap run
  once), so a daily job is never lost. An hourly expression skips it: it fires every hour of
  real time anyway. Both are croniter's rules.
* A wall-clock time that a fall-back repeats runs once, at its first occurrence, so a daily job
  does not run twice; an hourly expression runs at both, again once per hour of real time.
  croniter runs every expression at both occurrences.

Vixie cron does the same for a job whose minute and hour are fixed, but treats a job as a
"wildcard" one (skipped in a gap, run in both passes) as soon as its minute or hour field
starts with `*`; hare, like croniter, looks at the hour field only.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hare.errors import ConfigurationError

__all__ = ("Cron", "cron")

_NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
).split()
_DAY_NAMES = "sunday monday tuesday wednesday thursday friday saturday".split()


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int  # the highest value written; day-of-week accepts 7 for Sunday
    names: tuple[str, ...] = ()  # names[i] is value low + i

    @property
    def last(self) -> int:
        """The highest value of the cycle (6 for day-of-week, where 7 is 0 again)."""
        return 6 if self.high == 7 else self.high

    def value(self, token: str, where: str) -> int:
        lowered = token.lower()
        for i, name in enumerate(self.names):
            if lowered in (name, name[:3]):
                return self.low + i
        if not token.isdigit():
            kind = "a number or a name" if self.names else "a number"
            raise ConfigurationError(f"{where}: {self.name} {token!r} is not {kind}")
        if not self.low <= int(token) <= self.high:
            raise ConfigurationError(
                f"{where}: {self.name} {int(token)} is out of range {self.low}-{self.high}"
            )
        return int(token)

    def parse(self, text: str, where: str) -> tuple[int, ...]:
        """The values of one field's text, e.g. `1-5,*/15` (unsorted, may repeat)."""
        values: list[int] = []
        for part in text.split(","):
            base, slash, step_text = part.partition("/")
            if slash and (not step_text.isdigit() or int(step_text) == 0):
                raise ConfigurationError(f"{where}: {self.name} step in {part!r} is not positive")
            step = int(step_text) if slash else 1
            if base == "*":
                start, end = self.low, self.last
            elif "-" in base[1:]:
                first, _, last = base.partition("-")
                start, end = self.value(first, where), self.value(last, where)
            else:
                start = self.value(base, where)
                end = self.last if slash else start
            size = self.last - self.low + 1
            if start > self.last:  # day-of-week 7 is Sunday, 0 again
                start, end = start - size, end - size if end > self.last else end
            if start > end:  # a range that wraps around: the steps continue across the end
                end += size
            values.extend(self.low + (v - self.low) % size for v in range(start, end + 1, step))
        return tuple(values)


_MINUTES = _Field("minute", 0, 59)
_HOURS = _Field("hour", 0, 23)
_DAYS = _Field("day-of-month", 1, 31)
_MONTHS = _Field("month", 1, 12, tuple(_MONTH_NAMES))
_WEEKDAYS = _Field("day-of-week", 0, 7, tuple(_DAY_NAMES))
_FIELDS = (_MINUTES, _HOURS, _DAYS, _MONTHS, _WEEKDAYS)


_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: A satisfiable expression matches within 8 years (Feb 29 skips 2100), or within 40 for
#: Celery's Feb 29 AND a weekday; 400 years is a whole Gregorian cycle.
_SEARCH_YEARS = 400


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Cron:
    """A cron schedule: the wall-clock minutes of zone `tz` whose fields match.

    Build it with `cron()` or `schedules.from_crontab()`. `days` and `weekdays` are `None`
    when unrestricted (`*`), and weekdays count from 0 = Sunday. With both restricted a day
    matches if either does (`day_or=True`, cron) or only if both do (`day_or=False`, Celery).

    >>> nightly = cron("0 3 * * 1-5", tz="Europe/Berlin")
    >>> nightly.next_after(datetime(2025, 3, 28, 12, 0, tzinfo=UTC))  # a Friday; CEST from Sunday
    datetime.datetime(2025, 3, 31, 1, 0, tzinfo=datetime.timezone.utc)
    >>> nightly.canonical
    'cron:0 3 * * 1-5;tz=Europe/Berlin'
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...] | None = None
    months: tuple[int, ...] = tuple(range(1, 13))
    weekdays: tuple[int, ...] | None = None
    tz: str = "UTC"
    day_or: bool = True
    _zone: ZoneInfo = field(init=False, compare=False)

    def __post_init__(self) -> None:
        names = ("minutes", "hours", "days", "months", "weekdays")
        for name, spec in zip(names, _FIELDS, strict=True):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, _normalize(values, spec))
        self._normalize_days()
        if self.days is not None and (self.weekdays is None or not self.day_or):
            if not any(self.days[0] <= _LONGEST_MONTH[month - 1] for month in self.months):
                raise ConfigurationError(
                    f"day-of-month {_render(self.days, _DAYS)} never occurs in "
                    f"month {_render(self.months, _MONTHS)}"
                )
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
            raise ConfigurationError(f"unknown time zone {self.tz!r}") from None
        object.__setattr__(self, "_zone", zone)

    def _normalize_days(self) -> None:
        """Spell each meaning one way, so equal schedules compare (and hash) equal."""
        days, weekdays = self.days, self.weekdays
        either = days is not None and weekdays is not None and self.day_or
        if either and (len(days or ()) == 31 or len(weekdays or ()) == 7):
            days = weekdays = None  # one side alone already matches every day
        elif not either:  # combined with AND, a side with every value restricts nothing
            days = None if days is not None and len(days) == 31 else days
            weekdays = None if weekdays is not None and len(weekdays) == 7 else weekdays
        object.__setattr__(self, "days", days)
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "day_or", self.day_or or days is None or weekdays is None)

    def __repr__(self) -> str:
        extra = "" if self.day_or else ", day_or=False"
        return f"Cron({self.expression!r}, tz={self.tz!r}{extra})"

    @property
    def expression(self) -> str:
        """The five fields, normalized: numbers, ranges, steps, and `*` where unrestricted."""
        fields = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        return " ".join(_render(values, spec) for values, spec in zip(fields, _FIELDS, strict=True))

    @property
    def canonical(self) -> str:
        """The text that identifies this schedule (a changed one means a changed spec)."""
        return f"cron:{self.expression};tz={self.tz}" + ("" if self.day_or else ";days=and")

    @property
    def spec_hash(self) -> str:
        """The first 16 hex digits of the SHA-256 of `canonical`."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:16]

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (aware), in UTC.

        >>> hourly = cron("30 * * * *", tz="Europe/Berlin")  # Berlin falls back at 03:00
        >>> hourly.next_after(datetime(2025, 10, 26, 0, 30, tzinfo=UTC))  # 02:30 CEST
        datetime.datetime(2025, 10, 26, 1, 30, tzinfo=datetime.timezone.utc)
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ConfigurationError(f"next_after needs an aware datetime, got {moment!r}")
        local = moment.astimezone(self._zone)
        wall = local.replace(tzinfo=None, second=0, microsecond=0)
        if local.fold == 0:
            # In the first pass of a repeated hour the second pass is still ahead, and with it
            # wall-clock times earlier than this one: start the search that much earlier.
            wall -= max(_ZERO, _offset(local) - _offset(local.replace(fold=1)))
        earliest_repeat: datetime | None = None
        while True:
            wall = self._next_wall(wall)
            first, repeat = self._instants(wall)
            if repeat is not None and repeat > moment:
                earliest_repeat = min(repeat, earliest_repeat or repeat)
            # First passes come in wall-clock order; a repeat comes after every first pass
            # of its repeated hour and before anything later, so this is the earliest.
            if first is not None and first > moment:
                return min(first, earliest_repeat or first)
            wall += _MINUTE

    def _instants(self, wall: datetime) -> tuple[datetime | None, datetime | None]:
        """When wall-clock time `wall` fires: its first instant, and a repeat after a fall-back."""
        early = wall.replace(tzinfo=self._zone).astimezone(UTC)
        late = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        hourly = len(self.hours) == 24
        if early <= late:  # an ordinary time, or one that a fall-back repeats (late)
            return early, (late if hourly and late != early else None)
        # Skipped by a spring-forward gap: fold=1 reads it with the offset after the change,
        # so late < change <= early.
        return (None if hourly else _transition(self._zone, late, early)), None

    def _next_wall(self, wall: datetime) -> datetime:
        """The first wall-clock minute at or after `wall` (naive, whole minutes) that matches."""
        year, month, day, hour, minute = wall.year, wall.month, wall.day, wall.hour, wall.minute
        while year <= wall.year + _SEARCH_YEARS:
            if month not in self.months:
                i = bisect_left(self.months, month)
                year, month = (year, self.months[i]) if i < len(self.months) else (year + 1, 1)
                day, hour, minute = 1, 0, 0
                continue
            found_day = self._next_day(year, month, day)
            if found_day is None:
                year, month = (year, month + 1) if month < 12 else (year + 1, 1)
                day, hour, minute = 1, 0, 0
                continue
            if found_day != day:
                day, hour, minute = found_day, 0, 0
            found_hour = _next_value(self.hours, hour, 23)
            if found_hour is None:
                day, hour, minute = day + 1, 0, 0
                continue
            if found_hour != hour:
                hour, minute = found_hour, 0
            found_minute = _next_value(self.minutes, minute, 59)
            if found_minute is None:
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, found_minute)
        raise ConfigurationError(f"{self!r} never matches")  # __post_init__ rules this out

    def _next_day(self, year: int, month: int, day: int) -> int | None:
        """The first matching day of the month from `day` on, if any."""
        last = monthrange(year, month)[1]
        if day > last:
            return None
        by_date = day if self.days is None else _next_value(self.days, day, last)
        if self.weekdays is None:
            return by_date
        weekday = (date(year, month, day).weekday() + 1) % 7
        ahead = min((wanted - weekday) % 7 for wanted in self.weekdays)
        by_weekday = day + ahead if day + ahead <= last else None
        if self.days is None:
            return by_weekday
        if self.day_or:
            return min((d for d in (by_date, by_weekday) if d is not None), default=None)
        while by_date is not None and (date(year, month, by_date).weekday() + 1) % 7 not in (
            self.weekdays
        ):
            by_date = _next_value(self.days, by_date + 1, last)
        return by_date


def _normalize(values: Iterable[int], spec: _Field) -> tuple[int, ...]:
    numbers = list(values)
    if not numbers:
        raise ConfigurationError(f"{spec.name} has no values")
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigurationError(f"{spec.name} {number!r} is not an int")
        if not spec.low <= number <= spec.high:
            raise ConfigurationError(f"{spec.name} {number} is out of range {spec.low}-{spec.high}")
    return tuple(sorted({n % 7 if spec is _WEEKDAYS else n for n in numbers}))


def _render(values: tuple[int, ...] | None, spec: _Field) -> str:
    if values is None or len(values) == spec.last - spec.low + 1:
        return "*"
    if len(values) >= 2:
        step = values[1] - values[0]
        if step > 1 and values == tuple(range(values[0], values[-1] + 1, step)):
            if values[0] == spec.low and values[-1] + step > spec.last:
                return f"*/{step}"
            if len(values) >= 3:
                return f"{values[0]}-{values[-1]}/{step}"
    runs: list[str] = []
    start = previous = values[0]
    for value in (*values[1:], None):
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(runs)


def _next_value(values: tuple[int, ...], at_least: int, at_most: int) -> int | None:
    i = bisect_left(values, at_least)
    return values[i] if i < len(values) and values[i] <= at_most else None


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or _ZERO


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] at which `zone` changes its offset (bisection, 1 s)."""
    offset = _offset(before.astimezone(zone))
    while after - before > _SECOND:
        middle = before + _SECOND * ((after - before) // _SECOND // 2)
        if _offset(middle.astimezone(zone)) == offset:
            before = middle
        else:
            after = middle
    return after


def cron(expression: str, tz: str = "UTC") -> Cron:
    """Parse a five-field cron expression (or a nickname) evaluated in time zone `tz`.

    Raises `ConfigurationError` naming the field and the value for a bad expression, and for
    an unknown zone or an expression that can never match (`0 0 30 2 *`).
    """
    where = f"cron expression {expression!r}"
    texts = _NICKNAMES.get(expression.strip().lower(), expression).split()
    if len(texts) != 5:
        raise ConfigurationError(
            f"{where} has {len(texts)} fields; expected 5: "
            "minute hour day-of-month month day-of-week"
        )
    fields = [spec.parse(text, where) for text, spec in zip(texts, _FIELDS, strict=True)]
    # croniter's rule for an unrestricted day field (see the module docstring).
    dom, dow = texts[2], texts[4]
    open_dom = "*" in dom.split(",") or (len(set(fields[2])) == 31 and "*" in dow)
    open_dow = "*" in dow.split(",") or (len(set(fields[4])) == 7 and "*" in dom)
    try:
        return Cron(
            minutes=fields[0],
            hours=fields[1],
            days=None if open_dom else fields[2],
            months=fields[3],
            weekdays=None if open_dow else fields[4],
            tz=tz,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
