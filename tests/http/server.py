"""A scripted HTTP/1.1 server on 127.0.0.1 for push tests, keeping a ledger of requests.

Written with asyncio streams (no framework): each path answers from its script, one reply
per request in order, the last one repeated (`script("/p", Reply(500), Reply(200))`: a 500,
then 200s). A reply may wait first (`delay`), or cut the connection after the headers and
part of the body (`cut`). Every request received is in `ledger`, with the time it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ("PushServer", "Received", "Reply", "push_server")

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Send the headers and half the body, then close the connection.
    cut: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    #: Names in lower case.
    headers: dict[str, str]
    body: bytes
    #: `time.monotonic()` when the request was read.
    at: float


class PushServer:
    def __init__(self) -> None:
        self.ledger: list[Received] = []
        #: The requests answered in full (their whole response written), in order.
        self.answered: list[Received] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._served: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    def script(self, path: str, *replies: Reply) -> str:
        """Make `path` answer `replies` in order (the last repeats); its full URL."""
        self._scripts[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str) -> list[Received]:
        return [r for r in self.ledger if r.path == path]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(me)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = target.split("?", 1)[0]
        received = Received(method, path, headers, body, time.monotonic())
        self.ledger.append(received)
        replies = self._scripts.get(path, [Reply(404, b"no such path")])
        reply = replies[min(self._served[path], len(replies) - 1)]
        self._served[path] += 1
        if reply.delay:
            await asyncio.sleep(reply.delay)
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Whatever')}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        head.append(f"Content-Length: {len(reply.body) * (2 if reply.cut else 1)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if reply.cut:
            writer.write(reply.body)
            await writer.drain()
            return False
        writer.write(reply.body)
        await writer.drain()
        self.answered.append(received)
        return True


@contextlib.asynccontextmanager
async def push_server() -> AsyncIterator[PushServer]:
    server = PushServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
