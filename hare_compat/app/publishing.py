"""Routing and sending for the Celery app: `send_task`, results, and workflow messages.

A mixin of `hare_compat.app.base.Celery`, kept apart because it is one concept: how a call
becomes a message on a queue (`task_routes`, `task_queues`, Celery's send options mapped by
`hare_compat.app.sending` onto those of hare's one builder, `hare.core.calls`), and the hooks
`hare_compat.canvas` sends workflows through.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hare_compat.app.routes import QueueDecl, Router, declared_queues, prepare
from hare_compat.app.sending import hare_options
from hare_compat.exceptions import AlwaysEagerIgnored

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.canvas.continuation import Plan
    from hare.core.calls import Env
    from hare_compat.app.conf import Settings
    from hare_compat.result import AsyncResult as AsyncResultType

__all__ = ("Publishing",)

#: `send_task`'s "not given" for options whose None means something (Celery's `_OMITTED`).
_OMITTED: Any = object()


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
        def AsyncResult(self) -> type[AsyncResultType]: ...

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
            default_priority=conf.task_default_priority,
            direct_exchanges=exchanges,
        )

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        countdown: float | None = None,
        eta: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        connection: Any = None,
        router: Any = None,
        result_cls: Any = None,
        expires: Any = _OMITTED,
        publisher: Any = None,
        link: Any = None,
        link_error: Any = None,
        add_to_parent: bool = True,
        group_id: str | None = None,
        group_index: int | None = None,
        retries: int = 0,
        chord: Any = None,
        reply_to: str | None = None,
        time_limit: Any = _OMITTED,
        soft_time_limit: Any = _OMITTED,
        root_id: str | None = None,
        parent_id: str | None = None,
        route_name: str | None = None,
        shadow: str | None = None,
        chain: Any = None,
        task_type: Any = None,
        replaced_task_nesting: int = 0,
        **options: Any,
    ) -> AsyncResultType:
        """Send task `name` by name (routed by `task_routes`), with Celery's options.

        `producer`, `connection` and `publisher` are refused (hare publishes on its own
        connection); the message's options follow hare's one builder (`hare.core.calls`).
        `expires`, `time_limit` and `soft_time_limit` left out take what the route gives."""
        for option, value in (
            ("expires", expires),
            ("time_limit", time_limit),
            ("soft_time_limit", soft_time_limit),
        ):
            if value is not _OMITTED:
                options[option] = value
        options.update(
            countdown=countdown, eta=eta, task_id=task_id, producer=producer,
            connection=connection, router=router, result_cls=result_cls, publisher=publisher,
            link=link, link_error=link_error, add_to_parent=add_to_parent, group_id=group_id,
            group_index=group_index, retries=retries, chord=chord, reply_to=reply_to,
            root_id=root_id, parent_id=parent_id, route_name=route_name, shadow=shadow,
            chain=chain, task_type=task_type, replaced_task_nesting=replaced_task_nesting,
        )  # fmt: skip
        sent = self.hare.send_task(name, args, kwargs, **self._options(name, args, kwargs, options))
        return self._result(result_cls, sent.id, name)

    async def asend_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResultType:
        """`send_task` for async code (hare's addition)."""
        hare_opts = self._options(name, args, kwargs, options)
        sent = await self.hare.asend_task(name, args, kwargs, **hare_opts)
        return self._result(options.get("result_cls"), sent.id, name)

    def _result(self, result_cls: Any, task_id: str, name: str) -> AsyncResultType:
        if result_cls is not None:
            return result_cls(task_id)  # type: ignore[no-any-return]
        return self.AsyncResult(task_id, task_name=name)

    def signature(self, *args: Any, **kwargs: Any) -> Any:
        """A signature bound to this app (`app.signature("tasks.add", (2, 2))`)."""
        from hare_compat.canvas import signature

        kwargs["app"] = self  # as Celery: the app's own, whatever `app=` says
        return signature(*args, **kwargs)

    def canvas_env(self) -> Env:
        """What building workflow messages needs (see `hare_compat.signature.CanvasApp`):
        the hare app's, as for any call."""
        return self.hare.call_env()

    def publish_plan(self, plan: Plan) -> None:
        """Record a workflow's chords (headers, sizes), then publish its messages in order,
        confirmed."""
        self.hare.send_plan(plan)  # hare.route() asks this app's router (see base.py)
