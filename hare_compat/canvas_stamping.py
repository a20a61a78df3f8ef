"""Stamping (Celery 5.3): labels put on every part of a canvas, carried as message headers.

`sig.stamp(visitor=None, append_stamps=False, **stamps)` sets stamps on a signature, its
callbacks and errbacks, and, for a group, chain or chord, on every part; a
`StampingVisitor` decides each part's stamps. A stamp is an option of the signature named in
its `stamped_headers` option; sent, each message carries `stamped_headers` and `stamps` in its
headers, as Celery's client sends them, and workers (hare's and Celery's) honour
`revoke_by_stamped_headers` by them. Celery's rules, including how duplicates merge
(`append_stamps=True` gathers values into a list; else the later one wins).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

__all__ = (
    "StampingVisitor",
    "merge_stamps",
    "stamp_headers",
    "stamp_links",
    "stamp_signature",
    "stamps_of",
)


def merge_stamps(into: dict[str, Any], other: Mapping[str, Any] | None, aggregate: bool) -> None:
    """Merge `other` into `into` as Celery's `_merge_dictionaries` does."""
    if not other:
        return
    for key, value in list(into.items()):
        if key not in other:
            continue
        if isinstance(value, dict):
            merge_stamps(value, other[key], aggregate)
            continue
        if isinstance(value, int | float | str):
            into[key] = [value] if aggregate else value
        if isinstance(other[key], list) and isinstance(into[key], list):
            into[key].extend(other[key])
        elif aggregate:
            into[key] = [] if into[key] is None else list(into[key])
            into[key].append(other[key])
    for key, value in other.items():
        if key not in into:
            into[key] = value


def stamp_headers(
    sig: Any,
    visitor_headers: Mapping[str, Any] | None,
    append_stamps: bool,
    self_headers: bool = True,
    **headers: Any,
) -> dict[str, Any]:
    """The stamps for `sig`: `headers`, the visitor's, and (with `self_headers`) those it
    already has, with `stamped_headers` naming them all (Celery's `_stamp_headers`)."""
    merged = dict(headers)
    merged.setdefault("stamped_headers", list(merged))
    if visitor_headers is not None:
        visited = dict(visitor_headers)
        visited.setdefault("stamped_headers", list(visited))
        merge_stamps(merged, visited, append_stamps)
        merged["stamped_headers"] = list(dict.fromkeys(merged["stamped_headers"]))
    if self_headers:
        names = dict.fromkeys([*merged.get("stamped_headers", ()), *stamped(sig)])
        merged["stamped_headers"] = list(names)
        own = {k: v for k, v in sig.options.items() if k in merged["stamped_headers"]}
        merge_stamps(merged, own, append_stamps)
        merged["stamped_headers"] = list(dict.fromkeys(merged["stamped_headers"]))
    return merged


def stamped(sig: Any) -> list[str]:
    """The names of the stamps `sig` carries."""
    return list(sig.options.get("stamped_headers") or ())


def stamps_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """`{name: value}` of the stamps in a signature's (or a call's) options."""
    return {name: options[name] for name in options.get("stamped_headers") or () if name in options}


def stamp_signature(sig: Any, visitor: Any, append_stamps: bool, headers: dict[str, Any]) -> Any:
    """Stamp one task signature and its links (Celery's `Signature.stamp`)."""
    stamp_links(sig, visitor, append_stamps, headers)
    visited = None if visitor is None else (visitor.on_signature(sig, **headers) or {})
    return sig.set(**stamp_headers(sig, visited, append_stamps, **headers))


def stamp_parts(
    sig: Any, visitor: Any, append_stamps: bool, headers: dict[str, Any], kind: str, parts: Any
) -> dict[str, Any]:
    """Stamp a group, chain or chord header (`kind`: its visitor hooks' name) and each part;
    the stamps it gave them."""
    start = None if visitor is None else getattr(visitor, f"on_{kind}_start")
    given = stamp_headers(
        sig, None if start is None else (start(sig, **headers) or {}), append_stamps, **headers
    )
    stamp_links(sig, visitor, append_stamps, given)
    for part in parts:
        part.stamp(visitor, append_stamps, **given)
    if visitor is not None:
        getattr(visitor, f"on_{kind}_end")(sig, **given)
    return given


def stamp_links(sig: Any, visitor: Any, append_stamps: bool, headers: dict[str, Any]) -> None:
    """Stamp the callbacks (`on_callback`) and errbacks (`on_errback`) of `sig`: each with
    `headers` and its visitor's stamps, not with `sig`'s own."""
    for option, hook in (("link", "on_callback"), ("link_error", "on_errback")):
        given = copy.deepcopy(headers)
        links = sig.options.get(option) or []
        for link in links if isinstance(links, list | tuple) else [links]:
            linked = link if hasattr(link, "stamp") else sig.from_dict(link, app=sig.app)
            visited = None if visitor is None else (getattr(visitor, hook)(linked, **given) or {})
            given = stamp_headers(linked, visited, append_stamps, self_headers=False, **given)
            linked.stamp(visitor, append_stamps, **given)


class StampingVisitor(ABC):
    """Celery 5.3's stamping visitor: the stamps (`{name: value}`) for each part of a canvas.

    Subclass it as in Celery (`on_signature` is required) and pass it to `sig.stamp(visitor)`:
    each hook returns the stamps of the part it visits.
    """

    def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
        return {}

    def on_group_end(self, group: Any, **headers: Any) -> None:
        return None

    def on_chain_start(self, chain: Any, **headers: Any) -> dict[str, Any]:
        return {}

    def on_chain_end(self, chain: Any, **headers: Any) -> None:
        return None

    @abstractmethod
    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        """The stamps of one signature."""

    def on_chord_header_start(self, sig: Any, **header: Any) -> dict[str, Any]:
        return self.on_group_start(sig.tasks, **header)

    def on_chord_header_end(self, sig: Any, **header: Any) -> None:
        self.on_group_end(sig.tasks, **header)

    def on_chord_body(self, sig: Any, **header: Any) -> dict[str, Any]:
        return {}

    def on_callback(self, callback: Any, **header: Any) -> dict[str, Any]:
        return {}

    def on_errback(self, errback: Any, **header: Any) -> dict[str, Any]:
        return {}
