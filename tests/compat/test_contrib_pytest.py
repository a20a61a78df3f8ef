"""`hare_compat.contrib.pytest`: a migrated project's own tests, with Celery's fixtures, run a
hare worker inside the test process (in memory, and on the real broker with Redis results)."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

USER_TESTS = """
import logging

import pytest

from hare_compat import shared_task
from hare_compat.signals import task_received
from hare_compat.worker import state as worker_state


@shared_task(name="proj.add")
def add(x, y):
    return x + y


@shared_task(name="proj.boom")
def boom():
    raise ValueError("boom")


@pytest.fixture(scope="session")
def celery_config():
    return CONFIG


def test_the_session_worker_runs_a_task_in_this_process(celery_session_worker, caplog):
    caplog.set_level(logging.INFO)
    received = []
    task_received.connect(lambda request=None, **_: received.append(request.id), dispatch_uid="t")
    try:
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    finally:
        task_received.disconnect(dispatch_uid="t")
    assert received == [result.id]
    assert result.id in worker_state.successful_requests
    lines = [r.getMessage() for r in caplog.records if r.name == "celery.app.trace"]
    assert any(line.startswith(f"Task proj.add[{result.id}] succeeded in ") for line in lines)
    assert celery_session_worker.hostname.startswith("gen")


def test_a_failure_is_read_back_and_not_counted_as_a_success(celery_session_worker):
    result = boom.delay()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=10)
    assert result.id not in worker_state.successful_requests


def test_a_revoked_id_is_seen_in_the_worker_state(celery_session_app, celery_session_worker):
    result = add.apply_async((1, 1), countdown=60)
    result.revoke()
    deadline = __import__("time").monotonic() + 10
    while result.id not in worker_state.revoked:
        assert __import__("time").monotonic() < deadline, "the revoke never reached the worker"
        __import__("time").sleep(0.05)
    worker_state.revoked.discard(result.id)
    assert result.id not in worker_state.revoked


@pytest.mark.celery(task_default_queue="other")
def test_a_mark_overrides_the_configuration(celery_app):
    assert celery_app.conf.task_default_queue == "other"
"""


def _run(pytester: pytest.Pytester, config: str) -> None:
    pytester.makepyfile(test_user=USER_TESTS.replace("CONFIG", config, 1))
    result = pytester.runpytest_subprocess("-p", "hare_compat.contrib.pytest", "-q")
    result.assert_outcomes(passed=4)


def test_the_fixtures_run_a_worker_in_memory(pytester: pytest.Pytester) -> None:
    _run(pytester, "{}")


@pytest.mark.amqp
def test_the_fixtures_run_a_worker_on_the_broker(
    pytester: pytest.Pytester, amqp_url: str, unique: str
) -> None:
    config = (
        f"{{'broker_url': {amqp_url!r}, 'result_backend': 'redis://127.0.0.1:6379/0', "
        f"'task_default_queue': {unique!r}}}"
    )
    _run(pytester, config)
