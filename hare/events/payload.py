"""An event's payload checked against its handler's annotated parameter, and sent as JSON.

Pure: no I/O. What is checked (and converted) at the worker, before the handler runs:

* `str`, `int`, `float` (an int is accepted), `bool`, `None`, `Any` / no annotation;
* `list[X]`, `dict[str, X]`, `X | Y`, `Optional[X]`, `Literal[...]`;
* a dataclass: a JSON object with its fields (no other keys, the required ones present), each
  checked by its annotation; the handler gets an instance;
* a `TypedDict`: the same, the handler gets the dict;
* a pydantic model (anything with `model_validate`): its own validation decides.

Anything else (an Enum, a Protocol, a generic class of your own...) is passed as it came,
unchecked. A payload that fails raises `InvalidPayload`, naming where (`$.items[2].sku`).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from hare.errors import ConfigurationError
from hare.events.errors import InvalidPayload

__all__ = ("dump", "load", "payload_annotation")

_SIMPLE: dict[Any, tuple[type, ...]] = {str: (str,), bool: (bool,), dict: (dict,), list: (list,)}


def payload_annotation(fn: Callable[..., Any]) -> Any:
    """The annotation of `fn`'s one parameter (`Any` when there is none).

    Raises `ConfigurationError` for a handler that cannot take one payload argument, or whose
    annotation does not resolve (a name defined nowhere)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return Any
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional[1:] if p.default is p.empty]
    if not positional or required:
        raise ConfigurationError(
            f"event handler {getattr(fn, '__qualname__', fn)!r} must take the payload as its "
            "one positional parameter"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a forward reference to a name defined nowhere
        raise ConfigurationError(
            f"event handler {getattr(fn, '__qualname__', fn)!r}: its annotation does not "
            f"resolve ({exc})"
        ) from exc
    return hints.get(positional[0].name, Any)


def load(annotation: Any, value: Any) -> Any:
    """`value` checked against `annotation` and converted (a dataclass built); raises
    `InvalidPayload`."""
    return _load(annotation, value, "$")


def dump(payload: Any) -> Any:
    """A payload as JSON-ready data: a dataclass as a dict, a pydantic model by its
    `model_dump(mode="json")`; anything else as it is (the serializer decides)."""
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        return dataclasses.asdict(payload)
    model_dump = getattr(payload, "model_dump", None)
    if callable(model_dump) and not isinstance(payload, type):
        return model_dump(mode="json")
    return payload


def _load(annotation: Any, value: Any, path: str) -> Any:
    if annotation is Any or annotation is object:
        return value
    if annotation is None or annotation is type(None):
        return _expect(value is None, value, "null", path)
    if annotation is int:
        return _expect(type(value) is int, value, "an integer", path)
    if annotation is float:
        ok = type(value) in (int, float)
        return float(_expect(ok, value, "a number", path))
    if annotation in _SIMPLE:
        return _expect(isinstance(value, _SIMPLE[annotation]), value, annotation.__name__, path)
    origin = typing.get_origin(annotation)
    if origin is not None:
        return _load_generic(origin, typing.get_args(annotation), value, path)
    if isinstance(annotation, type):
        return _load_class(annotation, value, path)
    return value  # not checked: see the module's docstring


def _load_generic(origin: Any, args: tuple[Any, ...], value: Any, path: str) -> Any:
    if origin is Union or origin is types.UnionType:
        problems = []
        for arm in args:
            try:
                return _load(arm, value, path)
            except InvalidPayload as exc:
                problems.append(str(exc))
        raise InvalidPayload(" and ".join(problems))
    if origin is Literal:
        return _expect(value in args, value, f"one of {list(args)!r}", path)
    if origin is list:
        items = _expect(isinstance(value, list), value, "a list", path)
        item = args[0] if args else Any
        return [_load(item, one, f"{path}[{i}]") for i, one in enumerate(items)]
    if origin is dict:
        mapping = _expect(isinstance(value, dict), value, "an object", path)
        item = args[1] if len(args) == 2 else Any
        for key in mapping:
            _expect(isinstance(key, str), key, "a string key", path)
        return {key: _load(item, one, f"{path}.{key}") for key, one in mapping.items()}
    if origin is typing.Annotated:
        return _load(args[0], value, path)
    return value  # not checked


def _load_class(cls: type, value: Any, path: str) -> Any:
    if typing.is_typeddict(cls):
        keys = set(typing.get_type_hints(cls))
        required = set(getattr(cls, "__required_keys__", keys))
        return _load_object(cls, value, path, keys, required)
    if isinstance(value, cls):
        return value
    if dataclasses.is_dataclass(cls):
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        required = {
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        checked = _load_object(cls, value, path, set(fields), required)
        return cls(**checked)
    validate = getattr(cls, "model_validate", None)
    if callable(validate):  # a pydantic model
        try:
            return validate(value)
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidPayload(f"{path}: not a valid {cls.__name__}: {exc}") from None
    return value  # not checked


def _load_object(
    cls: type, value: Any, path: str, keys: set[str], required: set[str]
) -> dict[str, Any]:
    mapping: Mapping[str, Any] = _expect(
        isinstance(value, dict), value, f"an object ({cls.__name__})", path
    )
    missing = sorted(required - set(mapping))
    if missing:
        raise InvalidPayload(f"{path}: {cls.__name__} lacks {', '.join(missing)}")
    unknown = sorted(str(key) for key in set(mapping) - keys)
    if unknown:
        raise InvalidPayload(f"{path}: {cls.__name__} has no field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    return {key: _load(hints.get(key, Any), one, f"{path}.{key}") for key, one in mapping.items()}


def _expect(ok: bool, value: Any, what: str, path: str) -> Any:
    if not ok:
        raise InvalidPayload(f"{path}: expected {what}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
