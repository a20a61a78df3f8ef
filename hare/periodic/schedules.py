"""Schedules of periodic tasks: when the occurrences after a moment fall.

Every pod must compute the same occurrences without talking to the others (DESIGN.md §6,
research/delays.md §4.4), so occurrences are a function of the schedule alone:

* `every(minutes=5)` is an `Interval`: the instants `anchor + k·period` for every integer k,
  anchored by default at the Unix epoch, not at start-up;
* `cron("0 3 * * 1-5", tz="Europe/Berlin")` is a `Cron`: wall-clock times in a time zone,
  with the daylight-saving rules described in `cron`; `from_crontab(...)` takes Celery's
  `crontab(...)` arguments.

Both answer `next_after(moment)` (aware in, UTC out, strictly after), and carry `canonical`,
the text that identifies the schedule (e.g. `every:300s@0`, `cron:0 3 * * 1-5;tz=Europe/Berlin`),
and its `spec_hash`, which the tick compares to notice a changed schedule on deploy;
`parse_canonical` turns the text back into the schedule, so a tick describes itself.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, final

from hare.core.calls import positive_seconds
from hare.core.topology import validate_queue_name
from hare.errors import ConfigurationError
from hare.periodic.cron import Cron, cron

__all__ = (
    "EPOCH",
    "Cron",
    "CrontabField",
    "Interval",
    "Periodic",
    "Schedule",
    "cron",
    "every",
    "from_crontab",
    "parse_canonical",
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MINIMUM_PERIOD = timedelta(seconds=1)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """Occurrences every `period`, at `anchor + k·period` for every integer k.

    Build it with `every()`. `period` is at least a second and, like `anchor`, whole
    milliseconds (ticks carry occurrences as epoch milliseconds).

    >>> every(minutes=5).canonical, every(minutes=5, anchor=EPOCH + timedelta(minutes=2)).canonical
    ('every:300s@0', 'every:300s@120000')
    """

    period: timedelta
    anchor: datetime = EPOCH

    def __post_init__(self) -> None:
        if not isinstance(self.period, timedelta):
            raise ConfigurationError(f"an interval needs a timedelta period, got {self.period!r}")
        if self.period < _MINIMUM_PERIOD:
            raise ConfigurationError(f"an interval must be at least 1 s, got {self.period}")
        if self.period % _MILLISECOND:
            raise ConfigurationError(f"an interval must be whole milliseconds, got {self.period}")
        if not isinstance(self.anchor, datetime) or _is_naive(self.anchor):
            raise ConfigurationError(f"an interval's anchor must be aware, got {self.anchor!r}")
        if (self.anchor - EPOCH) % _MILLISECOND:
            raise ConfigurationError(f"an anchor must be whole milliseconds, got {self.anchor}")
        object.__setattr__(self, "anchor", self.anchor.astimezone(UTC))

    @property
    def canonical(self) -> str:
        """The text that identifies this schedule: period, then anchor in epoch ms."""
        milliseconds = self.period // _MILLISECOND
        period = f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
        return f"every:{period}@{(self.anchor - EPOCH) // _MILLISECOND}"

    @property
    def spec_hash(self) -> str:
        """The first 16 hex digits of the SHA-256 of `canonical`."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:16]

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (aware), in UTC.

        >>> every(minutes=5).next_after(datetime(2025, 1, 1, 12, 10, tzinfo=UTC))
        datetime.datetime(2025, 1, 1, 12, 15, tzinfo=datetime.timezone.utc)
        """
        if _is_naive(moment):
            raise ConfigurationError(f"next_after needs an aware datetime, got {moment!r}")
        # timedelta // timedelta is exact integer floor division, in whole microseconds.
        periods = (moment - self.anchor) // self.period + 1
        return self.anchor + periods * self.period


Schedule = Interval | Cron


def every(
    period: timedelta | float | None = None,
    /,
    *,
    days: float = 0,
    hours: float = 0,
    minutes: float = 0,
    seconds: float = 0,
    anchor: datetime | None = None,
) -> Interval:
    """An interval schedule: `every(minutes=5)`, or Celery-style `every(timedelta(...))`.

    The period is either the one positional argument (a `timedelta`, or seconds as a number,
    which is what Celery's `beat_schedule` accepts) or the sum of the keywords. Occurrences
    are `anchor + k·period`; the anchor defaults to the Unix epoch so that every pod computes
    the same instants (`every(hours=1)` fires on the hour, UTC).

    Raises `ConfigurationError` for a period under 1 s or not in whole milliseconds, for a
    naive anchor, and for a positional period given together with keywords.
    """
    parts = (days, hours, minutes, seconds)
    if period is not None and any(parts):
        raise ConfigurationError("every() takes a period or days/hours/minutes/seconds, not both")
    try:
        if isinstance(period, timedelta):
            length = period
        elif period is not None:
            if isinstance(period, bool) or not isinstance(period, int | float):
                raise TypeError(period)
            length = timedelta(seconds=period)
        else:
            length = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (TypeError, ValueError, OverflowError):
        given = parts if period is None else period
        raise ConfigurationError(f"every() needs a finite duration, got {given!r}") from None
    return Interval(period=length, anchor=EPOCH if anchor is None else anchor)


#: What Celery's `crontab()` takes for each field: a pattern, one value, or a set of values.
CrontabField = str | int | Iterable[int]


def from_crontab(
    minute: CrontabField = "*",
    hour: CrontabField = "*",
    day_of_week: CrontabField = "*",
    day_of_month: CrontabField = "*",
    month_of_year: CrontabField = "*",
    tz: str = "UTC",
) -> Cron:
    """The schedule of Celery's `crontab(...)` with the same arguments, in zone `tz`.

    Each field is a pattern (`"*/15"`, `"mon-fri"`), one value, or an iterable of values.
    As in Celery a day must match day of month AND day of week (`day_or=False`); `tz` is
    what Celery's `timezone` setting names. Note Celery's defaults: `from_crontab(hour=3)`
    runs every minute from 03:00 to 03:59.

    >>> from_crontab(minute=0, hour="*/6", day_of_week="mon-fri").canonical
    'cron:0 */6 * * 1-5;tz=UTC'
    """
    fields = []
    for name, value in (
        ("minute", minute),
        ("hour", hour),
        ("day_of_month", day_of_month),
        ("month_of_year", month_of_year),
        ("day_of_week", day_of_week),
    ):
        items = (
            [value]
            if isinstance(value, str | int) or not isinstance(value, Iterable)
            else list(value)
        )
        if not items or any(
            isinstance(item, bool) or not isinstance(item, str | int) or item == ""
            for item in items
        ):
            raise ConfigurationError(f"crontab() {name}={value!r}: not a pattern or ints")
        # Celery's field patterns are cron field patterns, and Celery tolerates "1, 2".
        fields.append(",".join(str(item).replace(" ", "") for item in items))
    return replace(cron(" ".join(fields), tz=tz), day_or=False)


def parse_canonical(text: str) -> Schedule:
    """The schedule whose `canonical` text is `text` (e.g. a tick's `hare-spec` header).

    >>> parse_canonical("every:300s@0") == every(minutes=5)
    True
    """
    kind, _, body = text.partition(":")
    interval = re.fullmatch(r"(\d+)(s|ms)@(-?\d+)", body)
    if kind == "every" and interval:
        amount, unit, anchor = interval.groups()
        try:
            period = timedelta(milliseconds=int(amount) * (1000 if unit == "s" else 1))
            return Interval(period=period, anchor=EPOCH + int(anchor) * _MILLISECOND)
        except OverflowError:
            raise ConfigurationError(f"schedule {text!r} is out of range") from None
    expression, *options = body.split(";")
    settings = dict(option.partition("=")[::2] for option in options)
    days = settings.pop("days", "or")
    if kind == "cron" and settings.keys() == {"tz"} and days in ("or", "and"):
        return replace(cron(expression, tz=settings["tz"]), day_or=days == "or")
    raise ConfigurationError(f"not the canonical text of a schedule: {text!r}")


def _is_naive(moment: datetime) -> bool:
    return moment.tzinfo is None or moment.utcoffset() is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Periodic:
    """A schedule and the task call it makes."""

    name: str
    schedule: Schedule
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    overlap: bool = True
    catch_up: bool = False
    #: Seconds after its occurrence a run is discarded if no worker started it (Celery beat's
    #: `options={"expires": ...}`); `None`: never.
    expires: float | None = None
    #: The deploy generation this definition comes from; `None`: this process's own. A pod
    #: that carries on a newer deploy's schedule from its tick keeps that tick's generation,
    #: or its own watchdog would later see "same generation, other spec" and revert it.
    generation: int | None = None

    @classmethod
    def checked(
        cls,
        name: str,
        schedule: Schedule,
        *,
        task: str,
        queue: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        overlap: bool = True,
        catch_up: bool = False,
        expires: float | None = None,
    ) -> Periodic:
        """A registration, its name, schedule, queue and `expires` checked first."""
        if not name or any(c in name for c in "\x00\n"):
            raise ConfigurationError(f"bad schedule name {name!r}")
        if not hasattr(schedule, "next_after") or not hasattr(schedule, "canonical"):
            raise ConfigurationError(f"{schedule!r} is not a schedule: use every(...) or cron(...)")
        return cls(
            name=name,
            schedule=schedule,
            task=task,
            queue=validate_queue_name(queue),
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            overlap=overlap,
            catch_up=catch_up,
            expires=positive_seconds("expires", expires),
        )
