"""Celery's `Signature`: one task call with its arguments and options, as a dict.

Signatures are dicts shaped exactly as Celery's (`{"task", "args", "kwargs", "options",
"subtask_type", "immutable"}`). Applying one goes through `hare.canvas.apply`, a port of
Celery 5.7's dispatch, so the messages are those a Celery client would send. Its execution
options (`set`, `link`, `link_error`...) are a mixin of their own (`hare_compat.canvas_options`).

`chain`, `group` and `chord` are subclasses, in modules of their own above this one
(`hare_compat.canvas_group`, `canvas_chord`, `canvas_chain`): each registers its class by its
`subtask_type` (`Signature.register_type`, as Celery's), and this module finds them there
(`canvas_type`). `import hare_compat` imports them all, so they are registered before any
signature is made.

A signature sends through an app that satisfies `CanvasApp` (`hare_compat.canvas_app`): its
own (`app=`, or the app of the task it was made from), else the one
`set_default_app_resolver` returns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from hare.canvas import continuation as core
from hare.errors import NotSupportedError
from hare_compat import canvas_stamping as stamping
from hare_compat.canvas_app import CanvasApp, fallback_app
from hare_compat.canvas_app import set_default_app_resolver as set_default_app_resolver
from hare_compat.canvas_options import SignatureOptions
from hare_compat.canvas_result import result_of
from hare_compat.producer_options import PRODUCER_ONLY

__all__ = (
    "CanvasApp",
    "Signature",
    "app_of",
    "canvas_type",
    "maybe_signature",
    "maybe_unroll_group",
    "set_default_app_resolver",
    "signature",
    "subtask",
)


def _item(key: str, doc: str) -> Any:
    return property(
        lambda self: self[key], lambda self, value: self.__setitem__(key, value), doc=doc
    )


class Signature(SignatureOptions, dict[str, Any]):
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
            target = cls.TYPES.get(found)
            if target is None:
                raise NotSupportedError(f"a {found!r} signature", "hare_compat has no such type")
            if target is not cls:
                return target.from_dict(d, app=app)
        return Signature(dict(d), app=app)

    @property
    def name(self) -> str:
        return self.task  # type: ignore[no-any-return]

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
        return app if app is not None else fallback_app()

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
        chain: Any = canvas_type("chain")
        if isinstance(other, chain):
            return chain(self, *other.unchain_tasks(), app=self._app)
        if isinstance(other, canvas_type("group")):
            return chain(self, maybe_unroll_group(other), app=self._app)
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
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


def canvas_type(subtask_type: str) -> type[Signature]:
    """The class registered for `subtask_type` ("chain", "group" or "chord")."""
    return Signature.TYPES[subtask_type]


def maybe_unroll_group(sig: Any) -> Any:
    """A group of one task is that task."""
    group: Any = canvas_type("group")
    return sig.tasks[0] if isinstance(sig, group) and len(sig.tasks) == 1 else sig


def app_of(*sigs: Any) -> CanvasApp | None:
    """The first app of its own among `sigs` (Celery: a canvas with no `app=` sends
    through its first task's app, so a group of another app's tasks goes to that app)."""
    for sig in sigs:
        app = sig._own_app() if isinstance(sig, Signature) else None
        if app is not None:
            return app
    return None


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
