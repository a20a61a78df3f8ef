"""Fixtures shared by every tier.

The broker tier (`amqp` marker) needs a real RabbitMQ. Locally, a missing broker skips those
tests with a clear message; under CI (the `CI` environment variable set) it fails them, because a
skipped broker test is not a passing one.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from hypothesis import settings

from hare.compiled import COMPILED as COMPILED_LIST
from hare.compiled import compiled_modules
from tests.properties import UNIT

#: `--hypothesis-profile=unit`: the unit tier's property tests try a quarter of their examples
#: (tests/properties.py); without it, hypothesis's defaults and each test's own count. Neither
#: has a per-example deadline: the full run shares 2 cores with three RabbitMQ nodes, and a
#: deadline there measures the machine's load, not the code (a pure field-table test missed
#: hypothesis's 200 ms once at load 6). Time belongs in benchmarks/.
settings.register_profile("unit", max_examples=UNIT, deadline=None)
settings.register_profile("hare", deadline=None)
settings.load_profile("hare")

BROKER_URL = os.environ.get("HARE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

#: The modules of hare's optional compiled build that run compiled in this session.
COMPILED = compiled_modules()


def pytest_configure(config: pytest.Config) -> None:
    """`HARE_EXPECT_COMPILED=1` (scripts/test_compiled.sh): the compiled build must be the one
    under test, every module of it, or the session stops before a test runs."""
    if os.environ.get("HARE_EXPECT_COMPILED") == "1" and len(COMPILED) != len(COMPILED_LIST):
        missing = sorted(set(COMPILED_LIST) - set(COMPILED))
        raise pytest.UsageError(
            f"the compiled build is expected, but these run interpreted: {missing}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the compiled build, skip the tests that inject faults by patching module functions
    (`pure_python`): compiled code calls them directly, so the patch is never reached."""
    if not COMPILED:
        return
    skip = pytest.mark.skip(reason="patches functions the compiled build calls directly")
    for item in items:
        if item.get_closest_marker("pure_python") is not None:
            item.add_marker(skip)


def _broker_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _container_url() -> Iterator[str]:
    """Start RabbitMQ with testcontainers (needs a Docker engine) for the whole session."""
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The URL of a RabbitMQ that answers; skip (locally) or fail (under CI) when none does."""
    if _broker_answers(BROKER_URL):
        yield BROKER_URL
        return
    if os.environ.get("HARE_TESTCONTAINERS"):
        yield from _container_url()
        return
    message = f"no RabbitMQ answers at {BROKER_URL} (run scripts/test.sh, which starts one)"
    if os.environ.get("CI"):
        pytest.fail(message + " -- under CI a missing broker is a failure")
    pytest.skip(message)


@pytest.fixture
def unique() -> Iterator[str]:
    """A short unique token for queue names, so tests never collide on a shared broker."""
    yield "t" + uuid.uuid4().hex[:10]
