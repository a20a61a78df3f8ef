"""HTTP push tasks in one file: a receiver that checks signatures, an app, a worker.

    $ python examples/webhooks.py          # RabbitMQ at HARE_BROKER_URL, else memory://

The receiver (stdlib `http.server`, on 127.0.0.1) answers 503 with `Retry-After: 1` to the
first attempt of each push and 200 to the next, refuses a bad signature with 401, and
de-duplicates by `Idempotency-Key`, as a receiver of at-least-once pushes should. It checks
the signature against its own URL as the producer knows it (`ORDER_PAID_URL`), which is what
hare signs, not against what a proxy may have made of the request line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hare import Hare, Worker
from hare.http import verify_signature

SECRET = os.environ.setdefault("HARE_HTTP_SIGNING_SECRET", "example-secret")
ORDER_PAID_URL = ""  # the receiver's URL, as the app's http_task names it (set in main)
done: set[str] = set()  # the receiver's record of what it has handled, by idempotency key
all_done = threading.Event()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify_signature(
            SECRET, dict(self.headers), body, method=self.command, url=ORDER_PAID_URL
        ):
            return self._answer(401)
        key = self.headers["Idempotency-Key"]
        if self.headers["X-Hare-Attempt"] == "1":
            return self._answer(503, {"Retry-After": "1"})
        if key not in done:  # a repeat of a push already handled is answered 200, not redone
            done.add(key)
            attempt = self.headers["X-Hare-Attempt"]
            sys.stdout.write(f"received {body.decode()} (attempt {attempt})\n")
            if len(done) == 3:
                all_done.set()
        self._answer(200)

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def broker() -> str:
    """HARE_BROKER_URL; else a RabbitMQ on localhost if one answers; else memory://."""
    if "HARE_BROKER_URL" in os.environ:
        return os.environ["HARE_BROKER_URL"]
    try:
        socket.create_connection(("localhost", 5672), timeout=1).close()
    except OSError:
        return "memory://"
    return "amqp://guest:guest@localhost:5672/"


async def main() -> None:
    global ORDER_PAID_URL
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ORDER_PAID_URL = f"http://127.0.0.1:{server.server_port}/orders/paid"
    app = Hare("webhooks", broker=broker(), default_queue="webhooks-example")
    order_paid = app.http_task(ORDER_PAID_URL)
    worker = Worker(app, concurrency=4)
    running = asyncio.create_task(worker.run())
    await worker.wait_ready()
    for n in range(3):
        await order_paid.adelay(json={"order": n})
    await asyncio.to_thread(all_done.wait)
    worker.stop()
    await running
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    asyncio.run(main())
