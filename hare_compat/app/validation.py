"""The checks on Celery settings: each value the user set, a mix of old and new names,
names that look like settings but are none, and Celery 3 names in use.

A mixin of `hare_compat.app.conf.Settings`, kept apart because it is one concept: what is
checked when the configuration is first read (each value against `hare_compat.app.support`
through `hare_compat.app.mapping.check`) and the notices it logs, once per app.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from hare_compat.app.defaults import DEFAULTS, NEW_TO_OLD, OLD_TO_NEW
from hare_compat.app.loader import source_keys
from hare_compat.app.mapping import check
from hare_compat.exceptions import CDeprecationWarning, ImproperlyConfigured

if TYPE_CHECKING:
    from hare_compat.app.conf import _State

__all__ = ("SettingsValidation",)

logger = logging.getLogger("hare_compat.conf")

_NAMESPACES = {name.partition("_")[0] for name in DEFAULTS}
_MIXED = """Cannot mix new and old setting keys, please rename the following settings to the \
{kind} format:

{renames}"""


class SettingsValidation:
    """`validate`, `notice` and `maybe_warn_deprecated_settings` of the settings."""

    _state: _State

    if TYPE_CHECKING:

        def canonical(self, key: str) -> str: ...

        def find(self, key: str) -> tuple[bool, Any, str]: ...

    @property
    def deprecated_settings(self) -> set[str]:
        """The Celery 3 names in use (Celery's `conf.deprecated_settings`)."""
        return {key for key in self._present_keys() if key in OLD_TO_NEW}

    def maybe_warn_deprecated_settings(self) -> bool:
        """Warn (`CDeprecationWarning`) about Celery 3 names in use; whether there were any."""
        old = sorted(self.deprecated_settings)
        for key in old:
            warnings.warn(
                CDeprecationWarning(
                    f"The {key!r} setting is deprecated and scheduled for removal in Celery "
                    f"6.0.0. Use the {OLD_TO_NEW[key]} instead"
                ),
                stacklevel=2,
            )
        return bool(old)

    def notice(self, name: str, text: str) -> None:
        """Log `text` about setting `name`, once per app."""
        if name not in self._state.noticed:
            self._state.noticed.add(name)
            logger.info("hare_compat: %s", text)

    def _present_keys(self) -> set[str]:
        state = self._state
        keys = set(state.changes)
        if state.source is not None:
            keys.update(source_keys(state.source))
        return keys

    def validate(self) -> None:
        """Check every setting the user set (and refuse a mix of old and new names)."""
        present = self._present_keys()
        if not self._state.namespace:
            self._refuse_mixing(present - self._state.auto)
        for name in DEFAULTS:
            found, value, spelled = self.find(name)
            if found:
                check(name, spelled, value, self.notice)
        self._notice_unknown(present)

    def _refuse_mixing(self, have: set[str]) -> None:
        new = {key for key in have if key in DEFAULTS}
        old = {key for key in have if key in OLD_TO_NEW}
        if not new or not old:
            return
        if len(old) > len(new):  # mostly old names: the new ones are the odd ones out
            kind, convert, left = "old", NEW_TO_OLD, new
        else:
            kind, convert, left = "new", OLD_TO_NEW, old
        renames = [
            f"{key:<36} -> {convert[key]}" for key in sorted(left) if convert[key] not in have
        ]
        if renames:
            raise ImproperlyConfigured(_MIXED.format(kind=kind, renames="\n".join(renames)))

    def _notice_unknown(self, present: set[str]) -> None:
        """Log names that look like settings but are none (typos, a forgotten namespace)."""
        namespace = self._state.namespace
        for key in sorted(present):
            if self.canonical(key) in DEFAULTS:
                continue
            bare = key.lower()
            if namespace and bare.startswith(namespace.lower() + "_"):
                self.notice(key, f"{key} is not a Celery setting; ignored")
            elif not namespace and key.isupper() and bare.removeprefix("celery_") in DEFAULTS:
                self.notice(key, f"{key} is read only with namespace='CELERY'; ignored")
            elif key.islower() and key.partition("_")[0] in _NAMESPACES:
                self.notice(key, f"{key} is not a Celery setting; ignored")
