"""The pages: queues, workers, recent tasks, dead letters, the delay ladder and schedules.

Each page is a full HTML page whose live part (`#live`) htmx fetches again every
`Config.refresh` seconds (the same URL; htmx keeps `#live` of the answer), so what changes
shows without a reload and the page works without JavaScript too. A page whose broker read
fails says why in place of its tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hare import dlq
from hare.dashboard.backlog import dead_letters, delayed, lookup_result, schedules
from hare.dashboard.broker import overview, workers
from hare.dashboard.site import Dashboard
from hare.errors import HareError

__all__ = ("page_routes",)

#: Dead letters listed per queue on the dead letters page; delayed messages read per level.
DEAD_ROWS, DELAYED_ROWS, RECENT_TASKS = 50, 50, 100

Handler = Callable[[Request], Awaitable[Response]]


def page_routes(dashboard: Dashboard) -> list[Route]:
    pages = _Pages(dashboard)
    return [
        Route("/", pages.home),
        Route("/queues", pages.queues),
        Route("/workers", pages.workers),
        Route("/tasks", pages.tasks),
        Route("/tasks/{task_id:str}", pages.task),
        Route("/dead", pages.dead),
        Route("/dead/{queue:str}/show/{name:str}", pages.dead_letter),
        Route("/delayed", pages.delayed),
    ]


class _Pages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.d = dashboard
        self.config = dashboard.config

    async def _page(
        self,
        request: Request,
        template: str,
        read: Callable[[], Awaitable[dict[str, Any]]],
        **given: Any,
    ) -> Response:
        """Render `template` with `given` and what `read` returns, or with the error that stopped
        it (the page says it in place of its tables)."""
        try:
            context, problem = await read(), None
        except HareError as exc:
            context, problem = {}, f"{type(exc).__name__}: {exc}"
        return self.d.render(request, template, {"problem": problem, **given, **context})

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/queues", status_code=303)

    async def queues(self, request: Request) -> Response:
        async def read() -> dict[str, Any]:
            view = await overview(self.d.app, self.config.queues, self.config.management)
            return {"view": view}

        return await self._page(request, "queues.html", read)

    async def workers(self, request: Request) -> Response:
        async def read() -> dict[str, Any]:
            found = await workers(self.d.app, self.config.inspect_timeout)
            return {"workers": found, "heartbeats": self.d.ring.workers}

        return await self._page(request, "workers.html", read)

    async def tasks(self, request: Request) -> Response:
        search = request.query_params.get("q", "").strip()
        seen = self.d.ring.recent(RECENT_TASKS, search)
        stored = None
        if search and not any(task.id == search for task in seen):
            stored = await lookup_result(self.d.app, search)
        context = {
            "tasks": seen,
            "search": search,
            "stored": stored,
            "results": self.d.app.results is not None,
            "feed": self.d.feed,
            "heard": self.d.ring.received,
        }
        return self.d.render(request, "tasks.html", context)

    async def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        seen = self.d.ring.get(task_id)
        stored = await lookup_result(self.d.app, task_id)
        context = {"task_id": task_id, "seen": seen, "stored": stored}
        return self.d.render(request, "task.html", context)

    async def dead(self, request: Request) -> Response:
        async def read() -> dict[str, Any]:
            return {"dead": await dead_letters(self.d.app, self.config.queues, DEAD_ROWS)}

        return await self._page(
            request, "dead.html", read, done=request.query_params.get("done", "")
        )

    async def dead_letter(self, request: Request) -> Response:
        queue, name = request.path_params["queue"], request.path_params["name"]

        async def read() -> dict[str, Any]:
            return {"found": await dlq.find(self.d.app, queue, name)}

        return await self._page(request, "dead_letter.html", read, queue=queue, name=name)

    async def delayed(self, request: Request) -> Response:
        async def read() -> dict[str, Any]:
            waiting, depths = await delayed(self.d.app, DELAYED_ROWS)
            return {
                "waiting": waiting,
                "depths": depths,
                "limit": DELAYED_ROWS,
                "schedules": await schedules(self.d.app, self.d.ring),
            }

        return await self._page(request, "delayed.html", read)
