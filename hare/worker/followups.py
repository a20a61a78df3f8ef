"""What a worker publishes after a task: callbacks, the next chain step, errbacks, chord bodies.

`hare.canvas` computes it (purely, as Celery 5.7's worker does); this module carries it out
on the worker's connection: its chords recorded first, then each message published and
confirmed, then errbacks that take the request called here, then the steps that will never
run stored as FAILURE. The worker does all of it before acking the delivery, so a crash in
between sends it again rather than never (at-least-once).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hare.canvas import continuation as canvas
from hare.clock import Clock
from hare.core.message import Message
from hare.errors import ChordError
from hare.results.state import FAILURE, SUCCESS, TaskResult

if TYPE_CHECKING:
    from hare.app import Hare
    from hare.context import TaskContext
    from hare.publisher import Publisher

__all__ = ("FollowUps", "has_follow_ups")

logger = logging.getLogger("hare.worker")


def has_follow_ups(message: Message) -> bool:
    """Whether anything may follow `message`'s task (the common case: nothing)."""
    embed = message.embed
    return bool(embed.callbacks or embed.chain or embed.errbacks or embed.chord)


class FollowUps:
    """Publishes the messages that follow tasks, through one worker's publisher."""

    def __init__(self, app: Hare, publisher: Publisher, clock: Clock) -> None:
        self._app = app
        self._publisher = publisher
        self._clock = clock

    def _env(self, current: Message | None = None) -> canvas.Env:
        results = self._app.results
        return canvas.Env(
            new_id=lambda: str(uuid.uuid4()),
            now=self._clock.time(),
            origin=self._app.origin,
            content_type=self._app.content_type,
            reply_to=results.reply_to if results is not None else None,
            current=current,
        )

    async def after_success(self, message: Message, value: Any) -> None:
        """Callbacks and the next step of a chain, with `value` passed on."""
        if message.embed.callbacks or message.embed.chain:
            await self._carry_out(canvas.after_success(message, value, env=self._env()))

    async def after_failure(
        self, message: Message, exc: BaseException, trace: str | None, context: TaskContext
    ) -> None:
        """Errbacks, and FAILURE for the chain steps that will now never run."""
        if message.embed.errbacks or message.embed.chain:
            plan = canvas.after_failure(
                message,
                exc,
                trace,
                request=context,
                env=self._env(),
                accepts_request=self._accepts_request,
            )
            await self._carry_out(plan, request=context, exc=exc)
        part = canvas.chord_member(message)
        if part is not None:
            await self._chord_part(message.id, part, message, failed=exc, context=context)

    async def chord_part_succeeded(self, message: Message, value: Any) -> None:
        """Count a chord header part that succeeded; the last one publishes the body."""
        part = canvas.chord_member(message)
        if part is not None:
            await self._chord_part(message.id, part, message, value=value)

    async def _chord_part(
        self,
        task_id: str,
        part: canvas.ChordPart,
        message: Message | None,
        *,
        value: Any = None,
        failed: BaseException | None = None,
        context: TaskContext | None = None,
    ) -> None:
        results = self._app.results
        if results is None:
            logger.error(
                "task %s is part of a chord, but this worker has no result backend to "
                "count the parts in: the chord body will not run",
                task_id,
            )
            return
        state = SUCCESS if failed is None else FAILURE
        mine = TaskResult(
            task_id=task_id,
            state=state,
            value=value if failed is None else failed,
            group_id=part.group_id,
            extra={"group_index": part.group_index},
        )
        parts = await results.chord_part_done(part.group_id, part.size, mine)
        if parts is None:
            return
        env = self._env(current=message)
        broken = next((p for p in parts if p.state != SUCCESS), None)
        error: ChordError | None = None
        if broken is None:
            plan = canvas.chord_body(part.body, [p.value for p in parts], env=env)
        else:
            # Celery's words (`_unpack_chord_result`), the part's exception as the cause
            error = ChordError(f"Dependency {broken.task_id} raised {broken.value!r}")
            if isinstance(broken.value, BaseException):
                error.__cause__ = broken.value
            plan = canvas.chord_failed(
                part.body,
                error,
                env=env,
                accepts_request=self._accepts_request,
            )
        await self._carry_out(plan, request=context, exc=error)
        await results.chord_complete(part.group_id, failed=error is not None)

    def _accepts_request(self, sig: Mapping[str, Any]) -> bool | None:
        task = self._app.tasks.get(str(sig.get("task")))
        if task is None:
            return None
        header = task.errback_header
        return header is not None and canvas.errback_accepts_request(header, sig)

    async def _carry_out(
        self, plan: canvas.Plan, *, request: Any = None, exc: BaseException | None = None
    ) -> None:
        results = self._app.results
        if results is not None:
            await results.record_chords(plan)
        for queue, message in plan.publish:
            await self._publisher.send(queue or self._app.route(message.task), message)
        for call in plan.inline:
            task = self._app.tasks.get(call.task)
            if task is None:
                continue
            try:
                outcome = task.fn(*call.args, **call.kwargs)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("errback %s raised", call.task)
        if results is None:
            return
        now = datetime.fromtimestamp(self._clock.time(), UTC)
        for step in plan.failed:
            if step.task_id is None:
                continue
            failed = TaskResult(
                task_id=step.task_id,
                state=FAILURE,
                value=step.exc or exc or ChordError("an earlier step failed"),
                date_done=now,
                group_id=step.group_id,
                children=step.children,
            )
            await results.store(failed, None)
            # Celery's _fail_chain: a step that was a chord's header part counts as failed
            part = canvas.failed_chord_part(step)
            if part is not None:
                await self._chord_part(step.task_id, part, None, failed=failed.value)
