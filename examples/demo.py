"""hare in one process: a worker and a producer, printing what ran.

Uses RabbitMQ at HARE_BROKER_URL (default amqp://guest:guest@localhost:5672/) when one answers,
otherwise the in-process memory:// broker. Run it with `scripts/demo.sh`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from urllib.parse import urlsplit

from hare import Hare, Reject, Worker
from hare.core.settings import DEFAULT_BROKER_URL


def pick_broker() -> str:
    url = os.environ.get("HARE_BROKER_URL", DEFAULT_BROKER_URL)
    parts = urlsplit(url.split(";")[0])
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), 1):
            return url
    except OSError:
        return "memory://"


def say(line: str) -> None:
    """One write per line, so lines from the worker's threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


app = Hare("demo", broker=pick_broker(), environ={}, default_queue="hare-demo.default")
done: asyncio.Queue[str] = asyncio.Queue()


@app.task(queue="hare-demo.emails")
async def send_email(to: str, subject: str) -> None:
    """An async task: runs on the worker's event loop."""
    say(f"  ran send_email({to!r}, {subject!r}) on the event loop")
    done.put_nowait("send_email")


@app.task
def add(x: int, y: int) -> int:
    """A sync task: runs in the worker's bounded thread pool."""
    say(f"  ran add({x}, {y}) = {x + y} in a worker thread")
    app_loop.call_soon_threadsafe(done.put_nowait, "add")
    return x + y


@app.task
async def charge(order_id: str) -> None:
    """A task that fails for good: its message ends in the dead-letter queue with the reason."""
    done.put_nowait("charge")
    raise Reject(f"order {order_id} does not exist")


async def main() -> None:
    global app_loop
    app_loop = asyncio.get_running_loop()
    say(f"broker: {'RabbitMQ' if app.settings.broker_url != 'memory://' else 'memory://'}")
    worker = Worker(app, queues=["hare-demo.emails", "hare-demo.default"], concurrency=8)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    transport = (await app.publisher()).transport
    await transport.purge("hare-demo.default.dead")

    say("sending: send_email.adelay(...), add.delay(2, 3) from a thread, charge.adelay(...)")
    await send_email.adelay("ada@example.com", "hello")
    sent = await asyncio.to_thread(add.delay, 2, 3)  # sync code, e.g. a Django view
    say(f"  add.delay returned once the broker confirmed it: id={sent.id}")
    await charge.adelay("o-404")

    ran = sorted([await asyncio.wait_for(done.get(), 10) for _ in range(3)])
    say(f"ran: {', '.join(ran)}")
    dead = None
    for _ in range(100):
        dead = await transport.get("hare-demo.default.dead")
        if dead is not None:
            break
        await asyncio.sleep(0.05)
    if dead is not None:
        headers = dead.properties.headers
        say(
            f"dead letter in hare-demo.default.dead: task={headers.get('task')} "
            f"reason={headers.get('hare-dead-reason')} detail={headers.get('hare-dead-detail')!r}"
        )
        await transport.ack(dead)
    worker.stop()
    await running
    await app.aclose()
    say("worker drained and stopped")


app_loop: asyncio.AbstractEventLoop

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s")
    asyncio.run(main())
