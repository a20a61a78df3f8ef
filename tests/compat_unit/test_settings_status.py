"""Every setting of the installed Celery is known to hare_compat with a status, and a status
is kept: a refused setting raises `NotSupportedError` naming it for any value but Celery's
default, never silently ignored."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hare.errors import NotSupportedError
from hare_compat import Celery
from hare_compat.app.defaults import DEFAULTS
from hare_compat.app.support import RULES, rule_for

defaults = pytest.importorskip("celery.app.defaults")

#: Settings Celery 5.7 added, with the status hare_compat gives each.
CELERY_5_7 = {
    "task_retry_on_worker_lost": "compat",
    "task_acks_on_failure": "hare",
    "task_acks_on_timeout": "hare",
    "worker_pool_start_method": "worker",
    "event_queue_exclusive": "notice",
    "control_queue_exclusive": "notice",
    "beat_enable_remote_control": "notice",
    "result_chord_expires": "refused",
    "result_failure_expires": "refused",
}


def _app(name: str, value: Any) -> Celery:
    settings: dict[str, Any] = {name: value}
    return Celery("status", broker="memory://", set_as_current=False, **settings)


def _names_of_installed_celery() -> set[str]:
    names = set(defaults.DEFAULTS)
    for namespace, options in defaults.NAMESPACES.items():
        if isinstance(options, dict):
            names.update(f"{namespace}_{key}" for key in options)
        else:
            names.add(namespace)
    return names


def test_every_setting_of_the_installed_celery_has_a_status() -> None:
    unknown = sorted(n for n in _names_of_installed_celery() if rule_for(n) is None)
    assert unknown == [], "add these to hare_compat.app.defaults and .support"
    assert set(DEFAULTS) == set(defaults.DEFAULTS)


def test_celery_5_7_settings_have_their_status() -> None:
    assert {name: RULES[name].status for name in CELERY_5_7} == CELERY_5_7


def _other_than(value: Any) -> Any:
    """A value that is not Celery's default `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 7
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, dict):
        return {**value, "other": 1}
    if isinstance(value, list | tuple):
        return [*value, "other"]
    return "other"


@pytest.mark.parametrize("name", sorted(n for n, r in RULES.items() if r.status == "refused"))
def test_a_refused_setting_is_refused_by_name(name: str) -> None:
    _app(name, DEFAULTS[name]).conf.load()  # Celery's default is accepted
    app = _app(name, _other_than(DEFAULTS[name]))
    with pytest.raises(NotSupportedError, match=rf"setting {name}="):
        app.conf.load()


@pytest.mark.parametrize("name", sorted(n for n, r in RULES.items() if r.status == "notice"))
def test_a_notice_setting_says_so(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hare_compat.conf")
    _app(name, _other_than(DEFAULTS[name])).conf.load()
    assert any(name in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("name", ["task_acks_on_failure", "task_acks_on_timeout"])
def test_acks_on_failure_and_timeout_cannot_be_turned_off(name: str) -> None:
    _app(name, True).conf.load()
    app = _app(name, False)
    with pytest.raises(NotSupportedError, match=name):
        app.conf.load()
