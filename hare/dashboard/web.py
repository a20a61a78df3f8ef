"""The dashboard as an ASGI app (Starlette): its settings, its guard, its pages' rendering.

`create_app(app, config)` returns the Starlette application; `hare.dashboard.serve` runs it
with uvicorn. Every response passes through `Guard` (the security model is in
`hare.dashboard.security`): it hands each browser a CSRF value, refuses a page to a viewer
without the token when the dashboard is bound beyond loopback, and sets headers that keep the
page from running any script but its own (`Content-Security-Policy`) or being framed.
Templates are Jinja2 with autoescape on: a task argument is text, never markup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hare.app import Hare
from hare.dashboard.actions import action_routes
from hare.dashboard.pages import page_routes
from hare.dashboard.security import CSRF_COOKIE, new_secret
from hare.dashboard.site import Config, Dashboard

__all__ = ("create_app",)

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes a form's Origin "null"
    "Cache-Control": "no-store",
}
#: Paths served without the token even beyond loopback.
_OPEN = ("/login", "/static/")


class Guard(BaseHTTPMiddleware):
    """CSRF cookie for every browser, the token for viewing beyond loopback, safe headers."""

    def __init__(self, app: Any, dashboard: Dashboard) -> None:
        super().__init__(app)
        self.dashboard = dashboard

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.cookies.get(CSRF_COOKIE)
        request.state.csrf = given if given and len(given) >= 16 else new_secret()
        if self._refused(request):
            response: Response = RedirectResponse("/login", status_code=303)
        else:
            response = await call_next(request)
        if request.state.csrf != given:
            response.set_cookie(
                CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict", path="/"
            )
        response.headers.update(_HEADERS)
        return response

    def _refused(self, request: Request) -> bool:
        if not self.dashboard.config.view_needs_token:
            return False
        if request.url.path.startswith(_OPEN):
            return False
        return not self.dashboard.authed(request)


def create_app(app: Hare, config: Config) -> Starlette:
    """The dashboard of `app` as a Starlette application."""
    dashboard = Dashboard(app, config)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        feed = asyncio.create_task(dashboard.feed.run()) if config.events else None
        try:
            yield
        finally:
            if feed is not None:
                feed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed
            await app.aclose()

    static = StaticFiles(packages=[("hare.dashboard", "static")])
    routes: list[Route | Mount] = [
        *page_routes(dashboard),
        *action_routes(dashboard),
        Mount("/static", app=static, name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=config.hosts()),
        Middleware(Guard, dashboard=dashboard),
    ]
    starlette = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    starlette.state.dashboard = dashboard
    return starlette
