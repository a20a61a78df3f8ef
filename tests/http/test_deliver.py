"""The push task's body against a real HTTP server on 127.0.0.1 (no broker), and sending
pushes on the memory broker: what a worker does with each answer, what a message carries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hare import Hare
from hare.context import TaskContext, running
from hare.core.message import Message
from hare.core.protocol import decode
from hare.errors import ConfigurationError, DeadLetterError, Retry
from hare.http import PUSH_TASK, verify_signature
from hare.http.client import NoResponse
from hare.http.errors import InvalidPush, PushFailed
from hare.http.signature import verify
from hare.http.task import UNSET
from hare.testing import ManualClock, drain, eventually, memory_app, running_worker, until
from tests.http.server import PushServer, Reply, push_server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[PushServer]:
    async with push_server() as server:
        yield server


def _app(**settings: Any) -> Hare:
    return memory_app(http_signing_secret="k", **settings)


async def _deliver(app: Hare, kwargs: dict[str, Any], retries: int = 0) -> Any:
    """Run the push task's body as a worker would, attempt `retries + 1`."""
    deliverer = app.http.deliverer
    message = Message(id="id-1", task=PUSH_TASK, kwargs=kwargs, retries=retries)
    with running(TaskContext(message=message)):
        try:
            return await deliverer.deliver(**kwargs)
        finally:
            await deliverer.aclose()


def _kwargs(app: Hare, url: str, **options: Any) -> dict[str, Any]:
    spec, _ = app.http.one_off(url, "POST", {"n": 1}, None, options)
    return spec.to_kwargs()


async def test_a_2xx_is_done_with_a_small_result_and_signed_headers(server: PushServer) -> None:
    app = _app()
    hook = app.http_task(
        server.script("/ok", Reply(201, b"created", {"Content-Type": "text/plain"})),
        secret_headers={"Authorization": "Bearer t"},
    )
    kwargs = hook._spec({"n": 1}, None, {"X-Trace": "t1"}).to_kwargs()
    assert "Authorization" not in json.dumps(kwargs)  # never in the message
    result = await _deliver(app, kwargs, retries=2)
    assert result["status"] == 201 and result["body"] == "created" and result["attempt"] == 3
    assert "Bearer" not in repr(result)
    [request] = server.ledger
    assert request.body == b'{"n":1}'
    headers = request.headers
    assert headers["idempotency-key"] == headers["x-hare-task-id"] == "id-1"
    assert headers["x-hare-attempt"] == "3"
    assert headers["authorization"] == "Bearer t" and headers["x-trace"] == "t1"
    assert headers["content-type"] == "application/json"
    now = app.clock.time()
    assert verify("k", headers, request.body, method="POST", url=hook.url, now=now)
    assert not verify("other", headers, request.body, method="POST", url=hook.url, now=now)
    assert not verify("k", headers, request.body, method="POST", url=server.url("/x"), now=now)
    # made at the test clock's time
    assert not verify_signature("k", headers, request.body, method="POST", url=hook.url)


async def test_no_secret_no_signature_and_a_hooks_own_secret_wins(server: PushServer) -> None:
    url = server.script("/ok", Reply(200))
    await _deliver(memory_app(), _kwargs(memory_app(), url))
    app = _app()
    hook = app.http_task(url, name="own", signing_secret="hook-key")
    await _deliver(app, hook._spec(UNSET, b"raw", None).to_kwargs())
    unsigned, own = server.ledger
    assert "x-hare-signature" not in unsigned.headers
    assert verify("hook-key", own.headers, b"raw", method="POST", url=url, now=app.clock.time())
    assert own.headers["content-type"] == "application/octet-stream"


async def test_a_5xx_is_retried_with_the_backoff_and_the_status(server: PushServer) -> None:
    app = _app()
    url = server.script("/down", Reply(500, b"db is down"))
    with pytest.raises(Retry) as caught:
        await _deliver(app, _kwargs(app, url, max_retries=4, retry_jitter=False), retries=2)
    assert caught.value.countdown == 4.0 and caught.value.max_retries == 4
    failure = caught.value.exc
    assert isinstance(failure, PushFailed) and failure.status == 500
    assert failure.reason == "http-500" and "db is down" in failure.detail


async def test_retry_after_is_followed_and_capped(server: PushServer) -> None:
    app = _app()
    url = server.script("/busy", Reply(429, headers={"Retry-After": "120"}))
    with pytest.raises(Retry) as caught:
        await _deliver(app, _kwargs(app, url))
    assert caught.value.countdown == 120.0
    with pytest.raises(Retry) as caught:
        await _deliver(app, _kwargs(app, url, retry_after_max=30.0))
    assert caught.value.countdown == 30.0


async def test_a_4xx_and_a_redirect_are_dead_letters_at_once(server: PushServer) -> None:
    app = _app()
    gone = server.script("/gone", Reply(404, b"no such order"))
    moved = server.script("/moved", Reply(302, b"", {"Location": server.url("/ok")}))
    server.script("/ok", Reply(200))
    with pytest.raises(DeadLetterError) as caught:
        await _deliver(app, _kwargs(app, gone))
    assert caught.value.dead_reason == "http-404" and "no such order" in caught.value.reason
    with pytest.raises(DeadLetterError) as caught:
        await _deliver(app, _kwargs(app, moved))
    assert caught.value.dead_reason == "http-302" and server.url("/ok") in caught.value.reason
    assert [r.path for r in server.ledger] == ["/gone", "/moved"]
    result = await _deliver(app, _kwargs(app, moved, follow_redirects=True))
    assert result["status"] == 200 and server.ledger[-1].path == "/ok"


async def test_a_cut_connection_and_a_refused_one_are_retried(server: PushServer) -> None:
    app = _app()
    cut = server.script("/cut", Reply(200, b"half of it", cut=True))
    with pytest.raises(Retry) as caught:
        await _deliver(app, _kwargs(app, cut))
    assert isinstance(caught.value.exc, PushFailed)
    assert caught.value.exc.reason == "http-disconnected"
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(Retry) as caught:
        await _deliver(app, _kwargs(app, f"http://127.0.0.1:{port}/x"))
    assert isinstance(caught.value.exc, PushFailed)
    assert caught.value.exc.reason == "http-connect"


async def test_a_malformed_push_or_an_unknown_hook_is_a_dead_letter() -> None:
    app = _app()
    with pytest.raises(DeadLetterError) as caught:
        await _deliver(app, {"url": "ftp://x/"})
    assert caught.value.dead_reason == "http-malformed"
    kwargs = {**_kwargs(app, "https://svc/x"), "hook": "nobody-defined-me"}
    with pytest.raises(DeadLetterError) as caught:
        await _deliver(app, kwargs)
    assert caught.value.dead_reason == "http-unknown-hook"


async def test_a_push_naming_a_hook_gets_its_secrets_only_for_the_hooks_own_request(
    server: PushServer,
) -> None:
    app = _app()
    billing = server.script("/billing", Reply(200))
    elsewhere = server.script("/attacker", Reply(200))
    hook = app.http_task(billing, name="billing", secret_headers={"Authorization": "Bearer t"})
    genuine = hook._spec({"n": 1}, None, None).to_kwargs()
    forged = [
        {**genuine, "url": elsewhere},
        {**genuine, "method": "PUT"},
        {**genuine, "sending": {**genuine["sending"], "follow_redirects": True}},
    ]
    for kwargs in forged:
        with pytest.raises(DeadLetterError) as caught:
            await _deliver(app, kwargs)
        assert caught.value.dead_reason == "http-hook-mismatch"
        assert "Bearer" not in caught.value.reason
    assert server.ledger == []  # no request made, so no secret sent anywhere
    await _deliver(app, genuine)
    [request] = server.ledger
    assert request.path == "/billing" and request.headers["authorization"] == "Bearer t"


def test_secret_headers_and_following_redirects_do_not_go_together() -> None:
    app = _app()
    with pytest.raises(InvalidPush, match="follow_redirects"):
        app.http_task("https://svc/x", secret_headers={"X-Api-Key": "t"}, follow_redirects=True)
    app.http_task("https://svc/x", follow_redirects=True)  # no secrets: nothing to leak
    app.http_task("https://svc/y", secret_headers={"X-Api-Key": "t"})


async def test_a_task_id_that_cannot_be_a_header_is_a_dead_letter(server: PushServer) -> None:
    app = _app()
    kwargs = _kwargs(app, server.script("/ok", Reply(200)))
    for task_id in ("заказ-1", "id\n1"):
        message = Message(id=task_id, task=PUSH_TASK, kwargs=kwargs)
        with running(TaskContext(message=message)), pytest.raises(DeadLetterError) as caught:
            await app.http.deliverer.deliver(**kwargs)
        assert caught.value.dead_reason == "http-malformed"
    assert server.ledger == []


async def test_a_push_waits_for_its_turn_at_a_busy_host_no_longer_than_its_timeout(
    server: PushServer,
) -> None:
    """With max_per_host=1 and a slow origin, a second push does not hold its worker slot
    until the first is answered: past its timeout it is retried like a 503, no request made."""
    app = _app()
    slow = server.script("/slow", Reply(200, delay=1.0))
    quick = server.script("/quick", Reply(200))
    first = _kwargs(app, slow, max_per_host=1, timeout=30.0)
    second = _kwargs(app, quick, max_per_host=1, timeout=0.1, retry_jitter=False)
    deliverer = app.http.deliverer

    async def attempt(kwargs: dict[str, Any]) -> Any:
        message = Message(id="id-1", task=PUSH_TASK, kwargs=kwargs, retries=2)
        with running(TaskContext(message=message)):
            return await deliverer.deliver(**kwargs)

    try:
        under_way = asyncio.create_task(attempt(first))
        await eventually(lambda: server.requests("/slow"), within=10)
        with pytest.raises(Retry) as caught:
            await attempt(second)
        assert caught.value.countdown == 4.0  # the backoff, as for a 503 without Retry-After
        failure = caught.value.exc
        assert isinstance(failure, PushFailed) and failure.reason == "http-host-busy"
        assert "max_per_host" in failure.detail and failure.status is None
        assert server.requests("/quick") == []
        assert (await under_way)["status"] == 200
        assert (await attempt(second))["status"] == 200  # the host's turn came back
    finally:
        await deliverer.aclose()


async def test_a_dispatcher_forgets_idle_origins_past_its_bound(server: PushServer) -> None:
    from hare.http.client import Dispatcher

    dispatcher = Dispatcher(max_hosts=2)
    server.script("/ok", Reply(200))
    options: dict[str, Any] = {"headers": {}, "body": b"", "seconds": 5.0, "max_per_host": 1}
    with socket.socket() as one, socket.socket() as two:  # ports nobody listens on
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        origins = [server.url("/ok")]
        origins += [f"http://127.0.0.1:{s.getsockname()[1]}/x" for s in (one, two)]
        try:
            for url in origins * 2:
                with contextlib.suppress(NoResponse):
                    await dispatcher.send(method="GET", url=url, follow_redirects=False, **options)
                assert dispatcher.hosts <= 2
        finally:
            await dispatcher.aclose()
    assert len(server.requests("/ok")) == 2


# -- sending, on the memory broker ----------------------------------------------------------


async def test_a_push_is_a_plain_task_message_with_no_credentials_in_sight() -> None:
    app = memory_app()
    hook = app.http_task(
        "https://svc/hook",
        queue="webhooks",
        headers={"X-Tenant": "a"},
        secret_headers={"Authorization": "Bearer t"},
        max_retries=2,
    )
    sent = await hook.aapply_async(json={"n": 1}, countdown=0, task_id="t-1")
    assert (sent.id, sent.task, sent.queue) == ("t-1", PUSH_TASK, "webhooks")
    one_off = await app.apush("https://svc/other", data="hi", queue="webhooks")
    transport = (await app.publisher()).transport
    messages = [
        decode(d.body, d.properties, accept=frozenset({"application/json"}))
        for d in await drain(transport, "webhooks")
    ]
    assert [m.kwargs["url"] for m in messages] == ["https://svc/hook", "https://svc/other"]
    assert messages[1].id == one_off.id
    first = messages[0]
    assert first.kwargs["headers"] == {"X-Tenant": "a", "Content-Type": "application/json"}
    assert first.kwargs["retry"]["max_retries"] == 2
    assert first.kwargs["hook"] == hook.name
    assert first.kwargsrepr == "{'method': 'POST', 'url': 'https://svc/hook', 'body': <7 bytes>}"
    assert "Bearer" not in repr(first)


def test_bad_pushes_raise_named_errors_when_sent() -> None:
    app = memory_app()
    for call in (
        lambda: app.push("svc/x", json={}),
        lambda: app.push("https://svc/x", json={}, data=b"x"),
        lambda: app.push("https://svc/x"),
        lambda: app.push("https://svc/x", json={}, method="FETCH"),
        lambda: app.push("https://svc/x", json={}, headers={"X-Hare-Attempt": "1"}),
        lambda: app.push("https://svc/x", json={}, headers={"Authorization": "t"}),
        lambda: app.push("https://svc/x", json={}, headers={"X-A": 1}),
        lambda: app.push("https://svc/x", json={}, headers={"X-Name": "Zoë"}),
        lambda: app.push("https://svc/x", json={}, headers={"X-Zoë": "a"}),
        lambda: app.http_task("https://svc/x", colour="red"),
    ):
        with pytest.raises(InvalidPush):
            call()
    app.http_task("https://svc/x", name="h")
    with pytest.raises(ConfigurationError):
        app.http_task("https://svc/y", name="h")


def test_importing_and_sending_do_not_import_httpx() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from hare import Hare; app = Hare('x', broker='memory://', environ={}); "
        "app.http_task('https://svc/x'); assert 'httpx' not in sys.modules, 'httpx imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_dead_letter_error_dead_letters_with_the_tasks_own_reason() -> None:
    clock = ManualClock()
    app = memory_app(clock, default_queue="work")

    @app.task(name="t.refuse")
    async def refuse() -> None:
        raise DeadLetterError("invalid-order", "order o-1 has no lines")

    async with running_worker(app):
        await app.asend_task("t.refuse")
        transport = (await app.publisher()).transport
        dead: list[Any] = []

        async def collect() -> bool:
            dead.extend(await drain(transport, "work.dead"))
            return bool(dead)

        for _ in range(100):
            if await collect():
                break
            await clock.yield_control()
        await until(lambda: bool(dead), clock)
    headers = dead[0].properties.headers
    assert headers["hare-dead-reason"] == "invalid-order"
    assert headers["hare-dead-detail"] == "order o-1 has no lines"
    assert headers["hare-dead-attempts"] == 1


async def test_a_worker_runs_the_push_task_on_its_loop(server: PushServer) -> None:
    app = _app()
    url = server.script("/ok", Reply(200))
    assert app.http_task(url).queue == "default" and app.tasks[PUSH_TASK].is_async
    async with running_worker(app):
        await app.apush(url, json={"n": 1})
        await eventually(lambda: server.requests("/ok"), within=10)


async def test_a_worker_without_httpx_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    app = memory_app()
    app.http_task("https://svc/x")
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"hare-queue\[http\]"):
        async with running_worker(app):
            pass


async def test_without_httpx_a_push_that_reaches_a_worker_is_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _app()
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "hare.http.client", raising=False)
    with pytest.raises(DeadLetterError) as caught:
        await _deliver(app, _kwargs(app, "https://svc/x"))
    assert caught.value.dead_reason == "http-unavailable"
