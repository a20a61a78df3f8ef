"""`@app.task(pydantic=True)`: Celery 5.5's argument validation and result dumping with pydantic.

On the worker, an argument whose annotation is a pydantic model (or an optional one) is
validated into that model (`model_validate(value, strict=, context=)`, the context also naming
`celery_app` and `celery_task_name`), and a returned model that is an instance of the return
annotation is dumped (`model_dump(mode="json", **pydantic_dump_kwargs)`). On the caller,
`apply_async` dumps the models it is given that the worker would rebuild as equal models, so
they travel as JSON. pydantic is imported only by tasks that ask for it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, cast

from hare_compat.exceptions import ImproperlyConfigured

__all__ = ("PydanticTask", "pydantic_wrapper")


class PydanticTask:
    """A task function's pydantic conversions: `wrapper` runs on the worker,
    `dump_arguments` on the caller."""

    def __init__(
        self,
        app: Any,
        fn: Callable[..., Any],
        task_name: str,
        *,
        strict: bool,
        context: Mapping[str, Any] | None,
        dump_kwargs: Mapping[str, Any] | None,
    ) -> None:
        try:
            pydantic = importlib.import_module("pydantic")
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                "You need to install pydantic to use pydantic model serialization."
            ) from exc
        self._model: type = pydantic.BaseModel
        self._fn = fn
        self._strict = strict
        self._context = {**(context or {}), "celery_app": app, "celery_task_name": task_name}
        self._dump_options: dict[str, Any] = {"mode": "json", **(dump_kwargs or {})}
        self._signature = inspect.signature(fn)
        try:
            self._hints: dict[str, Any] | None = typing.get_type_hints(fn)
        except (NameError, AttributeError, TypeError):
            self._hints = None  # e.g. a circular import: fall back to the raw annotations
        parameters = self._signature.parameters.values()
        self._positional = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self._keywords = {
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        self.wrapper = self._wrap()

    # -- the worker's side ---------------------------------------------------------------------

    def _wrap(self) -> Callable[..., Any]:
        fn, convert, dumped = self._fn, self._convert, self._dumped
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                bound = convert(args, kwargs)
                return dumped(await fn(*bound.args, **bound.kwargs))

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = convert(args, kwargs)
            return dumped(fn(*bound.args, **bound.kwargs))

        return run

    def _annotation(self, name: str) -> Any:
        if self._hints is not None and name in self._hints:
            return self._hints[name]
        if name == "return":
            return self._signature.return_annotation
        return self._signature.parameters[name].annotation

    def _model_for(self, name: str, value: Any) -> Any:
        """The model an argument is validated with, or None."""
        wanted = self._annotation(name)
        optional = _optional_of(wanted)
        if optional is not None and value is not None:
            wanted = optional
        return wanted if _is_subclass(wanted, self._model) else None

    def _validate(self, model: Any, value: Any) -> Any:
        return model.model_validate(value, strict=self._strict, context=self._context)

    def _convert(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = self._signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            model = self._model_for(name, value)
            if model is not None:
                bound.arguments[name] = self._validate(model, value)
        return bound

    def _dumped(self, value: Any) -> Any:
        wanted = self._annotation("return")
        wanted = _optional_of(wanted) or wanted
        if (
            isinstance(wanted, type)
            and isinstance(value, self._model)
            and isinstance(value, wanted)
        ):
            return cast(Any, value).model_dump(**self._dump_options)
        return value

    # -- the caller's side ---------------------------------------------------------------------

    def dump_arguments(
        self, args: Any, kwargs: Any, bound: bool = False
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The caller's arguments with the models the worker rebuilds as equal models dumped
        (`bound`: the function's first parameter is the task itself)."""
        names = self._positional[1:] if bound else self._positional
        new_args = tuple(
            self._dump_argument(names[i] if i < len(names) else None, value)
            for i, value in enumerate(args or ())
        )
        new_kwargs = {
            key: self._dump_argument(key if key in self._keywords else None, value)
            for key, value in dict(kwargs or {}).items()
        }
        return new_args, new_kwargs

    def _dump_argument(self, name: str | None, value: Any) -> Any:
        # Only a model the worker rebuilds as an equal model is dumped: anything else is left
        # for the serializer, as for a task without pydantic=True.
        if name is None or not isinstance(value, self._model) or hasattr(type(value), "__json__"):
            return value
        model = self._model_for(name, value)
        if model is None:
            return value
        try:
            plain = cast(Any, value).model_dump(**self._dump_options)
            if self._validate(model, plain) == value:
                return plain
        except Exception:  # a validator that only works on a worker: send it as it is
            pass
        return value


def pydantic_wrapper(
    app: Any,
    fn: Callable[..., Any],
    task_name: str,
    strict: bool = False,
    context: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
) -> PydanticTask:
    """Wrap `fn` to validate model arguments and dump a model result, as Celery does."""
    return PydanticTask(app, fn, task_name, strict=strict, context=context, dump_kwargs=dump_kwargs)


def _optional_of(annotation: Any) -> Any:
    """`X` for `Optional[X]` / `X | None`, else None."""
    origin = typing.get_origin(annotation)
    if origin is not typing.Union and origin is not types.UnionType:
        return None
    members = typing.get_args(annotation)
    if len(members) != 2 or type(None) not in members:
        return None
    return next(m for m in members if m is not type(None))


def _is_subclass(annotation: Any, cls: type) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, cls)
