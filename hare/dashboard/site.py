"""What every page and action shares: the dashboard's settings, its state, rendering.

`Config` says how the dashboard serves an app; `Dashboard` holds the app, the ring of recent
tasks (`hare.dashboard.ring`) and its feed, and the Jinja2 templates, with autoescape on for
every template: a task argument is text, never markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from hare.app import Hare
from hare.cli.common import describe_broker
from hare.dashboard.feed import EventFeed
from hare.dashboard.ring import TaskRing
from hare.dashboard.security import AUTH_COOKIE, LOOPBACK_HOSTS, auth_cookie, is_loopback, same

__all__ = ("Config", "Dashboard")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How the dashboard serves `app`: `token` guards actions always, and viewing when
    `host` is not loopback. `queues` are the app's (`hare.cli.queues.app_queues`)."""

    host: str
    token: str
    queues: list[str]
    management: str | None  # the management API's base URL; None: none to ask
    refresh: float = 3.0  # seconds between two live updates of a page
    inspect_timeout: float = 1.0
    events: bool = True  # consume Celery events (`celeryev`) into the recent-tasks ring
    allowed_hosts: list[str] = field(default_factory=list)  # Host headers; [] by the bind

    @property
    def view_needs_token(self) -> bool:
        return not is_loopback(self.host)

    def hosts(self) -> list[str]:
        if self.allowed_hosts:
            return self.allowed_hosts
        return list(LOOPBACK_HOSTS) if is_loopback(self.host) else ["*"]


class Dashboard:
    """What the handlers share: the app, the settings, the ring of recent tasks, templates."""

    def __init__(self, app: Hare, config: Config) -> None:
        self.app, self.config = app, config
        self.ring = TaskRing()
        self.feed = EventFeed(app, self.ring)
        self.broker = describe_broker(app.settings.broker_url)
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("hare.dashboard", "templates"),
            autoescape=True,  # every template, whatever its name: arguments are text
            undefined=jinja2.StrictUndefined,
        )
        environment.filters["when"] = _when
        self.templates = Jinja2Templates(env=environment)

    def authed(self, request: Request) -> bool:
        """Whether the request carries the token: the auth cookie, or a bearer header."""
        expected = auth_cookie(self.config.token)
        if same(request.cookies.get(AUTH_COOKIE), expected):
            return True
        bearer = request.headers.get("authorization", "")
        return bearer.startswith("Bearer ") and same(bearer[7:], self.config.token)

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        base = {
            "app_name": self.app.main or "app",
            "broker": self.broker,
            "csrf": request.state.csrf,
            "authed": self.authed(request),
            "refresh": self.config.refresh,
            "path": request.url.path,
        }
        return self.templates.TemplateResponse(request, name, {**base, **context}, status)


def _when(stamp: float | datetime | None) -> str:
    """A time as `2026-12-07 22:03:11Z`; `-` for None."""
    if stamp is None:
        return "-"
    moment = stamp if isinstance(stamp, datetime) else datetime.fromtimestamp(stamp, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
