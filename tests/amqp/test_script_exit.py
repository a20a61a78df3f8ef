"""A script that publishes and simply ends (no close) exits cleanly, with its message sent.

The README's first example is a sync `add.delay(2, 3)`; at the exit of such a script the
private publishing loop was closed with the connection's tasks pending, and asyncio printed
"Task was destroyed but it is pending!" (and "Exception ignored" tracebacks) for each. An async
script ending `asyncio.run` with the app open logged "lost the broker connection".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import cast

import aiormq
import pytest

from hare.transport.amqp.errors import cancelled_here
from hare.transport.amqp.transport import AmqpTransport

SYNC = """
    from hare import Hare
    app = Hare("exit", default_queue=QUEUE)

    @app.task(name="exit.add")
    def add(a, b):
        return a + b

    print(add.delay(2, 3).id)
"""

ASYNC = """
    import asyncio
    from hare import Hare
    app = Hare("exit", default_queue=QUEUE)

    @app.task(name="exit.add")
    async def add(a, b):
        return a + b

    async def main():
        print((await add.adelay(2, 3)).id)

    asyncio.run(main())
"""


@pytest.mark.amqp
@pytest.mark.anyio
@pytest.mark.parametrize("script", [SYNC, ASYNC], ids=["delay", "adelay"])
async def test_a_script_that_publishes_and_ends_exits_cleanly(
    amqp_url: str, unique: str, script: str
) -> None:
    queue = f"exit-{unique}"
    prelude = f"import logging\nlogging.basicConfig(level=logging.INFO)\nQUEUE = {queue!r}\n"
    env = {**os.environ, "HARE_BROKER_URL": amqp_url}
    command = [sys.executable, "-c", prelude + textwrap.dedent(script)]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
    )
    transport = AmqpTransport(amqp_url)
    await transport.connect()
    try:
        sent = await transport.message_count(queue)
        await transport.delete_queue(queue)
        await transport.delete_queue(queue + ".dead")
    finally:
        await transport.close()
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 1  # the task id
    assert sent == 1
    for noise in ("Task was destroyed", "Exception ignored", "lost the broker connection"):
        assert noise not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


class _Connection:
    def __init__(self, *, stuck: bool) -> None:
        self.is_connection_was_stuck = stuck


@pytest.mark.parametrize(
    ("reason", "stuck", "expected"),
    [
        (asyncio.CancelledError(), False, True),  # this process cancelled it: asyncio.run ended
        (asyncio.CancelledError(), True, False),  # aiormq cancelled it: heartbeats stopped
        (ConnectionResetError(), False, False),
        (None, False, False),
    ],
)
def test_only_a_cancellation_of_a_live_connection_is_not_a_loss(
    reason: BaseException | None, stuck: bool, expected: bool
) -> None:
    connection = cast(aiormq.Connection, _Connection(stuck=stuck))
    assert cancelled_here(reason, connection) is expected
