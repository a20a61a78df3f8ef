"""Health probes for orchestrators: `/livez` and `/readyz` over a tiny HTTP server.

* `/livez` answers 200 while the process is worth keeping: its event loop answers (it is
  serving this request) and it is consuming, starting, draining, or reconnecting for less
  than the reconnect budget. 503 tells Kubernetes to restart the pod.
* `/readyz` answers 200 only while the worker consumes; 503 while it starts, reconnects or
  drains.

Both return a small JSON body with the state, for humans and dashboards. `/metrics` serves
Prometheus's text format (`hare.worker.metering`; 501 without prometheus-client).
With `--processes N`
the supervisor serves the probes for all its workers, which report their state in status
files (see `write_status`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hare.worker.metering import Page, metrics_page

__all__ = ("Health", "HealthServer", "read_status", "worker_health", "write_status")

logger = logging.getLogger("hare.health")

#: How long a worker may try to reconnect before `/livez` gives up on it.
RECONNECT_BUDGET = 300.0


@dataclass(frozen=True, slots=True)
class Health:
    """What the probes report."""

    live: bool
    ready: bool
    detail: Mapping[str, Any] = field(default_factory=dict)


def worker_health(
    state: str, disconnected_for: float | None, *, budget: float = RECONNECT_BUDGET
) -> Health:
    """The health of a worker in `state`, disconnected for `disconnected_for` seconds."""
    live = state in ("starting", "consuming", "draining") or (
        state == "reconnecting" and (disconnected_for or 0.0) < budget
    )
    detail: dict[str, Any] = {"state": state}
    if disconnected_for is not None:
        detail["disconnected_for"] = round(disconnected_for, 1)
    return Health(live=live, ready=state == "consuming", detail=detail)


def write_status(path: str, health: Health) -> None:
    """Atomically replace `path` with `health` as JSON (a worker reporting to its supervisor)."""
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".status-")
    with os.fdopen(handle, "w") as file:
        json.dump({"live": health.live, "ready": health.ready, **health.detail}, file)
    os.replace(temporary, path)


def read_status(path: str) -> Health | None:
    """The health a worker last wrote to `path`; `None` if it has not written one."""
    try:
        with open(path) as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    live, ready = bool(data.pop("live", False)), bool(data.pop("ready", False))
    return Health(live=live, ready=ready, detail=data)


class HealthServer:
    """Serves `/livez` and `/readyz` from `check()` on `port` (all interfaces), and `/metrics`
    from `metrics()`: a status, a content type and a body (by default this process's metrics,
    or 501 without prometheus-client)."""

    def __init__(
        self,
        port: int,
        check: Callable[[], Health],
        host: str = "0.0.0.0",
        *,
        metrics: Callable[[], Page] = metrics_page,
    ) -> None:
        self._port = port
        self._host = host
        self._check = check
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        logger.info("health probes on port %d: /livez /readyz", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: not needed
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/metrics":
                writer.write(_page(*self._metrics()))
                return
            health = self._check()
            if path == "/livez":
                ok = health.live
            elif path == "/readyz":
                ok = health.ready
            else:
                writer.write(_response(404, {"error": "try /livez or /readyz"}))
                return
            body = {"ok": ok, "live": health.live, "ready": health.ready, **health.detail}
            writer.write(_response(200 if ok else 503, body))
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            try:
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            except ConnectionError:
                pass


_REASONS = {200: "OK", 404: "Not Found", 501: "Not Implemented", 503: "Service Unavailable"}


def _response(status: int, body: Mapping[str, Any]) -> bytes:
    return _page(status, "application/json", json.dumps(body).encode())


def _page(status: int, content_type: str, payload: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload
