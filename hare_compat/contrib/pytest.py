"""pytest fixtures for hare_compat apps, as `celery.contrib.pytest` provides them.

Enable with `-p hare_compat.contrib.pytest` or `pytest_plugins = ("hare_compat.contrib.pytest",)`
(Celery's plugin is enabled the same way). The fixtures and what they give:

* `celery_app` / `celery_session_app`: a test app (`hare_compat.contrib.testing.app.TestApp`)
  configured by `celery_config` (a dict; the in-memory broker and result store by default),
  `celery_parameters` (arguments of `Celery(...)`) and a test's `@pytest.mark.celery(**conf)`;
* `celery_worker` / `celery_session_worker`: a hare worker for that app, running in a thread
  of the test process (`hare_compat.contrib.testing.worker.start_worker`) with the modules of
  `celery_includes` imported and the classes of `celery_class_tasks` registered;
  `celery_worker_pool` and `celery_worker_parameters` are passed to it;
* `celery_enable_logging`, `use_celery_app_trap`, `depends_on_current_app`, as Celery's.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from hare_compat.app.base import Celery
from hare_compat.contrib.testing import worker
from hare_compat.contrib.testing.app import TestApp, setup_default_app

#: Set (to anything) to run the tests without starting the worker fixtures' workers.
NO_WORKER = os.environ.get("NO_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "celery(**overrides): override celery configuration for a test case"
    )


@contextmanager
def _create_app(
    enable_logging: bool,
    use_trap: bool,
    parameters: Mapping[str, Any],
    request: pytest.FixtureRequest,
    config: Mapping[str, Any],
) -> Iterator[Celery]:
    """A test app for the fixture asking: `config` under the test's `@pytest.mark.celery`."""
    mark = request.node.get_closest_marker("celery")
    app = TestApp(
        set_as_current=False,
        enable_logging=enable_logging,
        config=dict(config, **(mark.kwargs if mark else {})),
        **parameters,
    )
    with setup_default_app(app, use_trap=use_trap):
        yield app


def _load(app: Celery, includes: Sequence[str], class_tasks: Sequence[Any] = ()) -> None:
    for module in includes:
        importlib.import_module(module)
    for class_task in class_tasks:
        app.register_task(class_task)


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    return False


@pytest.fixture(scope="session")
def celery_session_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_enable_logging: bool,
    use_celery_app_trap: bool,
) -> Iterator[Celery]:
    with _create_app(
        celery_enable_logging, use_celery_app_trap, celery_parameters, request, celery_config
    ) as app:
        if not use_celery_app_trap:
            app.set_default()
            app.set_current()
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(
    request: pytest.FixtureRequest,
    celery_session_app: Celery,
    celery_includes: Sequence[str],
    celery_class_tasks: Sequence[Any],
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[worker.TestWorkController | None]:
    if NO_WORKER:
        yield None
        return
    _load(celery_session_app, celery_includes, celery_class_tasks)
    with worker.start_worker(
        celery_session_app, pool=celery_worker_pool, **celery_worker_parameters
    ) as started:
        yield started


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    return False


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    return ()


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    return "solo"


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    return []


@pytest.fixture()
def celery_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_enable_logging: bool,
    use_celery_app_trap: bool,
) -> Iterator[Celery]:
    with _create_app(
        celery_enable_logging, use_celery_app_trap, celery_parameters, request, celery_config
    ) as app:
        yield app


@pytest.fixture()
def celery_worker(
    request: pytest.FixtureRequest,
    celery_app: Celery,
    celery_includes: Sequence[str],
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[worker.TestWorkController | None]:
    if NO_WORKER:
        yield None
        return
    _load(celery_app, celery_includes)
    with worker.start_worker(celery_app, pool=celery_worker_pool, **celery_worker_parameters) as w:
        yield w


@pytest.fixture()
def depends_on_current_app(celery_app: Celery) -> None:
    celery_app.set_current()
