"""Run the dashboard: bind its socket, serve it with uvicorn."""

from __future__ import annotations

import socket

import uvicorn

from hare.app import Hare
from hare.dashboard.security import check_bind
from hare.dashboard.site import Config
from hare.dashboard.web import create_app

__all__ = ("address", "bind", "serve")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free one); `OSError` says why not."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def address(sock: socket.socket) -> str:
    """The URL a bound socket serves at."""
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(app: Hare, config: Config, sock: socket.socket) -> None:
    """Serve the dashboard of `app` on `sock` (from `bind`) until interrupted."""
    check_bind(config.host, config.token)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, config),
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
    )
    server.run(sockets=[sock])
