"""Worker node names, as `celery.utils.nodenames` makes them (`name@host`)."""

from __future__ import annotations

import os
import socket

__all__ = ("anon_nodename", "default_nodename", "gethostname", "nodename", "nodesplit")

NODENAME_SEP = "@"
NODENAME_DEFAULT = "celery"


def gethostname() -> str:
    """This machine's host name."""
    return socket.gethostname()


def nodename(name: str, hostname: str) -> str:
    """`name@hostname`."""
    return NODENAME_SEP.join((name, hostname))


def anon_nodename(hostname: str | None = None, prefix: str = "gen") -> str:
    """The name of a node that was given none: `gen<pid>@<host>` (Celery's embedded workers)."""
    return nodename(f"{prefix}{os.getpid()}", hostname or gethostname())


def nodesplit(name: str) -> tuple[None, str] | tuple[str, str]:
    """`("name", "host")` for `name@host`; `(None, name)` for a name without `@`."""
    parts = name.split(NODENAME_SEP, 1)
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def default_nodename(hostname: str | None) -> str:
    """`hostname` as a node name, `celery@<host>` when it has no name part."""
    name, host = nodesplit(hostname or "")
    return nodename(name or NODENAME_DEFAULT, host or gethostname())
