"""Sending push requests with httpx: the only module of hare that imports it.

One `Dispatcher` per worker event loop (so one `httpx.AsyncClient` per worker process),
opened on the first push and closed when the worker stops. Requests to one origin (scheme,
host and port) are bounded by a semaphore of `max_per_host`; the first push to an origin in
a process sets its bound (which lasts while the process keeps the origin: past `MAX_HOSTS`
origins, those with nothing under way or waiting are forgotten). The push's timeout bounds
its whole stay: waiting for its turn at the origin (`host-busy` when it runs out there), then
the request (connect, send, wait and read together: `timeout`). Redirects are followed only
when the push says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from hare.http.classify import EXCERPT_BYTES, Response

__all__ = ("MAX_HOSTS", "Dispatcher", "NoResponse")

#: Origins a dispatcher keeps a bound for before it forgets the idle ones.
MAX_HOSTS = 1024

#: Bytes of a response read (to keep the connection reusable); only the excerpt is kept.
_READ_LIMIT = 64 * 1024


class NoResponse(Exception):
    """No response: `kind` is timeout, connect, disconnected, host-busy (no turn at the
    origin within the timeout: no request made), or, with `final`, a request that will
    never work (`redirect-loop`)."""

    def __init__(self, kind: str, detail: str, *, final: bool = False) -> None:
        self.kind = kind
        self.detail = detail
        self.final = final
        super().__init__(f"{kind}: {detail}")


class _Bound:
    """The bound on requests to one origin, and how many pushes hold it or wait for it."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class Dispatcher:
    """Sends push requests for one event loop."""

    def __init__(self, max_hosts: int = MAX_HOSTS) -> None:
        self._client: httpx.AsyncClient | None = None
        self._hosts: dict[tuple[str, str, int | None], _Bound] = {}
        self._max_hosts = max_hosts

    @property
    def hosts(self) -> int:
        """How many origins this dispatcher keeps a bound for."""
        return len(self._hosts)

    def _open(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
            self._client = httpx.AsyncClient(follow_redirects=False, limits=limits)
        return self._client

    def _bound(self, url: str, limit: int) -> _Bound:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        bound = self._hosts.get(origin)
        if bound is None:
            if len(self._hosts) >= self._max_hosts:
                self._hosts = {k: v for k, v in self._hosts.items() if v.users}
            bound = self._hosts[origin] = _Bound(limit)
        return bound

    async def send(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        seconds: float,
        max_per_host: int,
        follow_redirects: bool,
    ) -> Response:
        """Make the request; its response, or `NoResponse` saying why there is none."""
        client = self._open()
        request = client.build_request(
            method, url, headers=dict(headers), content=body, timeout=httpx.Timeout(seconds)
        )
        bound = self._bound(url, max_per_host)
        bound.users += 1
        try:
            until = asyncio.get_running_loop().time() + seconds
            try:
                async with asyncio.timeout_at(until):
                    await bound.semaphore.acquire()
            except TimeoutError:
                raise NoResponse("host-busy", _busy(url, max_per_host, seconds)) from None
            try:
                return await _request(client, request, until, seconds, follow_redirects)
            finally:
                bound.semaphore.release()
        finally:
            bound.users -= 1

    async def aclose(self) -> None:
        """Close the client (and its connections); the next push opens another."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def _request(
    client: httpx.AsyncClient,
    request: httpx.Request,
    until: float,
    seconds: float,
    follow_redirects: bool,
) -> Response:
    """Send `request` and read the start of its answer, all before the loop's time `until`."""
    started = time.monotonic()
    try:
        async with asyncio.timeout_at(until):
            response = await client.send(request, stream=True, follow_redirects=follow_redirects)
            kept = await _start_of(response)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise NoResponse("timeout", f"no response within {seconds:g}s") from exc
    except httpx.TooManyRedirects as exc:
        raise NoResponse("redirect-loop", str(exc), final=True) from exc
    except httpx.ConnectError as exc:
        raise NoResponse("connect", _why(exc)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise NoResponse("disconnected", _why(exc)) from exc
    return Response(
        status=response.status_code,
        reason=response.reason_phrase,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=kept,
        elapsed=time.monotonic() - started,
    )


def _busy(url: str, limit: int, seconds: float) -> str:
    parts = urlsplit(url)
    return (
        f"no turn within {seconds:g}s: {limit} request(s) to "
        f"{parts.scheme}://{parts.netloc} already under way here (max_per_host)"
    )


async def _start_of(response: httpx.Response) -> bytes:
    """The start of the body (the excerpt and one byte more, to tell it was longer), reading
    up to `_READ_LIMIT` so that the connection can serve the next request; then closed."""
    kept = bytearray()
    read = 0
    try:
        async for chunk in response.aiter_bytes():
            read += len(chunk)
            if len(kept) <= EXCERPT_BYTES:
                kept += chunk[: EXCERPT_BYTES + 1 - len(kept)]
            if read >= _READ_LIMIT:
                break
    finally:
        await response.aclose()
    return bytes(kept)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
