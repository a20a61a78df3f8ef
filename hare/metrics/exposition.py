"""The `/metrics` page: Prometheus's text format, for one process or a multi-process tree.

One process renders prometheus-client's default registry: the worker's families
(`hare_*`) and the process and Python collectors beside them (and any metric the app's own
code makes there). A supervisor (`--processes N`) renders the files its children write in
their `PROMETHEUS_MULTIPROC_DIR`, added up by prometheus-client's `MultiProcessCollector`,
and marks a child dead when it exits so that its gauges no longer count.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

__all__ = ("CONTENT_TYPE", "default_registry", "mark_process_dead", "render", "render_directory")

#: The classic text format, which every Prometheus (2.x and 3.x) and agent reads; hare's names
#: need nothing newer (prometheus-client 0.22+ calls its default "1.0.0", which older
#: scrapers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def default_registry() -> CollectorRegistry:
    """prometheus-client's default registry, which `render` renders by default."""
    return REGISTRY


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """`registry`'s metrics in the text format."""
    return generate_latest(registry)


def render_directory(path: str) -> bytes:
    """The metrics of every process that wrote to `path`, added up."""
    registry = CollectorRegistry(auto_describe=True)
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def mark_process_dead(pid: int, path: str) -> None:
    """A process of the tree exited: its live gauges (running, prefetch) go; its counters and
    histograms stay in the totals."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
