"""Draw docs/img/architecture.svg: hare's floors as `.importlinter` declares them.

    .venv/bin/python scripts/architecture_svg.py [docs/img/architecture.svg]

The floors and what stands on each come from FLOORS below, checked against the `layers` of
`.importlinter` (the script fails when they disagree, so the picture cannot drift from the
contract that lint-imports enforces).
"""

from __future__ import annotations

import configparser
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (what the floor is, [(package, what it holds, kind)]): kind is "pure", "io", "pkg" (both)
#: or "edge"; top floor first, as in `.importlinter`.
FLOORS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("the operators' web page", [("hare.dashboard", "Starlette app, pages, actions", "edge")]),
    (
        "edges: the command, the test kit, Celery's API",
        [
            ("hare.cli", "worker, dlq, events, status", "edge"),
            ("hare.testing", "the public test kit", "edge"),
            ("hare_compat", "Celery's API (hare never imports it)", "edge"),
        ],
    ),
    ("the worker: consume, admit, run, settle", [("hare.worker", "processor, pools", "io")]),
    ("what the worker counts", [("hare.metrics", "Prometheus, /metrics", "io")]),
    (
        "the app and the operator's tools",
        [
            ("hare.app", "Hare: tasks, settings, send_task", "io"),
            ("hare.dlq", "browse, replay, purge dead letters", "io"),
        ],
    ),
    (
        "one publisher per event loop; tracing",
        [
            ("hare.connections", "connections per loop", "io"),
            ("hare.tracing", "OpenTelemetry middleware", "io"),
        ],
    ),
    (
        "features on top of tasks",
        [
            ("hare.periodic", "schedules | scheduler", "pkg"),
            ("hare.control", "pidbox | client, server", "pkg"),
            ("hare.events", "payload | emitting", "pkg"),
            ("hare.http", "spec, signature | client", "pkg"),
            ("hare.monitor", "Celery events", "pkg"),
            ("hare.batch", "enqueue_many", "io"),
        ],
    ),
    (
        "a task and its publishing",
        [
            ("hare.task", "Task, Sent, the Sender protocol", "io"),
            ("hare.publisher", "route, encode, confirm, retry", "io"),
        ],
    ),
    ("Celery workflows", [("hare.canvas", "continuation, plan, signatures, chords", "pure")]),
    ("task results", [("hare.results", "state, celery_format | store, backends/", "pkg")]),
    (
        "the seam: the Transport protocol, its implementations",
        [
            ("hare.portal", "the sync bridge", "io"),
            ("transport.amqp", "aiormq's only importer", "io"),
            ("transport.memory", "RabbitMQ's rules in-process", "io"),
        ],
    ),
    (
        "the pure core: no I/O, no clock, no randomness",
        [("hare.core", "message, protocol, calls, topology, ladder, retry, priority", "pure")],
    ),
]
LEAVES = ["hare.errors", "hare.signals", "hare.middleware", "hare.context", "hare.clock"]
WIDTH, FLOOR_H, GAP, LEFT, INNER = 680, 56, 8, 20, 660


def check_against_contract() -> None:
    """Fail when FLOORS and `.importlinter`'s layers name different packages per floor."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    layers = parser["importlinter:contract:floors"]["layers"].split("\n")
    declared = [sorted(p.strip() for p in line.split(":")) for line in layers if line.strip()]
    drawn = []
    for _, boxes in FLOORS:
        names = sorted(
            name.removeprefix("hare.").split(".")[0]
            for name, _, _ in boxes
            if name.startswith(("hare.", "transport.")) and name != "hare_compat"
        )
        drawn.append(sorted(set(names)))
    if drawn != declared:
        raise SystemExit(f"FLOORS differ from .importlinter's layers:\n{drawn}\n{declared}")


def svg() -> str:
    height = len(FLOORS) * (FLOOR_H + GAP) + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" '
        f'viewBox="0 0 900 {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
        "  <title>hare's floors: each imports only the floors below it</title>",
        "  <style>",
        "    .floor { fill: #f4f6f8; stroke: #8a99a8; }",
        "    .pkg { fill: #ffffff; stroke: #4a6378; }",
        "    .pure { fill: #eaf6ea; stroke: #4b8a4b; }",
        "    .io { fill: #fff3e0; stroke: #c07a1a; }",
        "    .edge { fill: #eef0fb; stroke: #5560a8; }",
        "    .label { font-size: 11px; fill: #44515e; }",
        "    .name { font-weight: bold; font-size: 12px; }",
        "    .small { font-size: 10px; fill: #44515e; }",
        "  </style>",
        '  <defs><marker id="down" markerWidth="10" markerHeight="10" refX="5" refY="5" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a99a8"/></marker></defs>',
    ]
    y = 20
    for label, boxes in FLOORS:
        out.append(
            f'  <rect class="floor" x="{LEFT}" y="{y}" width="{WIDTH}" height="{FLOOR_H}" rx="6"/>'
        )
        out.append(f'  <text class="label" x="30" y="{y + 15}">{escape(label)}</text>')
        width = (INNER - 16 * (len(boxes) - 1)) / len(boxes)
        for n, (name, note, kind) in enumerate(boxes):
            x = 30 + n * (width + 16)
            out.append(
                f'  <rect class="{kind}" x="{x:.0f}" y="{y + 20}" width="{width:.0f}" '
                f'height="30" rx="4"/>'
            )
            out.append(
                f'  <text class="name" x="{x + 8:.0f}" y="{y + 33}">{escape(name)}</text>'
                f'<text class="small" x="{x + 8:.0f}" y="{y + 46}">{escape(note)}</text>'
            )
        y += FLOOR_H + GAP
    bottom = y - GAP
    out.append(
        f'  <line x1="712" y1="30" x2="712" y2="{bottom - 12}" stroke="#8a99a8" '
        'stroke-width="2" marker-end="url(#down)"/>'
    )
    middle = (20 + bottom) // 2
    out.append(
        f'  <text class="label" x="718" y="{middle}" transform="rotate(90 718 {middle})">'
        "imports point down</text>"
    )
    out.append(f'  <rect class="pkg" x="740" y="20" width="140" height="{bottom - 20}" rx="6"/>')
    out.append('  <text class="name" x="752" y="42">shared leaves</text>')
    out.append('  <text class="small" x="752" y="60">importable from every floor:</text>')
    for n, leaf in enumerate(LEAVES):
        out.append(f'  <text x="752" y="{90 + 24 * n}">{leaf}</text>')
    legend = 90 + 24 * len(LEAVES) + 30
    for n, (kind, what) in enumerate(
        [("pure", "pure"), ("io", "does I/O"), ("pkg", "pure | I/O inside"), ("edge", "edges")]
    ):
        top = legend + 20 * n
        out.append(
            f'  <rect class="{kind}" x="752" y="{top}" width="16" height="12"/>'
            f'<text class="small" x="774" y="{top + 10}">{what}</text>'
        )
    out.append(
        f'  <text class="small" x="20" y="{bottom + 22}">Checked by lint-imports (.importlinter) '
        "in scripts/test.sh: a floor imports only floors below it; no cycles; pure modules import "
        "no clock, asyncio or transport;</text>"
    )
    out.append(
        f'  <text class="small" x="20" y="{bottom + 36}">only transport.amqp imports aiormq; '
        "httpx, prometheus_client, opentelemetry and Starlette each stay inside their one "
        "package.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    check_against_contract()
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "architecture.svg"
    target.write_text(svg())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
