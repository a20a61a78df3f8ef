"""Inputs shared by the runtime tests: malformed messages, Celery's stamps.

The reusable helpers (`memory_app`, `running_worker`, `Ledger`, `publish_raw`, `drain`,
`until`) are the public test kit, `hare.testing`."""

from __future__ import annotations

from typing import Any

from hare import Hare
from hare.testing import Ledger, ManualClock, memory_app

GOOD_BODY = b'[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


#: One message of each kind a worker must dead-letter rather than run, with the reason it
#: must give: (reason, body, headers, content type). A task named `t.add` exists; `t.nope` not.
BAD_INPUTS: list[tuple[str, bytes, dict[str, Any], str]] = [
    ("undecodable", b"not json at all", {"task": "t.add", "id": "1"}, "application/json"),
    (
        "content-type-refused",
        b"\x80\x04K\x01.",
        {"task": "t.add", "id": "2"},
        "application/x-python-serialize",
    ),
    ("missing-header", GOOD_BODY, {"id": "3"}, "application/json"),
    ("missing-header", GOOD_BODY, {"task": "t.add"}, "application/json"),
    ("bad-body", b"[[1, 2], {}]", {"task": "t.add", "id": "5"}, "application/json"),
    ("unknown-task", GOOD_BODY, {"task": "t.nope", "id": "6"}, "application/json"),
]


#: Celery 5.7 stamping as its client puts it on the wire (`sig.stamp(visitor)`, the visitor
#: returning `{"mtask_id": "1234"}`): the headers of a stamped message...
STAMP_HEADERS: dict[str, Any] = {"stamped_headers": ["mtask_id"], "stamps": {"mtask_id": "1234"}}


def stamped_signature(task: str, *args: Any, immutable: bool = False) -> dict[str, Any]:
    """... and a stamped signature's dict (as a `link_error` carries it): the stamps are
    options, named by `stamped_headers`."""
    return {
        "task": task,
        "args": list(args),
        "kwargs": {},
        "options": {"stamped_headers": ["mtask_id"], "mtask_id": "1234"},
        "subtask_type": None,
        "immutable": immutable,
    }


def echo_app(clock: ManualClock | None = None, *, queue: str = "work") -> tuple[Hare, Ledger]:
    """A memory app whose task ``t.echo(n)`` records ``("echo", n)`` in the ledger, which is
    bound to the running loop: call it from the test's coroutine."""
    app = memory_app(clock, default_queue=queue)
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.echo")
    async def echo(n: int) -> None:
        ledger.record("echo", n)

    return app, ledger
