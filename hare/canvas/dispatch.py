"""Celery 5.7's canvas dispatch, ported to signature dicts: what applying one sends.

A faithful port of the parts of `celery/canvas.py` that run when a signature is applied:
`Signature.apply_async`/`freeze`, `_chain.run`/`prepare_steps`/`freeze`,
`group.apply_async`/`_prepared`/`_apply_tasks`/`_freeze_group_tasks`, and
`_chord.apply_async`/`run`/`freeze`. A hare worker continuing a workflow and hare_compat
starting one both go through it, so both put on the wire what Celery would. The method
names follow Celery's so the two read side by side. Each task becomes its message through
`hare.core.calls.build_message`, the builder every send goes through. Pure: ids and time come
from the `Env`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from hare.canvas.chords import (
    apply_chord,
    chord_of,
    freeze_chord,
    strip_chord_header_links,
    unroll_body,
)
from hare.canvas.parents import Parents, ref_id
from hare.canvas.signatures import (
    CHAIN,
    CHAIN_RUN_OPTIONS,
    CHORD,
    GROUP,
    IMMUTABLE_OPTIONS,
    S,
    chain_steps,
    clone,
    descend,
    is_chain_led_by_task,
    is_empty_group,
    kind,
    link_errbacks,
    list_option,
    maybe_list,
    maybe_unroll_group,
    merge,
    tasks_of,
)
from hare.core.calls import Env, Outgoing, build_message
from hare.errors import ConfigurationError
from hare.results.state import GroupRef, Ref

__all__ = ("CALL_ONLY", "GroupRef", "Planner", "Ref")

#: Arguments of Celery's `apply_async` / `send_task` that steer the call, not the message: a
#: workflow carries them along in options (a chord passes `add_to_parent` on into its body's
#: options), and each task's message is built without them.
CALL_ONLY = frozenset(
    "add_to_parent producer publisher connection router result_cls task_type route_name".split()
)


class Planner:
    """Applies signatures like Celery's canvas; collects what to publish instead of sending.

    `publish` lists the messages in the order Celery sends them; `chord_sizes` the
    `(group_id, size)` pairs Celery's `backend.set_chord_size` records (before the header's
    last message: record them before publishing any); `chord_headers` the chord headers
    with a group among their results, which Celery's Redis `backend.apply_chord` saves so
    that the body gets the values in that shape; `parents` each result's parent, by the
    result's id (Celery's `AsyncResult.parent`: a chain step's the step before it, a chord
    body's its header group).

    `from_wire`: the signatures came off the wire (a worker continuing a workflow a client
    built): each message is built with Celery's rules where hare's own are stricter (see
    `hare.core.calls`).
    """

    def __init__(self, env: Env, *, from_wire: bool = False) -> None:
        self.env = env
        self.from_wire = from_wire
        self.publish: list[Outgoing] = []
        self.chord_sizes: list[tuple[str, int]] = []
        self.chord_headers: list[GroupRef] = []
        self.parents = Parents()

    def apply(
        self, sig: S, args: Any = (), kwargs: Any = None, options: S | None = None
    ) -> Ref | None:
        """`sig.apply_async(args, kwargs, **options)`."""
        found = kind(sig)
        options = dict(options or {})
        if found == CHAIN:
            merged = dict(sig["options"], **options) if options else dict(sig["options"])
            return self._run_chain(sig, args, kwargs or [], merged)
        if found == GROUP:
            return self.apply_group(sig, args, kwargs, options)
        if found == CHORD:
            return apply_chord(self, sig, args, kwargs, options)
        options = {k: v for k, v in options.items() if v is not None}
        if args or kwargs or options:
            new_args, new_kwargs, new_options = merge(sig, args, kwargs, options)
        else:
            new_args, new_kwargs, new_options = sig["args"], sig["kwargs"], sig["options"]
        self.publish.append(self._message(sig["task"], new_args, new_kwargs, new_options))
        return self.publish[-1][1].id

    def _message(self, name: str, args: Any, kwargs: Any, options: S) -> Outgoing:
        """One task's message. Celery applies a signature through its task's `apply_async`,
        which sends the task's `ignore_result` (False unless the task says): so does this."""
        options = {key: value for key, value in options.items() if key not in CALL_ONLY}
        options.setdefault("ignore_result", False)
        return build_message(name, args, kwargs, options, self.env, from_wire=self.from_wire)

    # -- freeze: assign ids before sending --------------------------------------------------

    def freeze(
        self,
        sig: S,
        _id: str | None = None,
        group_id: str | None = None,
        chord: S | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Ref:
        found = kind(sig)
        if found == CHAIN:
            last = {"group_id": group_id, "chord": chord, "group_index": group_index}
            _, results = self._prepare_steps(
                sig, sig["args"], sig["kwargs"], root_id, None, _id, last, clone_steps=False
            )
            if not results:
                raise ConfigurationError("an empty chain has no result to freeze")
            return results[0]
        if found == GROUP:
            return self.freeze_group_tasks(sig, group_id, chord, root_id, parent_id, group_index)
        if found == CHORD:
            return freeze_chord(self, sig, _id, group_id, chord, root_id, parent_id, group_index)
        opts = sig["options"]
        if "task_id" not in opts:
            opts["task_id"] = _id or self.env.new_id()
        self.parents.fresh(opts["task_id"])
        if root_id:
            opts["root_id"] = root_id
        if parent_id:
            opts["parent_id"] = parent_id
        if "reply_to" not in opts and self.env.reply_to is not None:
            opts["reply_to"] = self.env.reply_to
        if group_id and "group_id" not in opts:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        return opts["task_id"]  # type: ignore[no-any-return]

    # -- chain ------------------------------------------------------------------------------

    def _run_chain(self, chain: S, args: Any, kwargs: Any, options: S) -> Ref | None:
        named = {key: options.pop(key, None) for key in CHAIN_RUN_OPTIONS}
        if args and not chain["immutable"]:
            args = tuple(args) + tuple(chain["args"])
        else:
            args = chain["args"]
        last = {k: named[k] for k in ("group_id", "chord", "group_index")}
        tasks, results = self._prepare_steps(
            chain, args, kwargs, named["root_id"], named["link_error"], named["task_id"], last
        )
        if not results:
            return None
        if named["link"]:
            list_option(tasks[0], "link").extend(maybe_list(named["link"]))
        first = tasks.pop()
        if "chain" not in options:
            options["chain"] = tasks
        elif tasks is not None:
            options["chain"] = list(options["chain"]) + tasks
        applied = self.apply(first, (), None, options)
        return applied if not tasks else results[0]

    def _prepare_steps(
        self,
        chain: S,
        args: Any,
        kwargs: Any,
        root_id: str | None,
        errbacks: Any,
        last_task_id: str | None,
        last: Mapping[str, Any],
        clone_steps: bool = True,
    ) -> tuple[list[S], list[Ref]]:
        """`_chain.prepare_steps`: freeze the steps last-first (the last one with `last`'s
        group_id, chord and group_index); a group followed by a step becomes a chord.
        Returns the steps and their results, both last-first."""
        steps = chain_steps(tasks_of(chain), clone_steps)
        prev_task: S | None = None
        prev_res: Ref | None = None
        out_tasks: list[S] = []
        results: list[Ref] = []
        while steps:
            is_last_task = not results
            task = _next_step(steps, bool(prev_task), args, kwargs, clone_steps)
            if task is None:
                continue
            if kind(task) == GROUP and prev_task:
                out_tasks.pop()
                body_res = results.pop()
                body_id = prev_res if isinstance(prev_res, str) else None
                task = chord_of(task, prev_task, body_id, root_id)
                prev_task = out_tasks[-1] if out_tasks else None
                prev_res = self.parents.unlink_body(results, body_res, prev_res)
            if is_last_task:
                res = self.freeze(task, last_task_id, root_id=root_id, **last)
            else:
                res = self.freeze(task, root_id=root_id)
            self.parents.link(prev_res if prev_task is not None else None, res)
            link_errbacks(task, errbacks)
            out_tasks.append(task)
            results.append(res)
            prev_task = task
            prev_res = self._step_result(task, res)
        chain["options"]["task_id"] = ref_id(results[0]) if results else last_task_id
        if clone_steps:
            for task in out_tasks:
                strip_chord_header_links(task)
        return out_tasks, results

    def _step_result(self, task: S, res: Ref) -> Ref:
        """The result the step before `task` is the parent of: a chord's is its header
        group's (Celery walks up to it)."""
        return self.parents.root(res) if kind(task) == CHORD else res

    # -- group ------------------------------------------------------------------------------

    def apply_group(self, group: S, args: Any, kwargs: Any, options: S) -> Ref:
        for key in ("add_to_parent", "producer"):
            options.pop(key, None)
        if options.pop("link", None) is not None:
            raise ConfigurationError("a group takes no link=: use a chord")
        if options.pop("link_error", None) is not None:
            raise ConfigurationError("a group takes no link_error=: link it to each task")
        if not tasks_of(group):
            return self.freeze(group)
        own = group["options"]
        options = {
            **own,
            **{k: v for k, v in options.items() if k not in IMMUTABLE_OPTIONS or k not in own},
        }
        group_id = options.pop("task_id") if "task_id" in options else self.env.new_id()
        options["group_id"] = group_id
        prepared = list(self._prepared(tasks_of(group), group_id, options.get("root_id")))
        chord = options.pop("chord", None)
        options.pop("group_index", None)
        results = tuple(self._apply_tasks(prepared, chord, args, kwargs, options))
        if len(results) == 1 and isinstance(results[0], GroupRef):
            return results[0]
        return GroupRef(group_id, results)

    def _prepared(
        self, tasks: list[S], group_id: str, root_id: str | None
    ) -> Iterator[tuple[S, Ref, str]]:
        """The group's tasks, copied and frozen; nested groups flattened (their indexes
        restart at 0, as in Celery)."""
        for index, task in enumerate(tasks):
            task = clone(task)
            if kind(task) == GROUP:
                yield from self._prepared(tasks_of(task), group_id, root_id)
            elif kind(task) == CHAIN and not tasks_of(task):
                continue
            else:
                ref = self.freeze(task, group_id=group_id, root_id=root_id, group_index=index)
                yield task, ref, group_id

    def _apply_tasks(
        self, prepared: list[tuple[S, Ref, str]], chord: Any, args: Any, kwargs: Any, options: S
    ) -> Iterator[Ref]:
        size = 0
        for position, (sig, ref, group_id) in enumerate(prepared):
            chord_obj = chord if chord is not None else sig["options"].get("chord")
            size += descend(sig)
            if chord_obj is not None and position == len(prepared) - 1:
                self.chord_sizes.append((group_id, size))
            self.apply(sig, args, kwargs, {**options, "add_to_parent": False, "chord": chord_obj})
            yield ref

    def freeze_group_tasks(
        self,
        group: S,
        group_id: str | None,
        chord: S | None,
        root_id: str | None,
        parent_id: str | None,
        group_index: int | None,
    ) -> GroupRef:
        opts = group["options"]
        if "task_id" not in opts:
            opts["task_id"] = self.env.new_id()
        if group_id:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        root_id = opts.setdefault("root_id", root_id)
        parent_id = opts.setdefault("parent_id", parent_id)
        stack = deque(tasks_of(group))
        new_tasks: list[S] = []
        results: list[Ref] = []
        while stack:
            task = clone(stack.popleft())
            if kind(task) == GROUP:
                stack.extendleft(tasks_of(task))
            elif kind(task) != CHAIN or tasks_of(task):
                new_tasks.append(task)
                results.append(
                    self.freeze(
                        task,
                        group_id=group_id,
                        chord=chord,
                        root_id=root_id,
                        parent_id=parent_id,
                        group_index=len(results),
                    )
                )
        group["kwargs"]["tasks"] = new_tasks
        self.parents.fresh(opts["task_id"])
        return GroupRef(opts["task_id"], tuple(results))


def _next_step(
    steps: deque[S], after_one: bool, args: Any, kwargs: Any, clone_steps: bool
) -> S | None:
    """The next step of a chain, last-first, ready to freeze (the first one given the
    chain's partial args); None when it was spliced into `steps` (a nested chain, a chord
    whose body is a chain led by a task) or dropped (an empty group after or before one)."""
    task = steps.pop()
    is_first_task = not steps
    if kind(task) == GROUP:
        task = maybe_unroll_group(task)
        if is_empty_group(task) and (steps or after_one):
            return None
    if clone_steps and kind(task) == CHORD and is_chain_led_by_task(task["kwargs"]["body"]):
        steps.extend(unroll_body(task))
        return None
    if clone_steps:
        task = clone(task, args, kwargs) if is_first_task else clone(task)
    elif is_first_task:
        task["args"] = tuple(args) + tuple(task["args"])
    if kind(task) == CHAIN:
        steps.extend(tasks_of(task))
        return None
    return task
