# mypy: allow-untyped-decorators
"""A Celery app's pool on hare: the `worker_*` settings `hare worker` takes as its defaults, and
the worker-lost task options (`retry_on_worker_lost`, `reject_on_worker_lost`, per task or
from `task_*_on_worker_lost`) as hare's task options."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hare.errors import ConfigurationError, WorkerLostError
from hare.task import TaskOptions
from hare_compat import Celery, Task
from hare_compat.exceptions import WorkerLostError as CompatWorkerLostError


def _app(**settings: Any) -> Celery:
    return Celery("pool", broker="memory://", set_as_current=False, **settings)


def _options(app: Celery, name: str) -> TaskOptions:
    return app.__hare_app__().tasks[name].options


# -- worker_options: what hare worker runs when its command line does not say ----------------


def test_celery_s_defaults_propose_prefork_with_a_child_per_cpu() -> None:
    options = _app().worker_options()
    assert options == {"queues": ["celery"], "pool": "prefork", "pool_start_method": "fork"}
    assert "concurrency" not in options  # hare worker then runs a child per CPU, as Celery


@pytest.mark.parametrize(
    ("setting", "pool"),
    [
        ("prefork", "prefork"),
        ("processes", "prefork"),  # Celery's alias of its prefork pool
        ("threads", "threads"),
        (" Solo ", "solo"),
    ],
)
def test_worker_pool_proposes_hare_s_pool_of_that_name(setting: str, pool: str) -> None:
    assert _app(worker_pool=setting).worker_options()["pool"] == pool


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("gevent", "setting worker_pool='gevent': hare does not monkey-patch"),
        ("eventlet", "setting worker_pool='eventlet': hare does not monkey-patch"),
        ("custom", "not a custom pool class: set worker_pool to one of them"),
        ("myproject.pools:Pool", "setting worker_pool='myproject.pools:Pool'"),
    ],
)
def test_a_pool_hare_has_not_is_refused_naming_the_setting(setting: str, words: str) -> None:
    app = _app(worker_pool=setting)
    app.conf.load()  # a client does not run the pool: configuring it is fine
    with pytest.raises(ConfigurationError, match=words.replace("(", r"\(")):
        app.worker_options()


def test_the_children_s_settings_are_proposed_in_celery_s_units() -> None:
    options = _app(
        worker_concurrency=4,
        worker_max_tasks_per_child=100,
        worker_max_memory_per_child="200000",  # KiB, as Celery; text as from the environment
        worker_pool_start_method="spawn",
    ).worker_options()
    assert {k: v for k, v in options.items() if k != "queues"} == {
        "pool": "prefork",
        "concurrency": 4,
        "max_tasks_per_child": 100,
        "max_memory_per_child": 200000,
        "pool_start_method": "spawn",
    }
    # None and 0 are Celery's "no limit": nothing is proposed.
    none = _app(worker_max_tasks_per_child=0, worker_max_memory_per_child=None).worker_options()
    assert "max_tasks_per_child" not in none and "max_memory_per_child" not in none


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("worker_max_tasks_per_child", -5),
        ("worker_max_memory_per_child", "lots"),
        ("worker_max_tasks_per_child", True),
        ("worker_pool_start_method", "vfork"),
    ],
)
def test_a_bad_child_setting_is_refused_naming_it(setting: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"setting {setting}={value!r}"):
        _app(**{setting: value}).worker_options()


def test_the_pool_settings_log_no_notice(caplog: pytest.LogCaptureFixture) -> None:
    """They are read by hare worker now: a notice saying they have no effect would be wrong."""
    caplog.set_level(logging.INFO, logger="hare_compat.conf")
    _app(
        worker_pool="threads",
        worker_max_tasks_per_child=10,
        worker_max_memory_per_child=1000,
        worker_pool_start_method="spawn",
    ).conf.load()
    assert [r.getMessage() for r in caplog.records if "worker_" in r.getMessage()] == []


# -- worker lost ---------------------------------------------------------------------------------


def test_worker_lost_options_reach_hare_s_task_options() -> None:
    app = _app()

    @app.task
    def plain() -> None: ...

    @app.task(reject_on_worker_lost=True)
    def requeued() -> None: ...

    @app.task(retry_on_worker_lost=True, reject_on_worker_lost=True)
    def retried() -> None: ...

    class Careful(Task):
        retry_on_worker_lost = True

    @app.task(base=Careful)
    def inherited() -> None: ...

    lost = {
        name: (_options(app, f"{__name__}.{name}").retry_on_worker_lost,
               _options(app, f"{__name__}.{name}").reject_on_worker_lost)
        for name in ("plain", "requeued", "retried", "inherited")
    }  # fmt: skip
    assert lost == {
        "plain": (False, False),  # neither: the task fails with WorkerLostError
        "requeued": (False, True),
        "retried": (True, True),  # both reach hare, where retry wins
        "inherited": (True, False),
    }


def test_the_settings_are_every_task_s_default_and_a_task_s_own_value_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = _app(task_reject_on_worker_lost=True, task_retry_on_worker_lost=True)

    @app.task
    def defaults() -> None: ...

    @app.task(reject_on_worker_lost=False, retry_on_worker_lost=False)
    def own() -> None: ...

    first = _options(app, f"{__name__}.defaults")
    second = _options(app, f"{__name__}.own")
    assert (first.retry_on_worker_lost, first.reject_on_worker_lost) == (True, True)
    assert (second.retry_on_worker_lost, second.reject_on_worker_lost) == (False, False)
    # Honoured now, so neither the options nor the settings log "has no effect".
    assert not [r for r in caplog.records if "on_worker_lost" in r.getMessage()]


def test_a_retry_on_worker_lost_keeps_the_task_s_max_retries_and_delay_as_celery() -> None:
    """Celery 5.7 retries a lost task "the same way retry would": its max_retries and
    default_retry_delay apply, so it is not retried forever. Other tasks keep a policy that
    never retries by itself (hare_compat's self.retry decides)."""
    app = _app()

    @app.task(retry_on_worker_lost=True, max_retries=2, default_retry_delay=5)
    def bounded() -> None: ...

    @app.task(retry_on_worker_lost=True)
    def celery_s_defaults() -> None: ...

    @app.task(max_retries=2, default_retry_delay=5)
    def not_lost() -> None: ...

    def policy(name: str) -> tuple[int | None, float]:
        retry = _options(app, f"{__name__}.{name}").retry
        return retry.max_retries, retry.default_retry_delay

    assert policy("bounded") == (2, 5.0)
    assert policy("celery_s_defaults") == (3, 180.0)
    assert policy("not_lost")[0] is None


def test_celery_s_worker_lost_error_is_hare_s() -> None:
    assert CompatWorkerLostError is WorkerLostError
