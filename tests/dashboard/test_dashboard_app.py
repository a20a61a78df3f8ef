"""The dashboard's ASGI app on the memory broker (Starlette's TestClient): every page renders,
the CSRF value, the Origin and the token guard every action, viewing beyond loopback needs the
token, a task argument is shown as text, and the CLI refuses a bind it must refuse."""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Iterator

import pytest

from hare import Hare, Reject
from hare.cli.main import main
from hare.dashboard.security import check_bind, is_loopback
from hare.dashboard.site import Config
from hare.dashboard.web import create_app
from hare.errors import ConfigurationError
from hare.testing import running_worker

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "s3cret-token-for-tests"
PWNED = "<script>window.pwned=1</script>"


def shop() -> Hare:
    """A memory app whose `t.charge(note)` always dead-letters (Reject)."""
    app = Hare("shop", broker="memory://", environ={}, default_queue="work")

    @app.task(name="t.charge")
    async def charge(note: str) -> None:
        raise Reject(f"no such order: {note}")

    return app


async def dead_letter(app: Hare, note: str) -> None:
    """Send `t.charge(note)` and run a worker until it is a dead letter in work.dead."""
    await app.asend_task("t.charge", [note], task_id=f"id-{len(note)}")
    transport = (await app.publisher()).transport
    async with running_worker(app):
        for _ in range(500):
            try:
                if await transport.message_count("work.dead"):
                    return
            except Exception:  # not declared yet
                pass
            await asyncio.sleep(0.01)
    raise AssertionError("no dead letter")


def client(app: Hare, host: str = "127.0.0.1") -> TestClient:
    config = Config(
        host=host,
        token=TOKEN,
        queues=["work"],
        management=None,
        events=False,
        inspect_timeout=0.2,
        allowed_hosts=["testserver"],
    )
    return TestClient(create_app(app, config), follow_redirects=False)


@pytest.fixture
def dashboard() -> Iterator[tuple[TestClient, Hare]]:
    app = shop()
    asyncio.run(dead_letter(app, PWNED))
    with client(app) as test:
        yield test, app


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def test_every_page_renders(dashboard: tuple[TestClient, Hare]) -> None:
    test, _ = dashboard
    for path in ("/queues", "/workers", "/tasks", "/dead", "/delayed", "/tasks/x", "/login"):
        answer = test.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert "Content-Security-Policy" in answer.headers
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    queues = test.get("/queues").text
    assert 'data-queue="work"' in queues and ">?<" in queues  # no management API: unacked ?
    assert test.get("/").headers["location"] == "/queues"


def test_a_task_argument_is_text_not_markup(dashboard: tuple[TestClient, Hare]) -> None:
    test, _ = dashboard
    shown = test.get("/dead/work/show/id-31").text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in shown
    assert PWNED not in shown
    listing = test.get("/dead").text
    assert "no such order" in listing and PWNED not in listing
    ring = test.app.state.dashboard.ring  # type: ignore[attr-defined]
    ring.apply({"type": "task-received", "uuid": "u1", "name": "t.x", "args": f"('{PWNED}',)"})
    tasks = test.get("/tasks").text
    assert "&lt;script&gt;" in tasks and PWNED not in tasks


def test_an_action_needs_the_csrf_value_and_the_token(dashboard: tuple[TestClient, Hare]) -> None:
    test, app = dashboard
    confirm = test.get("/dead/work/replay-all")
    assert confirm.status_code == 200 and 'name="token"' in confirm.text
    csrf = csrf_of(confirm.text)
    refused = [
        {"token": TOKEN},  # no CSRF value
        {"csrf": "x" * 32, "token": TOKEN},  # not this browser's
        {"csrf": csrf},  # no token
        {"csrf": csrf, "token": "wrong-token-wrong-token"},
    ]
    for form in refused:
        answer = test.post("/dead/work/purge", data=form)
        assert answer.status_code == 403, form
    other_site = test.post(
        "/dead/work/purge",
        data={"csrf": csrf, "token": TOKEN},
        headers={"Origin": "http://evil.example"},
    )
    assert other_site.status_code == 403
    assert asyncio.run(_dead_count(app)) == 1  # nothing was purged

    done = test.post("/dead/work/purge", data={"csrf": csrf, "token": TOKEN})
    assert done.status_code == 303
    assert "purged%201%20dead%20letters" in done.headers["location"]
    assert asyncio.run(_dead_count(app)) == 0
    # The token given in the form logged the browser in: the next confirmation asks no token.
    assert 'name="token"' not in test.get("/dead/work/replay-all").text


async def _dead_count(app: Hare) -> int:
    transport = app.make_transport()
    await transport.connect()
    try:
        return await transport.message_count("work.dead")
    finally:
        await transport.close()


def test_viewing_beyond_loopback_needs_the_token() -> None:
    with client(shop(), host="0.0.0.0") as test:
        assert test.get("/queues").headers["location"] == "/login"
        assert test.get("/static/dashboard.css").status_code == 200
        bearer = test.get("/queues", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        login = test.get("/login")
        wrong = test.post("/login", data={"csrf": csrf_of(login.text), "token": "nope" * 5})
        assert wrong.status_code == 403
        right = test.post("/login", data={"csrf": csrf_of(login.text), "token": TOKEN})
        assert right.status_code == 303
        assert test.get("/queues").status_code == 200


def test_on_loopback_a_foreign_host_header_is_refused() -> None:
    config = Config(host="127.0.0.1", token=TOKEN, queues=["work"], management=None, events=False)
    with TestClient(create_app(shop(), config), base_url="http://127.0.0.1:5555") as test:
        assert test.get("/queues").status_code == 200
        assert test.get("/queues", headers={"Host": "evil.example"}).status_code == 400


def test_the_bind_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(ConfigurationError, match="--token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigurationError, match="16 characters"):
        check_bind("127.0.0.1", "short")


def test_the_command_refuses_a_public_bind_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARE_DASHBOARD_TOKEN", raising=False)
    code = main(["dashboard", "tests.apps.dashboard_app:app", "--host", "0.0.0.0"])
    assert code == 2
    assert "give --token" in capsys.readouterr().err


def test_a_broker_that_does_not_answer_is_said_on_each_page() -> None:
    app = Hare("shop", broker="amqp://guest:guest@127.0.0.1:1/", environ={}, connect_timeout=1)
    with client(app) as test:
        for path in ("/queues", "/workers", "/dead", "/dead/work/show/x", "/delayed"):
            answer = test.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert "Cannot read the broker" in answer.text, path


def test_the_hare_command_loads_no_web_stack_until_the_dashboard_runs() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, hare.cli.main; "
        "print(sorted(m for m in ('starlette', 'jinja2', 'uvicorn', 'hare.dashboard.web') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
