"""HTTP push tasks end to end: a real RabbitMQ, a worker, and a real HTTP server on
127.0.0.1 whose ledger of requests received is what the tests read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import pytest

from hare import Hare
from hare.core.envelope import Delivery
from hare.http import PUSH_TASK, HttpTask, verify_signature
from hare.testing import eventually, running_worker
from hare.transport.base import Transport
from tests.amqp.helpers import amqp_app, delete_queues
from tests.http.server import PushServer, Reply, push_server

pytestmark = [pytest.mark.amqp, pytest.mark.anyio]

SECRET = "test-secret"


@dataclass
class Rig:
    app: Hare
    server: PushServer
    queue: str
    transport: Transport

    def hook(self, path: str, *replies: Reply, **options: Any) -> HttpTask:
        """A hook on `path` of the server, which answers `replies`; retried fast."""
        options = {"retry_backoff": False, "default_retry_delay": 0.2, **options}
        return self.app.http_task(self.server.script(path, *replies), name=path, **options)

    async def dead_letters(self, n: int) -> list[Delivery]:
        got: list[Delivery] = []

        async def take() -> bool:
            while (delivery := await self.transport.get(self.queue + ".dead")) is not None:
                await self.transport.ack(delivery)
                got.append(delivery)
            return len(got) >= n

        await eventually(take, within=20, interval=0.05)
        return got


@pytest.fixture
async def rig(amqp_url: str, unique: str) -> AsyncIterator[Rig]:
    queue = f"http-{unique}"
    app = amqp_app(
        amqp_url,
        default_queue=queue,
        result_backend="rpc://",
        http_signing_secret=SECRET,
        http_timeout=0.5,
    )
    async with push_server() as server:
        transport = (await app.publisher()).transport
        try:
            async with running_worker(app, concurrency=8):
                yield Rig(app, server, queue, transport)
        finally:
            await delete_queues(transport, queue, queue + ".dead")
            await app.aclose()


async def test_a_2xx_is_one_signed_request_and_a_success(rig: Rig) -> None:
    hook = rig.hook("/ok", Reply(200, b"thanks", {"Content-Type": "text/plain"}))
    result = await (await hook.adelay(json={"order": 42}))
    assert (result["status"], result["body"], result["attempt"]) == (200, "thanks", 1)
    [request] = rig.server.requests("/ok")
    assert request.body == b'{"order":42}'
    assert verify_signature(SECRET, request.headers, request.body, method="POST", url=hook.url)
    assert request.headers["idempotency-key"] == request.headers["x-hare-task-id"]


async def test_a_500_then_200_is_two_attempts_with_one_idempotency_key(rig: Rig) -> None:
    hook = rig.hook("/flaky", Reply(500, b"oops"), Reply(200))
    sent = await hook.adelay(json={"n": 1})
    result = await sent
    assert result["attempt"] == 2
    first, second = rig.server.requests("/flaky")
    assert [first.headers["x-hare-attempt"], second.headers["x-hare-attempt"]] == ["1", "2"]
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == sent.id
    assert verify_signature(SECRET, second.headers, second.body, method="POST", url=hook.url)


async def test_a_429_with_retry_after_is_retried_no_earlier_than_it_says(rig: Rig) -> None:
    hook = rig.hook("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(200))
    await (await hook.adelay(json={}))
    first, second = rig.server.requests("/limited")
    assert second.at - first.at >= 1.0


async def test_a_503_with_an_http_date_retry_after_is_retried(rig: Rig) -> None:
    when = formatdate(time.time() + 1, usegmt=True)
    hook = rig.hook("/maintenance", Reply(503, headers={"Retry-After": when}), Reply(200))
    result = await (await hook.adelay(json={}))
    assert result["attempt"] == 2 and len(rig.server.requests("/maintenance")) == 2


async def test_a_404_is_one_request_and_a_dead_letter_with_the_body(rig: Rig) -> None:
    hook = rig.hook("/missing", Reply(404, b"no order 42 here"))
    sent = await hook.adelay(json={"order": 42})
    [dead] = await rig.dead_letters(1)
    headers = dead.properties.headers
    assert headers["id"] == sent.id
    assert headers["hare-dead-reason"] == "http-404"
    assert "no order 42 here" in headers["hare-dead-detail"]
    assert len(rig.server.requests("/missing")) == 1


async def test_a_redirect_is_not_followed_but_dead_lettered_with_its_location(rig: Rig) -> None:
    target = rig.server.script("/new-home", Reply(200))
    hook = rig.hook("/moved", Reply(302, b"", {"Location": target}))
    await hook.adelay(json={})
    [dead] = await rig.dead_letters(1)
    assert dead.properties.headers["hare-dead-reason"] == "http-302"
    assert target in dead.properties.headers["hare-dead-detail"]
    assert rig.server.requests("/new-home") == []


async def test_a_slow_answer_times_out_and_is_retried(rig: Rig) -> None:
    hook = rig.hook("/slow", Reply(200, delay=3.0), Reply(200))
    result = await (await hook.adelay(json={}))
    assert result["attempt"] == 2 and len(rig.server.requests("/slow")) == 2


async def test_a_connection_closed_mid_response_is_retried(rig: Rig) -> None:
    hook = rig.hook("/cut", Reply(200, b"half a body", cut=True), Reply(200))
    result = await (await hook.adelay(json={}))
    assert result["attempt"] == 2 and len(rig.server.requests("/cut")) == 2


async def test_past_max_retries_the_last_status_is_in_the_dead_letter(rig: Rig) -> None:
    hook = rig.hook("/down", Reply(502, b"bad gateway"), max_retries=1)
    await hook.adelay(json={})
    [dead] = await rig.dead_letters(1)
    headers = dead.properties.headers
    assert headers["hare-dead-reason"] == "retries-exhausted"
    assert headers["hare-dead-detail"].startswith("http-502: HTTP 502")
    assert headers["hare-dead-exception"] == "hare.http.errors.PushFailed"
    assert len(rig.server.requests("/down")) == 2


async def test_a_one_off_push_with_a_countdown(rig: Rig) -> None:
    url = rig.server.script("/once", Reply(204, b""))
    sent = await rig.app.apush(url, data=b"\x00raw", countdown=0.3)
    result = await sent
    assert result["status"] == 204
    [request] = rig.server.requests("/once")
    assert request.body == b"\x00raw"
    assert request.headers["content-type"] == "application/octet-stream"


async def test_a_push_naming_a_hook_but_another_url_is_dead_lettered_unsent(rig: Rig) -> None:
    hook = rig.hook("/billing", Reply(200), secret_headers={"Authorization": "Bearer t"})
    elsewhere = rig.server.script("/attacker", Reply(200))
    forged = {**hook._spec({"n": 1}, None, None).to_kwargs(), "url": elsewhere}
    sent = await rig.app.asend_task(PUSH_TASK, kwargs=forged, queue=rig.queue)
    [dead] = await rig.dead_letters(1)
    headers = dead.properties.headers
    assert (headers["id"], headers["hare-dead-reason"]) == (sent.id, "http-hook-mismatch")
    assert rig.server.ledger == []


async def test_a_push_waiting_on_a_busy_host_gives_its_slot_back_and_is_retried(rig: Rig) -> None:
    """max_per_host=1 and a slow origin: the second push waits at most its timeout, then goes
    back through the ladder (no request made) until the origin has a turn for it."""
    slow = rig.hook("/slow-origin", Reply(200, delay=1.5), max_per_host=1, timeout=5.0)
    quick = rig.hook("/quick", Reply(200), max_per_host=1, timeout=0.2)
    first = await slow.adelay(json={})
    await eventually(lambda: rig.server.requests("/slow-origin"), within=10)
    result = await (await quick.adelay(json={}))
    assert result["attempt"] >= 2  # at least one attempt found the host busy
    assert len(rig.server.requests("/quick")) == 1  # and made no request
    assert (await first)["status"] == 200
