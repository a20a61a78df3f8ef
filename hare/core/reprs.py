"""Bounded reprs of a task's arguments and results for headers, logs and events: Celery's
`argsrepr` / `kwargsrepr` limits, never raising.

Kept apart from the protocol because `_ArgsRepr` extends the standard library's `reprlib.Repr`:
the optional compiled build (`setup.py`) compiles the protocol, and a compiled class cannot
extend an interpreted one.
"""

from __future__ import annotations

import reprlib
from itertools import islice
from typing import Any

__all__ = ("REPR_LIMIT", "safe_repr")

#: Celery's argsrepr_maxsize / kwargsrepr_maxsize.
REPR_LIMIT = 1024
_REPR_LIMIT = REPR_LIMIT


class _ArgsRepr(reprlib.Repr):
    """reprlib with Celery-sized limits that, like Celery's saferepr, keeps dict order."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
            for key, value in islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_REPR = _ArgsRepr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = _REPR_LIMIT
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 256


def _is_plain(value: object) -> bool:
    if type(value) is str:
        return len(value) <= _REPR_LIMIT
    if type(value) is int:
        return value.bit_length() <= 256
    return value is None or type(value) is float or type(value) is bool


def _is_plain_item(item: tuple[object, object]) -> bool:
    return _is_plain(item[0]) and _is_plain(item[1])


def safe_repr(value: object) -> str:
    """Repr `value` for logs: bounded in size, never raising."""
    # Flat args of small scalars (the common case) take C repr, ten times faster than reprlib.
    if type(value) is tuple and len(value) <= 64 and all(map(_is_plain, value)):
        text = repr(value)
    elif type(value) is dict and len(value) <= 64 and all(map(_is_plain_item, value.items())):
        text = repr(value)
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # reprlib guards only plain objects; a huge int or a nested repr fails
            text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
