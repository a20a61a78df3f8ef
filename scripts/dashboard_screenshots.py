"""Take the screenshots in docs/dashboard.md: a small, realistic fleet, and each page in Chromium.

    .venv/bin/python scripts/dashboard_screenshots.py [docs/img]

In a vhost of its own on the local RabbitMQ (made with rabbitmqctl, deleted at the end): two
`hare worker -E` processes (sending Celery's task events) of tests/apps/dashboard_app.py on
queue `orders` (and
`orders.emails`), a few charges that fail (dead letters), then many that succeed, emails that
take a while (running, and some waiting), charges delayed by a countdown (the ladder), the
app's hourly schedule, and the task events of a Celery worker with -E in the same fleet (a
migration in progress). Then `hare dashboard` and Playwright driving /usr/bin/chromium, 1200
pixels wide, one PNG per page.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hare import Hare  # noqa: E402
from tests.amqp.helpers import WorkerProcess  # noqa: E402
from tests.dashboard.helpers import (  # noqa: E402
    APP,
    DashboardProcess,
    celery_task_events,
    publish_events,
)

BROKER = os.environ.get("HARE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
TOKEN = "screenshot-token-0123456789"
WIDTH = 1200


def ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


async def populate(client: Hare, fixed: Path) -> None:
    for n in (1041, 1042, 1057):
        await client.asend_task("dash.charge", [f"order-{n}"], task_id=f"charge-order-{n}")
    await asyncio.sleep(3)  # they fail: dead letters
    await asyncio.to_thread(fixed.touch)
    for n in range(1100, 1130):
        await client.asend_task("dash.charge", [f"order-{n}"])
    for n in range(11):
        await client.asend_task("dash.email", [f"customer-{n}@example.com"], queue="orders.emails")
    for minutes in (15, 30, 45, 90):
        await client.asend_task("dash.charge", [f"order-{2000 + minutes}"], countdown=minutes * 60)
    failed = {
        "type": "task-failed",
        "exception": "TimeoutError('smtp.example.com')",
        "traceback": "Traceback (most recent call last):\n  ...\nTimeoutError: smtp.example.com",
    }
    for n in range(8):
        ok = {"type": "task-succeeded", "result": f"'invoice-{n}.pdf'", "runtime": 0.1 + n / 20}
        events = celery_task_events(
            f"5f0c{n:02d}aa-legacy-invoice", "billing.invoice", f"({7000 + n},)", ok
        )
        await publish_events(client, events)
    events = celery_task_events("9b1e77c2-legacy-mail", "mail.send", "('ops@example.com',)", failed)
    await publish_events(client, events)


async def shoot(url: str, folder: Path) -> None:
    from playwright.async_api import async_playwright

    pages = ["queues", "workers", "tasks", "dead", "dead/orders/show/charge-order-1042"]
    pages += ["dead/orders/replay/charge-order-1042", "delayed"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = await browser.new_page(viewport={"width": WIDTH, "height": 700})
        for path in pages:
            await page.goto(f"{url}/{path}")
            await page.wait_for_timeout(1500)
            name = {"dead/orders/show/charge-order-1042": "dead-letter"}.get(path, path)
            name = "confirm" if "/replay/" in path else name
            await page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=True)
            print(f"docs: {folder / f'dashboard-{name}.png'}")
        await browser.close()


async def main(folder: Path) -> None:
    vhost = "hare-screens-" + uuid.uuid4().hex[:6]
    ctl("add_vhost", vhost)
    tmp = Path(tempfile.mkdtemp())
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = urlunsplit(urlsplit(BROKER)._replace(path="/" + quote(vhost, safe="")))
        env = {**os.environ, "HARE_BROKER_URL": url, "DASH_QUEUE": "orders", "DASH_APP": "shop"}
        env |= {"DASH_FIXED": str(tmp / "fixed"), "DASH_EMAIL_SECONDS": "300"}
        env |= {"PYTHONPATH": str(ROOT)}
        workers = [
            WorkerProcess(APP, "-c", "4", "-E", "-n", f"shop@web-{n}", env=env, cwd=ROOT)
            for n in (1, 2)
        ]
        dashboard = DashboardProcess("--port", "0", "--token", TOKEN, "--refresh", "2", env=env)
        client = Hare("shop", broker=url, environ={}, default_queue="orders")
        try:
            for worker in workers:
                await worker.wait_for("worker ready")
            address = await dashboard.url()
            await asyncio.sleep(1)  # the dashboard listens to task events
            await populate(client, tmp / "fixed")
            await asyncio.sleep(2)
            await shoot(address, folder)
        finally:
            await client.aclose()
            dashboard.stop()
            for worker in workers:
                worker.process.kill()
                worker.stop()
    finally:
        ctl("delete_vhost", vhost)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "img")))
