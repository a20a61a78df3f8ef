"""The dashboard in a real browser (Playwright driving Debian's Chromium, /usr/bin/chromium) on a
real RabbitMQ, with a real `hare worker` and `hare dashboard` as subprocesses.

One scenario, judged by a ledger the worker writes: every page loads without a script error;
a task whose argument is `<script>window.pwned=1</script>` fails and dead-letters, and the
page shows its argument as text (`window.pwned` stays undefined); a second dead letter
appears on the open page without a reload; task events published as a Celery worker with
`-E` publishes them show on the tasks page and are found by id; a wrong token is refused
and changes nothing; after the cause is fixed, replaying the dead letter from the page
(through its confirmation) runs it: the ledger has it once. And `hare dashboard` bound
beyond loopback without a token refuses to start.

`HARE_DASHBOARD_SCREENSHOTS=DIR` also saves a screenshot of each page there (see
scripts/dashboard_screenshots.py for the documentation's).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hare import Hare
from tests.amqp.helpers import WorkerProcess
from tests.dashboard.helpers import (
    APP,
    ROOT,
    DashboardProcess,
    celery_task_events,
    publish_events,
)
from tests.faults.conftest import private_vhost

pytestmark = [pytest.mark.amqp]

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789"
PWNED = "<script>window.pwned=1</script>"


@pytest.fixture
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost of the test's own: its queues, ladder, schedules and pidbox go with it."""
    yield from private_vhost(amqp_url, "dashboard")


@pytest.fixture
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        message = f"no {CHROMIUM} (scripts/test.sh installs Debian's chromium: ensure_chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " -- under CI a missing browser is a failure")
        pytest.skip(message)
    return CHROMIUM


@asynccontextmanager
async def fleet(amqp_url: str, unique: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A worker and a dashboard of the test app on queue `unique`, and a client app."""
    env = {
        **os.environ,
        "HARE_BROKER_URL": amqp_url,
        "DASH_QUEUE": unique,
        "DASH_APP": unique,
        "DASH_LEDGER": str(tmp_path / "ledger"),
        "DASH_FIXED": str(tmp_path / "fixed"),
        "PYTHONPATH": str(ROOT),
    }
    worker = WorkerProcess(APP, "-c", "4", "-n", f"{unique}@dash", env=env, cwd=ROOT)
    dashboard = DashboardProcess("--port", "0", "--token", TOKEN, "--refresh", "1", env=env)
    client = Hare(unique, broker=amqp_url, environ={}, default_queue=unique)
    try:
        await worker.wait_for("worker ready")
        yield {"url": await dashboard.url(), "client": client, "tmp": tmp_path, "node": unique}
    finally:
        dashboard.stop()
        worker.stop()
        await client.aclose()


async def dead_count(client: Hare, queue: str) -> int:
    transport = (await client.publisher()).transport
    return await transport.message_count(queue + ".dead")


async def fail_one(client: Hare, queue: str, key: str, task_id: str, dead_before: int) -> None:
    """Send `dash.charge(key)` (it fails while the cause is not fixed): wait until it is dead."""
    await client.asend_task("dash.charge", [key], task_id=task_id)
    deadline = time.monotonic() + 20
    while await dead_count(client, queue) <= dead_before:
        assert time.monotonic() < deadline, "the task never dead-lettered"
        await asyncio.sleep(0.05)


async def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("HARE_DASHBOARD_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"), full_page=True)


@pytest.mark.anyio
async def test_operating_a_fleet_from_the_dashboard(
    vhost_url: str, unique: str, tmp_path: Path, chromium: str
) -> None:
    from playwright.async_api import async_playwright

    async with fleet(vhost_url, unique, tmp_path) as setup, async_playwright() as pw:
        url, client = setup["url"], setup["client"]
        await fail_one(client, unique, PWNED, f"{unique}-1", 0)
        browser = await pw.chromium.launch(executable_path=chromium)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await check_pages(page, url, unique, setup["node"])
            await check_escaping_and_live_update(page, url, client, unique)
            await check_task_events(page, url, client, unique)
            await check_wrong_token_is_refused(page, url, client, unique)
            await check_replay(page, url, unique, tmp_path)
            refused = "the server responded with a status of 403"  # the wrong token's page
            assert [error for error in errors if refused not in error] == []
        finally:
            await browser.close()


async def check_pages(page: Any, url: str, queue: str, node: str) -> None:
    await page.goto(f"{url}/queues")
    row = page.locator(f'#queues tr[data-queue="{queue}"]')
    await row.wait_for()
    assert (await row.locator("td.dead").inner_text()).strip() == "1"
    await shoot(page, "queues")
    await page.goto(f"{url}/workers")
    await page.locator(f'section[data-worker="{node}@dash"]').wait_for(timeout=10_000)
    await shoot(page, "workers")
    await page.goto(f"{url}/delayed")
    assert "hourly-report" in await page.locator("#schedules").inner_text()
    await shoot(page, "delayed")


async def check_escaping_and_live_update(page: Any, url: str, client: Hare, queue: str) -> None:
    await page.goto(f"{url}/dead/{queue}/show/{queue}-1")
    assert PWNED in await page.locator("#args").inner_text()  # shown as text...
    assert await page.evaluate("typeof window.pwned") == "undefined"  # ...never run
    await page.goto(f"{url}/dead")
    await page.evaluate("window.notReloaded = true")
    await fail_one(client, queue, "second", f"{queue}-2", 1)
    await page.locator(f'tr[data-dead="{queue}-2"]').wait_for(timeout=10_000)
    assert await page.evaluate("window.notReloaded") is True  # htmx swapped it in place
    assert PWNED in await page.locator("#live").inner_text()
    assert await page.evaluate("typeof window.pwned") == "undefined"
    await shoot(page, "dead")


async def check_task_events(page: Any, url: str, client: Hare, queue: str) -> None:
    task_id = f"{queue}-legacy"
    succeeded = {"type": "task-succeeded", "result": "'cat-small.png'", "runtime": 0.25}
    events = celery_task_events(task_id, "legacy.resize", "('cat.png',)", succeeded)
    await page.goto(f"{url}/tasks")
    row = page.locator(f'tr[data-task="{task_id}"]')
    for _ in range(20):  # until the dashboard's event queue is bound (it starts with it)
        await publish_events(client, events)
        try:
            await row.wait_for(timeout=1500)
            break
        except Exception:
            continue
    assert "SUCCESS" in await row.inner_text()
    await page.fill('input[name="q"]', task_id)
    await page.click("form.search button")
    await page.wait_for_url(f"**/tasks?q={task_id}")
    assert await page.locator("#tasks tbody tr").count() == 1
    await shoot(page, "tasks")


async def check_wrong_token_is_refused(page: Any, url: str, client: Hare, queue: str) -> None:
    await page.goto(f"{url}/dead/{queue}/purge")
    await page.fill('input[name="token"]', "not-the-token-at-all")
    await page.click("#confirm")
    assert "token is missing or wrong" in await page.locator("p.problem").inner_text()
    assert await dead_count(client, queue) == 2  # nothing purged
    # And a POST from outside the page (no CSRF value, no token) is refused too.
    answer = await page.request.post(f"{url}/dead/{queue}/purge", form={"x": "1"})
    assert answer.status == 403
    assert await dead_count(client, queue) == 2


async def check_replay(page: Any, url: str, queue: str, tmp_path: Path) -> None:
    (tmp_path / "fixed").touch()  # the cause is fixed
    await page.goto(f"{url}/dead")
    await page.click(f'tr[data-dead="{queue}-1"] a.button')
    assert "Replay" in await page.locator("h1").inner_text()  # the confirmation
    await page.fill('input[name="token"]', TOKEN)
    await page.click("#confirm")
    assert "replayed 1 of" in await page.locator("p.done").inner_text(), await page.content()
    ledger = tmp_path / "ledger"
    deadline = time.monotonic() + 20
    while not ledger.exists() or PWNED not in ledger.read_text():
        assert time.monotonic() < deadline, "the replayed task never ran"
        await asyncio.sleep(0.05)
    await page.locator(f'tr[data-dead="{queue}-1"]').wait_for(state="detached", timeout=10_000)
    assert ledger.read_text().splitlines() == [PWNED]


def test_a_public_bind_without_a_token_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HARE_DASHBOARD_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "hare", "dashboard", APP, "--host", "0.0.0.0"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "give --token" in done.stderr
