"""Celery's `Signature`: one task call with its arguments and options, as a dict.

Signatures are dicts shaped exactly as Celery's (`{"task", "args", "kwargs", "options",
"subtask_type", "immutable"}`). Applying one goes through `hare.canvas.apply`, a port of
Celery 5.7's dispatch, so the messages are those a Celery client would send. `chain`,
`group` and `chord` (subclasses) are in `hare_compat.canvas`.

A signature sends through an app that satisfies `CanvasApp`: its own (`app=`, or the app of
the task it was made from), else the one `set_default_app_resolver` returns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

from hare.canvas import continuation as core
from hare.canvas.message import Env
from hare.errors import ConfigurationError, NotSupportedError
from hare_compat import canvas_stamping as stamping
from hare_compat.app.sending import PRODUCER_ONLY
from hare_compat.canvas_result import result_of

__all__ = (
    "CanvasApp",
    "Signature",
    "maybe_signature",
    "set_default_app_resolver",
    "signature",
    "subtask",
)


class CanvasApp(Protocol):
    """What a signature needs from the app it is sent through."""

    tasks: Mapping[str, Any]

    def canvas_env(self) -> Env:
        """New ids, the clock, `origin`, the serializer, the reply queue (Celery's
        `thread_oid`) and the running task's message (`hare.context.current()`), if any."""
        ...

    def publish_plan(self, plan: core.Plan) -> None:
        """Record `plan.chord_headers` and `plan.chord_sizes` in the result backend, then
        publish `plan.publish` in order (a `None` queue routed by task name, as `send_task`),
        confirmed."""
        ...

    def AsyncResult(self, task_id: str) -> Any: ...

    def GroupResult(self, group_id: str, results: list[Any]) -> Any: ...


def _current_app() -> CanvasApp:
    """Celery's `current_app`: the app made current last, else a default one."""
    try:
        from hare_compat._state import get_current_app
    except ImportError:
        raise ConfigurationError(
            "this signature has no app: make it from a task, pass app=, or call "
            "hare_compat.canvas.set_default_app_resolver(...)"
        ) from None
    return get_current_app()  # type: ignore[return-value]


_resolve_default: Callable[[], CanvasApp] = _current_app


def set_default_app_resolver(resolver: Callable[[], CanvasApp]) -> None:
    """Where a signature with no app of its own finds one (Celery's `current_app`)."""
    global _resolve_default
    _resolve_default = resolver


def _item(key: str, doc: str) -> Any:
    return property(
        lambda self: self[key], lambda self, value: self.__setitem__(key, value), doc=doc
    )


class Signature(dict[str, Any]):
    """One task call with its arguments and options, to send later or link to another.

    >>> add.s(2, 2).set(countdown=10)    # doctest: +SKIP
    """

    TYPES: ClassVar[dict[str, type[Signature]]] = {}
    _app: CanvasApp | None = None
    _type: Any = None

    task = _item("task", "The task's name.")
    args = _item("args", "Positional arguments.")
    kwargs = _item("kwargs", "Keyword arguments.")
    options = _item("options", "Execution options (apply_async's).")
    subtask_type = _item("subtask_type", 'None, "chain", "group" or "chord".')
    immutable = _item("immutable", "Whether a parent's result is not prepended to args.")

    def __init__(
        self,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        options: Any = None,
        type: Any = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Any = None,
        **ex: Any,
    ) -> None:
        self._app = app
        if isinstance(task, dict):
            super().__init__(task)
            return
        name = getattr(task, "name", None)
        if name is not None:
            self._type = task
        super().__init__(
            task=task if name is None else name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}, **ex),
            subtask_type=subtask_type,
            immutable=immutable,
        )

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[type[Signature]], type[Signature]]:
        def register(subclass: type[Signature]) -> type[Signature]:
            cls.TYPES[name or subclass.__name__] = subclass
            return subclass

        return register

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Any = None) -> Signature:
        found = d.get("subtask_type")
        if found:
            if not cls.TYPES:
                import hare_compat.canvas  # noqa: F401 -- registers chain, group and chord
            target = cls.TYPES.get(found)
            if target is None:
                raise NotSupportedError(f"a {found!r} signature", "hare_compat has no such type")
            if target is not cls:
                return target.from_dict(d, app=app)
        return Signature(dict(d), app=app)

    # -- options ----------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The task id, once frozen or set (`options["task_id"]`)."""
        return self.options.get("task_id")  # type: ignore[no-any-return]

    @property
    def root_id(self) -> str | None:
        return self.options.get("root_id")  # type: ignore[no-any-return]

    @property
    def parent_id(self) -> str | None:
        return self.options.get("parent_id")  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        return self.task  # type: ignore[no-any-return]

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set execution options (as `apply_async` takes them); returns the signature."""
        if immutable is not None:
            self.set_immutable(immutable)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def _list_option(self, key: str) -> list[Any]:
        items = self.options.setdefault(key, [])
        if not isinstance(items, list):
            items = self.options[key] = list(items) if isinstance(items, tuple) else [items]
        return items

    def append_to_list_option(self, key: str, value: Any) -> Any:
        """Append `value` to the list option `key` (unless there already); return `value`."""
        items = self._list_option(key)
        if value not in items:
            items.append(value)
        return value

    def extend_list_option(self, key: str, value: Any) -> None:
        """Extend the list option `key` with `value` (a list, or one item)."""
        self._list_option(key).extend(value if isinstance(value, list | tuple) else [value])

    def link(self, callback: Any) -> Any:
        """Apply `callback` with this task's result when it succeeds."""
        return self.append_to_list_option("link", callback)

    def link_error(self, errback: Any) -> Any:
        """Apply `errback` when this task fails (for good)."""
        return self.append_to_list_option("link_error", errback)

    def flatten_links(self) -> list[Any]:
        """This signature and, recursively, its `link` callbacks (Celery's)."""
        flat = [self]
        for callback in self.options.get("link") or ():
            flat.extend(callback.flatten_links())
        return flat

    def stamp(self, visitor: Any = None, append_stamps: bool = False, **headers: Any) -> Any:
        """Stamp this signature and its links (see `hare_compat.canvas_stamping`)."""
        return stamping.stamp_signature(self, visitor, append_stamps, headers)

    def stamp_links(self, visitor: Any, append_stamps: bool = False, **headers: Any) -> None:
        """Stamp this signature's callbacks and errbacks."""
        stamping.stamp_links(self, visitor, append_stamps, headers)

    def _stamp_headers(
        self,
        visitor_headers: Mapping[str, Any] | None = None,
        append_stamps: bool = False,
        self_headers: bool = True,
        **headers: Any,
    ) -> dict[str, Any]:
        return stamping.stamp_headers(self, visitor_headers, append_stamps, self_headers, **headers)

    def election(self) -> Any:
        raise NotSupportedError("Signature.election", "hare has no worker elections")

    def on_error(self, errback: Any) -> Signature:
        """`link_error` that returns this signature, for chaining calls."""
        self.link_error(errback)
        return self

    def clone(self, args: Any = None, kwargs: Any = None, **opts: Any) -> Signature:
        """A copy, with `args` prepended (unless immutable), `kwargs` and `opts` merged."""
        if args or kwargs or opts:
            new_args, new_kwargs, new_options = core.merge(self, args, kwargs, opts)
        else:
            new_args, new_kwargs, new_options = self.args, self.kwargs, self.options
        sig = Signature.from_dict(
            {
                "task": self.task,
                "args": tuple(new_args),
                "kwargs": dict(new_kwargs),
                "options": copy.deepcopy(new_options),
                "subtask_type": self.subtask_type,
                "immutable": self.immutable,
            },
            app=self._app,
        )
        sig._type = self._type
        return sig

    partial = clone

    def replace(self, args: Any = None, kwargs: Any = None, options: Any = None) -> Signature:
        """A copy with args, kwargs or options replaced (those given)."""
        sig = self.clone()
        if args is not None:
            sig.args = args
        if kwargs is not None:
            sig.kwargs = kwargs
        if options is not None:
            sig.options = options
        return sig

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        """Assign the task ids now (sending then uses them) and return the result handle."""
        app = self.app
        frozen, ref = core.freeze(
            self,
            env=app.canvas_env(),
            _id=_id,
            group_id=group_id,
            chord=chord,
            root_id=root_id,
            parent_id=parent_id,
            group_index=group_index,
        )
        # The frozen copy is rebuilt from a dict: it keeps the app it sends through (a chain's
        # tasks name theirs only through the task objects the dict no longer holds).
        self.update(Signature.from_dict(frozen, app=self._own_app()))
        return result_of(app, ref)

    # -- calling ----------------------------------------------------------------------------

    @property
    def app(self) -> CanvasApp:
        app = self._own_app()
        return app if app is not None else _resolve_default()

    def _own_app(self) -> CanvasApp | None:
        """The app given (`app=`) or that of the task it was made from; None when it would
        fall back to the current app. A chain, group or chord asks its tasks (Celery's
        `sig._app or sig.type.app`, and `tasks[0].app` for a canvas)."""
        if self._app is not None:
            return self._app
        owner = getattr(self._type, "_get_app", None)
        return owner() if owner is not None else None

    @property
    def type(self) -> Any:
        """The registered task this signature calls."""
        return self._type if self._type is not None else self.app.tasks[self.task]

    def __call__(self, *partial_args: Any, **partial_kwargs: Any) -> Any:
        """Run the task here and now (no broker)."""
        new_args, new_kwargs, _ = core.merge(self, partial_args, partial_kwargs, None)
        return self.type(*new_args, **new_kwargs)

    def delay(self, *partial_args: Any, **partial_kwargs: Any) -> Any:
        return self.apply_async(partial_args, partial_kwargs)

    def apply_async(
        self, args: Any = None, kwargs: Any = None, route_name: str | None = None, **options: Any
    ) -> Any:
        """Send it (the whole workflow, for a chain, group or chord); returns its result.

        Options given as None are dropped, and so are those of Celery's producer (`retry=`,
        `retry_policy=`...: hare always waits for the broker's confirm); `route_name` is
        accepted and, as in Celery 5.7, changes nothing (steps are routed by task name)."""
        options = {
            key: value
            for key, value in options.items()
            if value is not None and key not in PRODUCER_ONLY
        }
        app = self.app
        if getattr(getattr(app, "conf", None), "task_always_eager", False):
            return self.apply(args, kwargs, **options)
        plan = core.apply(self, args or (), kwargs, options, env=app.canvas_env())
        app.publish_plan(plan)
        return result_of(app, plan.result, plan.parents)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run it here, eagerly, through the task's `apply` (as Celery's `Signature.apply`)."""
        options = {k: v for k, v in options.items() if v is not None}
        new_args, new_kwargs, new_options = core.merge(self, args, kwargs, options)
        return self.type.apply(new_args, new_kwargs, **new_options)

    # -- composing --------------------------------------------------------------------------

    def __or__(self, other: Any) -> Any:
        """`a | b`: a chain (a group after a task is unrolled when it has one member)."""
        from hare_compat.canvas import _chain, group, maybe_unroll_group

        if isinstance(other, _chain):
            return _chain(self, *other.unchain_tasks(), app=self._app)
        if isinstance(other, group):
            return _chain(self, maybe_unroll_group(other), app=self._app)
        if isinstance(other, Signature):
            return _chain(self, other, app=self._app)
        return NotImplemented

    def __ior__(self, other: Any) -> Any:
        return self.__or__(other)

    def __invert__(self) -> Any:
        """`~sig`: send it and wait for its value."""
        return self.apply_async().get()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        # A plain dict, as Celery's: the app and task object are not copied along.
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> Any:
        return signature, (dict(self),)

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def items(self) -> Any:
        """The dict's items (Celery decodes bytes keys; a hare signature has none)."""
        return super().items()

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """`add(2, 2)`: the call this signature makes with `args` and `kwargs` merged in
        (immutable or not; the signature is not changed)."""
        return reprcall(self.task, (*args, *self.args), {**self.kwargs, **kwargs})

    def __repr__(self) -> str:
        return reprcall(self.task, self.args, self.kwargs)


def reprcall(name: str, args: Any, kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature: of a task (object or name) with args/kwargs/options, or a copy of one."""
    app = kwargs.get("app")
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies.clone()
        return Signature.from_dict(varies, app=app)
    return Signature(varies, *args, **kwargs)


subtask = signature


def maybe_signature(d: Any, app: Any = None, clone: bool = False) -> Any:
    """`d` as a signature (None stays None); a dict is turned into one."""
    if d is None:
        return None
    if isinstance(d, Signature):
        if clone:
            d = d.clone()
    elif isinstance(d, dict):
        d = signature(d)
    if app is not None:
        d._app = app
    return d
