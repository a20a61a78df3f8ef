"""Reducing result rows: per-repetition values, min / median / max, ratios pair by pair.

A figure of one configuration in one repetition is the mean of its rows there (a queue is
filled, and its enqueue measured, once per drain configuration); a figure over the run is the
median over repetitions, shown with the min and max. A ratio is taken within each repetition
and then summarised the same way, so drift of a shared machine between repetitions cancels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
#: `None` as a key: the system's best configuration in each repetition.
BEST = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def per_rep(
    rows: Iterable[Row], measure: str, system: str, key: str | None = BEST, field: str = "value"
) -> dict[int, float]:
    """{rep: value} of one configuration, or of the system's best one (highest `field`)."""
    grouped: dict[tuple[int, str], list[float]] = {}
    for row in rows:
        if row.get("measure") != measure or row.get("system") != system:
            continue
        if key is not BEST and row.get("key") != key:
            continue
        value = _number(row.get(field))
        if value is not None:
            grouped.setdefault((row["rep"], str(row.get("key"))), []).append(value)
    result: dict[int, float] = {}
    for (rep, _), values in grouped.items():
        mean = statistics.fmean(values)
        result[rep] = max(result.get(rep, mean), mean)
    return result


def spread(values: Iterable[float]) -> tuple[float, float, float] | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[0], statistics.median(ordered), ordered[-1]


def ratios(top: dict[int, float], bottom: dict[int, float]) -> list[float]:
    """top / bottom in each repetition both have."""
    return [top[rep] / bottom[rep] for rep in sorted(top) if bottom.get(rep)]


def configs(rows: Iterable[Row], measure: str, system: str) -> list[tuple[str, str]]:
    """(key, label) of a system's configurations for `measure`, in the order they ran."""
    seen: dict[str, str] = {}
    for row in rows:
        if row.get("measure") == measure and row.get("system") == system:
            seen.setdefault(str(row.get("key")), str(row.get("config")))
    return list(seen.items())


#: The order systems are shown in.
ORDER = (
    "raw",
    "raw-classic",
    "hare",
    "hare-classic",
    "celery",
    "celery-native",
    "dramatiq",
    "taskiq",
)


def systems(rows: Iterable[Row], measure: str) -> list[str]:
    """The systems with rows for `measure`, in `ORDER`."""
    seen = {str(row["system"]) for row in rows if row.get("measure") == measure}
    return sorted(seen, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))


def first(rows: Iterable[Row], measure: str, system: str, key: str, field: str) -> list[Any]:
    """`field` of every matching row (e.g. a boolean like `complete`)."""
    return [
        row.get(field)
        for row in rows
        if row.get("measure") == measure and row.get("system") == system and row.get("key") == key
    ]
