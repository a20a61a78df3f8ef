"""Routing and sending for the Celery app: `send_task`, results, and workflow messages.

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: how a call
becomes a message on a queue (`task_routes`, `task_queues`, Celery's send options mapped by
`hare_compat.app.sending`), and the hooks `hare_compat.canvas` sends workflows through.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hare.context import current
from hare_compat.app.routes import QueueDecl, Router, declared_queues, prepare
from hare_compat.app.sending import hare_options
from hare_compat.exceptions import AlwaysEagerIgnored

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.canvas import Env, Plan
    from hare_compat.app.conf import Settings
    from hare_compat.result import AsyncResult

__all__ = ("Publishing",)


class Publishing:
    """`send_task`, `AsyncResult`, `signature` and the canvas hooks of a Celery app."""

    _lock: threading.RLock
    _router: Router | None = None

    if TYPE_CHECKING:

        @property
        def conf(self) -> Settings: ...

        @property
        def hare(self) -> Hare: ...

    @property
    def router(self) -> Router:
        """`task_routes` and `task_queues`, read once (as Celery's `app.amqp.router`)."""
        with self._lock:
            if self._router is None:
                conf = self.conf
                queues = declared_queues(conf.task_queues) or {
                    conf.task_default_queue: QueueDecl(conf.task_default_queue, None)
                }
                self._router = Router(
                    prepare(conf.task_routes),
                    queues,
                    default_queue=conf.task_default_queue,
                    create_missing=bool(conf.task_create_missing_queues),
                )
            return self._router

    def _options(self, name: str, args: Any, kwargs: Any, options: Mapping[str, Any]) -> Any:
        conf = self.conf
        if conf.task_always_eager:
            warnings.warn(
                AlwaysEagerIgnored("task_always_eager has no effect on send_task"), stacklevel=3
            )
        exchanges = frozenset(
            getattr(getattr(q, "exchange", None), "name", "") for q in conf.task_queues or ()
        )
        return hare_options(
            name,
            args,
            kwargs,
            options,
            router=self.router,
            serializer=conf.task_serializer,
            default_priority=conf.task_default_priority,
            direct_exchanges=exchanges,
        )

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send task `name` by name (routed by `task_routes`); Celery's options."""
        sent = self.hare.send_task(name, args, kwargs, **self._options(name, args, kwargs, options))
        return self._result(options.get("result_cls"), sent.id, name)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """`send_task` for async code (hare's addition)."""
        hare_opts = self._options(name, args, kwargs, options)
        sent = await self.hare.asend_task(name, args, kwargs, **hare_opts)
        return self._result(options.get("result_cls"), sent.id, name)

    def _result(self, result_cls: Any, task_id: str, name: str) -> AsyncResult:
        if result_cls is not None:
            return result_cls(task_id)  # type: ignore[no-any-return]
        return self.AsyncResult(task_id, task_name=name)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        """A handle on the result of task `task_id`."""
        from hare_compat.result import AsyncResult

        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(self, group_id: str, results: list[Any] | None = None, **kwargs: Any) -> Any:
        """A handle on the results of group `group_id`."""
        from hare_compat.canvas import GroupResult

        return GroupResult(group_id, results, app=self, **kwargs)

    def signature(self, *args: Any, **kwargs: Any) -> Any:
        """A signature bound to this app (`app.signature("tasks.add", (2, 2))`)."""
        from hare_compat.canvas import signature

        return signature(*args, app=self, **kwargs)

    def canvas_env(self) -> Env:
        """What building workflow messages needs (see `hare_compat.signature.CanvasApp`)."""
        from hare.canvas import Env
        from hare.codec import get_serializer

        hare = self.hare
        context = current()
        return Env(
            new_id=lambda: str(uuid.uuid4()),
            now=hare.clock.time(),
            origin=hare.origin,
            content_type=get_serializer(hare.settings.serializer).content_type,
            reply_to=hare.results.reply_to if hare.results is not None else None,
            current=context.message if context is not None else None,
        )

    def publish_plan(self, plan: Plan) -> None:
        """Record a workflow's chord sizes, then publish its messages in order, confirmed."""
        self.hare.send_plan(plan)  # hare.route() asks this app's router (see base.py)
