"""Header tables hare writes, read back by py-amqp 5.3.1 and by the installed py-amqp.

py-amqp <= 5.3.1 (still in many lock files, under Celery 5.3/5.4) misreads pamqp's default
integer encodings: a `timelimit: [300, 240]` desynchronises its table reader
(`FrameSyntaxError`, the Celery worker reconnects forever) and a negative small int comes back
as 255 (research/celery.md §2.7). The unit tests compare hare's encoder with py-amqp's writer
byte for byte; these read whole messages through RabbitMQ: a task hare's client published (time
limits, priority, expires, user headers of every kind), one that came through the delay ladder
(`hare-eta`, RabbitMQ's `x-death`), and a dead letter a `hare worker` wrote.

py-amqp 5.3.1 runs in a subprocess from `HARE_PYAMQP_PATH` (scripts/test.sh installs it in
`.pyamqp`); the installed py-amqp is Celery's, 5.4.x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hare import Hare
from hare.core.envelope import Delivery
from hare.core.topology import DEAD_SUFFIX
from tests.interop.harness import ROOT, Fleet

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

USER_HEADERS = {
    "x-minus-one": -1,
    "x-small": 7,
    "x-big": 2**40,
    "x-half": 0.5,
    "x-tenth": 0.1,
    "x-flag": True,
    "x-none": None,
    "x-list": [1, -2, "s", None, False, 2.5],
    "x-map": {"a": 1, "b": [0.25, -300]},
}

#: Reads every message of the queues named on the command line (unacked: closing the
#: connection returns them) and prints py-amqp's version and each message's headers as JSON.
READER = """
import json, sys
import amqp
url_host, vhost, *queues = sys.argv[1:]
connection = amqp.Connection(url_host, userid="guest", password="guest", virtual_host=vhost)
connection.connect()
channel = connection.channel()
out = {"version": amqp.__version__, "messages": {}}
for queue in queues:
    got = out["messages"][queue] = []
    while (message := channel.basic_get(queue, no_ack=False)) is not None:
        got.append({"routing_key": message.delivery_info["routing_key"],
                    "headers": message.properties.get("application_headers", {})})
connection.close()
print(json.dumps(out, default=str))
"""


def pyamqp_531() -> str:
    path = os.environ.get("HARE_PYAMQP_PATH") or str(ROOT / ".pyamqp")
    if not (Path(path) / "amqp" / "__init__.py").exists():
        message = (
            f"py-amqp 5.3.1 not found in {path} (scripts/test.sh installs it: pip install "
            "--no-deps --target .pyamqp amqp==5.3.1 vine==5.1.0)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def read_with_pyamqp(url_host: str, vhost: str, queues: list[str], path: str | None) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path:
        env["PYTHONPATH"] = path
    done = subprocess.run(
        [sys.executable, "-c", READER, url_host, vhost, *queues],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def workers(fleet: Fleet) -> Fleet:
    fleet.start_hare([fleet.queue("hare")])
    fleet.wait_consuming()
    return fleet


def comparable(headers: dict[str, Any]) -> dict[str, Any]:
    """Headers without RabbitMQ's `x-death` (timestamps decode differently per client)."""
    return {k: v for k, v in headers.items() if not k.startswith(("x-death", "x-first-death"))}


async def test_pyamqp_531_and_the_installed_one_read_every_header_hare_writes(
    workers: Fleet, hare_client: Hare
) -> None:
    old_pyamqp = pyamqp_531()
    direct, laddered, hare_queue = (
        workers.queue("direct"),
        workers.queue("ladder"),
        workers.queue("hare"),
    )
    record = hare_client.tasks["interop.record"]
    await record.aapply_async(
        (1, 2),
        {"key": "wire"},
        queue=direct,
        time_limit=300,
        soft_time_limit=240,
        priority=5,
        expires=3600,
        ignore_result=False,  # a bool header (left unsaid, it is null: the task decides)
        headers=USER_HEADERS,
    )
    await record.aapply_async(
        (), {"key": "wire"}, queue=laddered, countdown=2, headers=USER_HEADERS
    )
    await hare_client.asend_task("interop.celery_only", (), {"key": "wire"}, queue=hare_queue)
    transport = (await hare_client.publisher()).transport
    by_hare: dict[str, Delivery] = {}

    async def all_there() -> bool:
        for queue in (direct, laddered, hare_queue + DEAD_SUFFIX):
            if queue not in by_hare and (delivery := await transport.get(queue)) is not None:
                by_hare[queue] = delivery
        return len(by_hare) == 3

    await workers.until(all_there, within=20, what="three messages to read")
    for delivery in by_hare.values():
        await transport.reject(delivery, requeue=True)

    vhost = workers.url.rsplit("/", 1)[1]
    broker = urlsplit(workers.url)
    for path in (old_pyamqp, None):
        read = read_with_pyamqp(
            f"{broker.hostname}:{broker.port or 5672}", vhost, list(by_hare), path
        )
        if path is not None:
            assert read["version"] == "5.3.1"
        check(read, by_hare, direct, laddered, hare_queue + DEAD_SUFFIX)


def check(
    read: Any, by_hare: dict[str, Delivery], direct: str, laddered: str, dead_queue: str
) -> None:
    """py-amqp read what hare's own reader (pamqp) read, and the values are the ones sent."""
    for queue, delivery in by_hare.items():
        (message,) = read["messages"][queue]
        expected = json.loads(
            json.dumps(comparable(dict(delivery.properties.headers)), default=str)
        )
        assert comparable(message["headers"]) == expected, (read["version"], queue)
    task = read["messages"][direct][0]["headers"]
    assert task["timelimit"] == [300, 240]
    assert (task["retries"], task["ignore_result"], task["x-minus-one"]) == (0, False, -1)
    assert (task["x-half"], task["x-tenth"], task["x-big"]) == (0.5, 0.1, 2**40)
    assert task["x-map"] == {"a": 1, "b": [0.25, -300]}
    ladder = read["messages"][laddered][0]
    assert isinstance(ladder["headers"]["hare-eta"], int)
    assert ladder["headers"]["x-death"][0]["count"] == 1  # RabbitMQ's own table, read too
    dead = read["messages"][dead_queue][0]["headers"]
    assert (dead["hare-dead-reason"], dead["hare-dead-attempts"]) == ("unknown-task", 0)
    assert isinstance(dead["hare-dead-at"], int) and dead["hare-dead-exception"] is None
    assert uuid.UUID(dead["id"])
