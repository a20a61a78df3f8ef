"""Revocation by stamped headers (Celery's `revoke_by_stamped_headers`): a message whose
stamp is revoked is not started; the others run; the worker replies as Celery's does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hare.control.client import Control
from hare.control.revocation import RevokedStamps, stamps_matching
from hare.results.state import REVOKED
from hare.testing import Ledger, ManualClock, memory_app, running_worker

pytestmark = pytest.mark.anyio


def _stamped(value: Any) -> dict[str, Any]:
    return {"stamped_headers": ["monitoring_id"], "stamps": {"monitoring_id": value}}


def test_stamps_match_by_value_or_any_value_of_a_list() -> None:
    revoked = {"monitoring_id": ["a", 42]}
    assert stamps_matching(_stamped("a"), revoked) == {"monitoring_id": "a"}
    assert stamps_matching(_stamped(["x", 42]), revoked) == {"monitoring_id": 42}
    assert stamps_matching(_stamped("b"), revoked) is None
    assert stamps_matching(_stamped(None), {"monitoring_id": [None]}) is None  # as Celery
    assert stamps_matching({"stamps": {"monitoring_id": "a"}}, revoked) is None  # not stamped
    stamps = RevokedStamps()
    assert stamps.add(["monitoring_id=a"]) == {"monitoring_id": ["a"]}  # Celery 3.1's form
    stamps.add({"monitoring_id": "a"})
    assert stamps.matching(_stamped("a")) == {"monitoring_id": "a"}
    stamps.clear()
    assert stamps.matching(_stamped("a")) is None


async def test_a_message_with_a_revoked_stamp_is_not_started() -> None:
    app = memory_app(ManualClock(time.time()), default_queue="q", result_backend="memory://")
    ledger = Ledger()
    ledger.bind()

    @app.task(name="t.job")
    async def job(n: int) -> int:
        ledger.record("job", n)
        return n

    async with running_worker(app) as worker:
        control = Control((await app.publisher()).transport)
        replies = await control.broadcast(
            "revoke_by_stamped_headers",
            {"headers": {"monitoring_id": ["m1"]}, "terminate": False},
            reply=True,
            timeout=0.5,
        )
        revoked = await job.aapply_async((1,), headers=_stamped("m1"))
        await job.aapply_async((2,), headers=_stamped("m2"))
        await job.aapply_async((3,))
        await ledger.wait_for(2)
        results = app.results
        assert results is not None
        stored = None
        for _ in range(200):
            stored = await results.alookup(revoked.id)
            if stored is not None:
                break
            await asyncio.sleep(0)
    assert replies == [
        {
            worker.nodename: {
                "ok": "headers {'monitoring_id': ['m1']} flagged as revoked, but not terminated"
            }
        }
    ]
    assert sorted(n for _, n in ledger.runs) == [2, 3]
    assert stored is not None and stored.state == REVOKED
