"""`hare worker --pidfile FILE`: the worker's pid in a file, as Celery's worker writes it.

The file is created exclusively, so two workers given the same file cannot both start: a
file naming a process that still runs stops the second one; a stale file (its process is
gone) is replaced. The file is removed when the worker exits. With `--processes N` it holds
the supervisor's pid: the process to signal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from hare.cli.common import UsageError

__all__ = ("pidfile",)


@contextlib.contextmanager
def pidfile(path: str | None) -> Iterator[None]:
    """Hold `path` (nothing when None) while the block runs."""
    if path is None:
        yield
        return
    _create(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if _read(path) == os.getpid():
                os.unlink(path)


def _create(path: str) -> None:
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read(path)
            if other is not None and _alive(other):
                raise UsageError(
                    f"--pidfile {path}: process {other} is running with it; is a worker "
                    "already running?"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale: its process is gone
            continue
        except OSError as exc:
            raise UsageError(f"--pidfile {path}: {exc.strerror}") from None
        with os.fdopen(handle, "w") as file:
            file.write(f"{os.getpid()}\n")
        return
    raise UsageError(f"--pidfile {path}: another process keeps creating it")


def _read(path: str) -> int | None:
    try:
        with open(path) as file:
            return int(file.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
