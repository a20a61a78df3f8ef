"""Fixtures of the compat suite: the environment, the variants, the workers.

Every broker test runs once per variant (`celery`, `hare`) against the same project files;
see README.md. The suite needs RabbitMQ with `rabbitmqctl` (private vhosts) and Redis (the
shop's result store): without them it is skipped locally and fails under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.compat.harness import (
    REDIS_DB,
    Fleet,
    Ledger,
    Variant,
    WorkerProcess,
    add_vhost,
    answers,
    rabbitmqctl,
)
from tests.compat.rewrite import PROJECTS, install

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: HARE_COMPAT_VARIANTS=hare runs the hare variant alone (scripts/test.sh does, again, with
#: HARE_COMPAT_POOL=threads: the sync-task tests under both of hare's pools).
VARIANTS = tuple(
    Variant(name)
    for name in ("celery", "hare")
    if name in os.environ.get("HARE_COMPAT_VARIANTS", "celery,hare").split(",")
)

install()

#: Celery 5.7 warns that Django-style names (`CELERY_TIMEZONE` read with namespace="CELERY")
#: are its pre-4.0 names, although the namespace makes them the current ones: noise.
SPURIOUS_DEPRECATION = r"ignore:\s*The 'CELERY_\w+' setting is deprecated"
#: Celery 5.7 also deprecates `@app.task(queue=...)` in favour of `task_routes`; the shop
#: keeps it because real projects are full of it.
QUEUE_DEPRECATION = r"ignore:\s*The 'queue' task attribute is deprecated"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/compat/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings(SPURIOUS_DEPRECATION))
            item.add_marker(pytest.mark.filterwarnings(QUEUE_DEPRECATION))
    _deselect_celery_variants_of_hare_only_tests(config, items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the workers' log tails to a failed test's report: a failure in CI is then
    readable from its output alone (what the worker logged about the task, if anything)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    env = getattr(item, "funcargs", {}).get("compat_env")
    if report.failed and report.when == "call" and isinstance(env, CompatEnv):
        tails = [worker.log_tail(40) for worker in env.fleet.started.values()]
        report.sections.append(("workers' logs", "\n".join(tails)))


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + " -- under CI that is a failure")
    pytest.skip(message)


@dataclass
class CompatEnv:
    ledger: Ledger
    fleet: Fleet
    #: AMQP URL per (project, variant name).
    urls: dict[tuple[str, str], str]


@pytest.fixture(scope="package")
def compat_env(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatEnv]:
    """Private vhosts and Redis databases, the environment the projects read, the fleet.

    Package-scoped: the workers stop when the last compat test is done, not at the end of
    the whole session."""
    if shutil.which("rabbitmqctl") is None:
        _missing("the compat suite needs rabbitmqctl (private vhosts) for " + amqp_url)
    if not answers(REDIS_HOST, REDIS_PORT):
        _missing(f"the compat suite needs Redis at {REDIS_HOST}:{REDIS_PORT} (result store)")
    import redis

    for db in REDIS_DB.values():
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    directory = tmp_path_factory.mktemp("compat")
    ledger = Ledger(directory / "ledger.jsonl")
    token = uuid.uuid4().hex[:6]
    urls: dict[tuple[str, str], str] = {}
    saved = dict(os.environ)
    os.environ.pop("SHOP_SETTINGS_MODULE", None)
    os.environ["COMPAT_LEDGER"] = str(ledger.path)
    try:
        for project in PROJECTS:
            for variant in VARIANTS:
                url = add_vhost(amqp_url, f"compat-{token}-{project}-{variant.name}")
                urls[project, variant.name] = url
                prefix = variant.package(project).upper()
                os.environ[f"{prefix}_BROKER_URL"] = url
                if project == "shop":
                    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB[variant.name]}"
                    os.environ[f"{prefix}_RESULT_BACKEND"] = redis_url
        fleet = Fleet(ledger, directory)
        yield CompatEnv(ledger, fleet, urls)
        for tail in fleet.close():
            print(tail)
        _close_apps()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for url in urls.values():
            vhost = url.rsplit("/", 1)[1]
            try:
                rabbitmqctl("delete_vhost", vhost)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"could not delete vhost {vhost}: {exc}")


def _close_apps() -> None:
    """Close the connections this process's project apps opened (before their vhosts go)."""
    for project in PROJECTS:
        for variant in VARIANTS:
            module = sys.modules.get(f"{variant.package(project)}.celery")
            app = getattr(module, "app", None)
            if app is not None:
                app.close()


@pytest.fixture(params=[v.name for v in VARIANTS])
def variant(request: pytest.FixtureRequest) -> Variant:
    return Variant(request.param)


@dataclass
class Project:
    """A project as one variant imports it, with its running main worker."""

    name: str
    variant: Variant
    worker: WorkerProcess
    env: CompatEnv

    @property
    def pkg(self) -> str:
        return self.variant.package(self.name)

    @property
    def tasks(self) -> ModuleType:
        return self.variant.module(f"{self.name}.tasks")

    @property
    def app(self) -> Any:
        return self.variant.module(f"{self.name}.celery").app

    @property
    def ledger(self) -> Ledger:
        return self.env.ledger

    def lines(self, **match: Any) -> list[dict[str, Any]]:
        return self.env.ledger.lines(self.pkg, **match)

    def events(self, **match: Any) -> list[str]:
        return self.env.ledger.events(self.pkg, **match)


def _project(name: str, variant: Variant, env: CompatEnv) -> Project:
    worker = env.fleet.main(name, variant, VARIANTS)
    project = Project(name, variant, worker, env)
    project.app  # noqa: B018 -- import the variant in this process too (fails loudly)
    return project


@pytest.fixture
def shop(variant: Variant, compat_env: CompatEnv) -> Project:
    """The shop (Django-style, Redis results) with its worker running, in `variant`."""
    return _project("shop", variant, compat_env)


@pytest.fixture
def billing(variant: Variant, compat_env: CompatEnv) -> Project:
    """The billing project (rpc:// results) with its worker running, in `variant`."""
    return _project("billing", variant, compat_env)


@pytest.fixture
def key() -> str:
    """A unique key for this test's ledger lines."""
    return "k" + uuid.uuid4().hex[:10]


@pytest.fixture
def flag(tmp_path: Path) -> Iterator[Path]:
    """A file a `hold`/`progress` task waits for; created at teardown so nothing hangs."""
    path = tmp_path / "go"
    yield path
    path.touch()


def _deselect_celery_variants_of_hare_only_tests(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Tests marked `hare_only` have no Celery variant: deselect it rather than skip it."""
    dropped = [
        item
        for item in items
        if item.get_closest_marker("hare_only") is not None and "[celery" in item.name
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
