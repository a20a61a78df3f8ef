"""What changes something: replaying and purging dead letters, giving the token.

Each action is two steps: a GET shows what it will do and asks (the confirmation page, with
a form), the form's POST does it. Every POST must carry the CSRF value its browser's cookie
holds (and, when the browser sends `Origin`, come from the dashboard's own origin); an action
also needs the token, always: the auth cookie from `/login`, or the form's `token` field (which
then logs the browser in). A refused POST answers 403 and changes nothing. What an action did
is said on the dead letters page it redirects to.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hare import dlq
from hare.dashboard.security import AUTH_COOKIE, CSRF_COOKIE, auth_cookie, same
from hare.dashboard.site import Dashboard
from hare.errors import HareError

__all__ = ("action_routes",)

_FORM_TYPE, _MAX_FORM = "application/x-www-form-urlencoded", 16_384


def action_routes(dashboard: Dashboard) -> list[Route]:
    actions = _Actions(dashboard)
    both = ["GET", "POST"]
    return [
        Route("/login", actions.login, methods=both),
        Route("/logout", actions.logout, methods=["POST"]),
        Route("/dead/{queue:str}/replay/{name:str}", actions.replay_one, methods=both),
        Route("/dead/{queue:str}/replay-all", actions.replay_all, methods=both),
        Route("/dead/{queue:str}/purge", actions.purge, methods=both),
    ]


class _Actions:
    def __init__(self, dashboard: Dashboard) -> None:
        self.d = dashboard

    async def _checked(self, request: Request) -> tuple[dict[str, str] | None, str | None]:
        """The POST's form, or why it is refused: no CSRF match, another origin, no token."""
        form = await _form(request)
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(request):
            return None, "the request came from another site (Origin)"
        if not same(form.get("csrf"), request.cookies.get(CSRF_COOKIE) or "!"):
            return None, "the form's CSRF value does not match this browser's (reload the page)"
        if not self.d.authed(request) and not same(form.get("token"), self.d.config.token):
            return None, "the dashboard token is missing or wrong"
        return form, None

    def _refuse(self, request: Request, why: str) -> Response:
        return self.d.render(request, "refused.html", {"why": why}, status=403)

    def _done(self, request: Request, message: str) -> Response:
        response = RedirectResponse(f"/dead?done={quote(message)}", status_code=303)
        if not self.d.authed(request):  # the token came in the form: keep it for the session
            _log_in(response, self.d.config.token)
        return response

    def _confirm(self, request: Request, **context: object) -> Response:
        return self.d.render(request, "confirm.html", context)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.d.render(request, "login.html", {"why": None})
        form, why = await self._checked(request)
        if form is None:
            return self.d.render(request, "login.html", {"why": why}, status=403)
        response = RedirectResponse("/queues", status_code=303)
        _log_in(response, self.d.config.token)
        return response

    async def logout(self, request: Request) -> Response:
        csrf = (await _form(request)).get("csrf")
        if csrf is None or not same(csrf, request.cookies.get(CSRF_COOKIE) or "!"):
            return self._refuse(request, "the form's CSRF value does not match")
        response = RedirectResponse("/queues", status_code=303)
        response.delete_cookie(AUTH_COOKIE, path="/")
        return response

    async def replay_one(self, request: Request) -> Response:
        queue, name = request.path_params["queue"], request.path_params["name"]
        if request.method == "GET":
            return self._confirm(
                request,
                title=f"Replay {name}?",
                what=f"Send dead letter {name} of {dlq.dead_queue_name(queue)} back to "
                f"{queue} as a fresh task (retries 0). It runs again.",
                button="Replay",
            )
        return await self._replay(request, queue, dlq.Selector(ids=frozenset({name})))

    async def replay_all(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        if request.method == "GET":
            return self._confirm(
                request,
                title=f"Replay every dead letter of {queue}?",
                what=f"Send every dead letter of {dlq.dead_queue_name(queue)} back to {queue} "
                "as fresh tasks. Each runs again.",
                button="Replay all",
            )
        return await self._replay(request, queue, dlq.Selector(every=True))

    async def _replay(self, request: Request, queue: str, selector: dlq.Selector) -> Response:
        form, why = await self._checked(request)
        if form is None:
            return self._refuse(request, why or "refused")
        try:
            done = await dlq.replay(self.d.app, queue, selector)
        except HareError as exc:
            return self._done(request, f"replay failed: {exc}")
        message = f"replayed {done.replayed} of {done.examined} examined from {queue}.dead"
        if done.missing:
            message += f"; not found: {', '.join(sorted(done.missing))}"
        if done.expired:
            message += f"; {done.expired} left, past their expires"
        if done.error is not None:
            message += f"; stopped: {done.error}"
        return self._done(request, message)

    async def purge(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        if request.method == "GET":
            return self._confirm(
                request,
                title=f"Purge the dead letters of {queue}?",
                what=f"Drop every dead letter of {dlq.dead_queue_name(queue)} for good. "
                "This cannot be undone.",
                button="Purge",
            )
        form, why = await self._checked(request)
        if form is None:
            return self._refuse(request, why or "refused")
        try:
            done = await dlq.purge(self.d.app, queue)
        except HareError as exc:
            return self._done(request, f"purge failed: {exc}")
        return self._done(request, f"purged {done.purged} dead letters from {queue}.dead")


async def _form(request: Request) -> dict[str, str]:
    """A POST's url-encoded form (the dashboard's forms are small: at most `_MAX_FORM` bytes
    are read; anything else is an empty form, which every check refuses)."""
    if request.headers.get("content-type", "").split(";")[0] != _FORM_TYPE:
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _log_in(response: Response, token: str) -> None:
    response.set_cookie(AUTH_COOKIE, auth_cookie(token), httponly=True, samesite="strict", path="/")


def _origin(request: Request) -> str:
    """This dashboard's origin as the browser names it: scheme://host[:port]."""
    url = urlsplit(str(request.url))
    return f"{url.scheme}://{request.headers.get('host', url.netloc)}"
