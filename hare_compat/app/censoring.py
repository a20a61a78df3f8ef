"""Hiding secrets in a table of settings, as Celery's `app.conf.table(censored=True)` does:
passwords, keys and tokens by their setting's name, and the password in a URL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hare.core.settings import mask_url

__all__ = ("censored",)

#: Setting names whose values `table()` and `humanize()` hide, as Celery's.
_HIDDEN = re.compile("API|TOKEN|KEY|SECRET|PASS|PROFANITIES_LIST|SIGNATURE|DATABASE", re.I)
_MASK = "*" * 8


def censored(table: Mapping[str, Any]) -> dict[str, Any]:
    def censor(key: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            return censored(value)
        if _HIDDEN.search(key):
            return _MASK
        if isinstance(value, str) and "://" in value and ("url" in key or "backend" in key):
            return mask_url(value)
        return value

    return {key: censor(key, value) for key, value in table.items()}
