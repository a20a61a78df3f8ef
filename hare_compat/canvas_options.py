"""A signature's execution options: the ids they hold, `set()`, and the list options `link`
and `link_error` (Celery's `Signature` methods over `sig.options`).

A mixin of `hare_compat.canvas_signature.Signature`, kept apart because it is one concept:
what a signature will be sent with, as opposed to how it is built, composed or sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

__all__ = ("SignatureOptions",)


class SignatureOptions:
    """`id`, `root_id`, `parent_id`, `set`, `link`, `link_error`... of a signature."""

    if TYPE_CHECKING:
        options: dict[str, Any]
        immutable: bool

    @property
    def id(self) -> str | None:
        """The task id, once frozen or set (`options["task_id"]`)."""
        return self.options.get("task_id")

    @property
    def root_id(self) -> str | None:
        return self.options.get("root_id")

    @property
    def parent_id(self) -> str | None:
        return self.options.get("parent_id")

    def set(self, immutable: bool | None = None, **options: Any) -> Self:
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

    def on_error(self, errback: Any) -> Self:
        """`link_error` that returns this signature, for chaining calls."""
        self.link_error(errback)
        return self

    def flatten_links(self) -> list[Any]:
        """This signature and, recursively, its `link` callbacks (Celery's)."""
        flat: list[Any] = [self]
        for callback in self.options.get("link") or ():
            flat.extend(callback.flatten_links())
        return flat
