"""The cluster tier's part of `docs/reliability.md` (imported by `reliability_report.py`).

`tests/cluster` records its figures as the fault suite does; these render them, say what the
scenarios assert, and run the 3-node RabbitMQ 4.0 cluster (`scripts/rabbitmq/cluster.sh`)
for the length of the report's pytest run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rabbitmq" / "cluster.sh"

Figure = dict[str, Any]
Row = tuple[str, ...]


@contextmanager
def running() -> Iterator[str]:
    """Start the cluster unless it runs (then stop it at the end); what it is, for the
    environment. Without root it is not started, and the cluster tests skip."""
    if os.geteuid() != 0:
        yield "not run (scripts/rabbitmq/cluster.sh needs root)"
        return
    ours = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode != 0
    subprocess.run([str(SCRIPT), "start"], check=True, capture_output=True, timeout=600)
    try:
        version = subprocess.run(
            [str(SCRIPT), "ctl", "1", "-q", "version"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
        yield f"{version or '?'}, 3 nodes on loopback (scripts/rabbitmq/cluster.sh)"
    finally:
        if ours:
            subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=300)


def _load(f: Figure) -> str:
    return (
        f"{f['published']:,} confirmed publishes at {f['rate']}/s ({f['publish_failures']} "
        f"failed), 2 workers -c {f['concurrency']}, 3-node cluster"
    )


def _gaps(f: Figure) -> str:
    return (
        f"longest pause after the kill: publishes {f['publish_gap']} s, task starts "
        f"{f['consume_gap']} s"
    )


def _exits(f: Figure) -> str:
    return "exit " + ", ".join(str(code) for code in f["exit_codes"])


def _node_loss(f: Figure) -> list[Row]:
    return [
        (
            _load(f),
            "SIGKILL of the node leading the work queue, mid-run (the producer and one worker "
            "connected to it)",
            f"{f['duplicates']} ({f['duplicates_first_on_leader']} first run on the dead "
            "node's connection)",
            str(f["lost"]),
            _gaps(f),
            _exits(f),
        )
    ]


def _node_back(f: Figure) -> list[Row]:
    return [
        (
            _load(f),
            "SIGKILL of the leader's node (no client on it), then a restart under load: node up "
            f"in {f['node_start_seconds']} s, every member online again after "
            f"{f['members_back_seconds']} s",
            str(f["duplicates"]),
            str(f["lost"]),
            _gaps(f),
            _exits(f),
        )
    ]


def _ladder(f: Figure) -> list[Row]:
    return [
        (
            f"{f['tasks']:,} delayed tasks ({f['delays']}), 2 workers -c {f['concurrency']}, "
            "3-node cluster",
            f"SIGKILL of the node leading the ladder levels and the work queue "
            f"({f['waiting_at_kill']:,} tasks still waiting)",
            f"{f['duplicates']} ({f['duplicates_first_on_victim']} first run on the dead node's "
            "connection, the others sent again by at-least-once dead-lettering)",
            str(f["lost"]),
            f"lateness after the eta: p50 {f['lateness_p50']} s, p99 {f['lateness_p99']} s, "
            f"max {f['lateness_max']} s",
            _exits(f),
        )
    ]


def _dead_letters(f: Figure) -> list[Row]:
    made, kept = f["dead_letters_made"], f["dead_letters_kept"]
    return [
        (
            "1 task requeued up to its delivery limit (3), 1 failing task, 20 good ones",
            "SIGKILL of the node leading the work queue and `<queue>.dead`; the worker and "
            "producer on other nodes",
            "-",
            f"{made - kept} of {made} dead letters; {f['good_lost']} good tasks",
            "-",
            f"exit {f['exit_code']}",
        )
    ]


RENDERERS: dict[str, Callable[[Figure], list[Row]]] = {
    "node loss": _node_loss,
    "ladder node loss": _ladder,
    "node back": _node_back,
    "dead-letter queue's node lost": _dead_letters,
}

NOTES = [
    "## Node loss on a 3-node cluster",
    "",
    "`tests/cluster` (marker `cluster`) runs on three RabbitMQ 4.0.5 nodes on loopback "
    "(`scripts/rabbitmq/cluster.sh`); every client is given all three URLs, `;`-joined, in an "
    "order of its own, and a node is killed with SIGKILL (`cluster.sh kill-node`).",
    "",
    "- **node loss**: the node leading the work queue dies while a producer publishes 3,000 "
    "tasks at 500/s and two workers drain (the producer and one worker connected to that "
    "node). Every confirmed publish ran, every publish was confirmed, neither worker exited; "
    "a task ran twice only if the dead node's connections held it unsettled (each such task "
    "ran exactly twice, at most the worker's prefetch plus one publish per producing loop).",
    "- **ladder node loss**: 2,000 tasks with an eta 1-20 s ahead wait in the delay ladder; "
    "the node leading most levels (and the work queue) dies, one worker connected to it. All "
    "ran, none more than twice: a task runs twice when the dead node's connection held it "
    "unsettled, or when a level changed leaders with its dead letter not yet confirmed (the "
    "new leader sends it again) and the copy reached the other worker. The lateness is the "
    "first start after the eta, from the ledger.",
    "- **node back**: the leader's node dies (no client on it) and is started again under "
    "load; the work queue and all 32 ladder levels have 3 online members again, and nothing "
    "ran twice.",
    "- **dead-letter queue's node lost**: the node leading the work queue and `<queue>.dead` "
    "(both quorum queues) dies. Once both have a new leader, a dead letter made by the broker "
    "(a quorum queue's `x-delivery-limit`) and one made by the worker (a failed task) are both "
    "in `<queue>.dead` while the node is still down. A dead letter the broker makes while "
    "`<queue>.dead` still elects its leader is dropped (quorum queues dead-letter at most "
    "once by default; made within ~0.1 s of the kill, 2 of 5 runs lost it). With the classic "
    "`<queue>.dead` of hare before issue 19, the first was dropped and the second refused "
    "until the node came back.",
    "",
]
