"""How far one quorum queue goes on the 3-node RabbitMQ 4.0 loopback cluster.

    python -m benchmarks cluster [--n 20000] [--reps 3] [--single]

The loops of `benchmarks core`, against one quorum queue with 3 members: the raw aiormq loop
publishing hare's exact message (`raw`), and hare (`await task.adelay(i)`, then an in-process
`Worker`, concurrency 256). Enqueue: 1,000-wide windows of confirmed publishes; drain: the
backlog consumed with prefetch 256 and acked one by one. The queue is declared through node 1,
so node 1 leads it, and the client connects either to node 1 (`leader`) or to node 2
(`follower`: every publish and delivery goes through one more node). With `--single`, the same
loops on the single 4.0.5 node of `scripts/rabbitmq/node.sh` (5673): a quorum queue with one
member, the baseline without replication. `sharded`: the raw loop on three quorum queues side
by side, each led by another node and fed and drained by a client on that node (what
spreading one logical queue over three would give the broker; docs/scaling.md).

The cluster (`scripts/rabbitmq/cluster.sh`, needs root; its `RMQ4C_*` variables choose
another instance) is started if it is not running, and then stopped at the end. Everything
runs in a vhost of its own, deleted at the end. All three nodes, the client and whatever else
runs share the machine's cores: the figures are what one queue does on this machine, not what
three machines would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.broker import ROOT
from benchmarks.core import RawLoop, hare_round, raw_round

CLUSTER = ROOT / "scripts" / "rabbitmq" / "cluster.sh"
NODE = ROOT / "scripts" / "rabbitmq" / "node.sh"
VHOST = "hare-bench-cluster"
#: The nodes' AMQP ports: cluster.sh's, which follow RMQ4C_BASE_PORT (default 5680).
BASE_PORT = int(os.environ.get("RMQ4C_BASE_PORT", "5680"))
PORTS = (BASE_PORT + 1, BASE_PORT + 2, BASE_PORT + 3)

#: How to run `rabbitmqctl -q` against the cluster's node 1, and against the single node.
CLUSTER_CTL = (str(CLUSTER), "ctl", "1", "-q")
NODE_CTL = (str(NODE), "ctl", "-q")


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout


@contextmanager
def vhost(ctl: tuple[str, ...], port: int) -> Iterator[str]:
    """The URL (on `port`) of a fresh vhost made with `ctl`, deleted at the end."""
    subprocess.run([*ctl, "delete_vhost", VHOST], capture_output=True, timeout=60)
    _run(*ctl, "add_vhost", VHOST)
    _run(*ctl, "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:{port}/{VHOST}"
    finally:
        done = subprocess.run([*ctl, "delete_vhost", VHOST], capture_output=True, text=True)
        if done.returncode != 0:  # the figures are kept; the next run deletes it first
            print(f"could not delete vhost {VHOST}: {done.stdout}{done.stderr}", file=sys.stderr)


@contextmanager
def running_cluster() -> Iterator[None]:
    """The cluster, started if need be (and then stopped at the end)."""
    ours = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode != 0
    _run(str(CLUSTER), "start")
    try:
        yield
    finally:
        if ours:
            _run(str(CLUSTER), "stop")


def on_port(url: str, port: int) -> str:
    return url.replace(f":{PORTS[0]}/", f":{port}/")


async def sharded_round(url: str, n: int) -> tuple[float, float]:
    """The raw loop on 3 queues side by side, `n` messages in all: queue k declared through
    node k (so each node leads one) and fed and drained by a client on that node. The
    aggregate enqueue and drain rates (all messages over the wall time of the phase)."""
    loops = [
        RawLoop(on_port(url, port), n // len(PORTS), celery=True, queue=f"hare-bench.shard{k}")
        for k, port in enumerate(PORTS)
    ]
    for loop in loops:
        await loop.open()
    rates = []
    for phase in (RawLoop.enqueue, RawLoop.drain):
        started = time.perf_counter()
        await asyncio.gather(*(phase(loop) for loop in loops))
        rates.append(sum(loop.n for loop in loops) / (time.perf_counter() - started))
    for loop in loops:
        await loop.close()
    return rates[0], rates[1]


def one_rep(places: dict[str, tuple[str, str]], n: int) -> dict[str, float]:
    """Every loop at every place once: `<place> <loop> <enqueue|drain>` -> messages/s."""
    row: dict[str, float] = {}
    for place, (client, declare) in places.items():
        if place == "sharded":
            loops = {"raw": asyncio.run(sharded_round(client, n))}
        else:
            loops = {
                "raw": asyncio.run(raw_round(client, n, celery=True, declare_url=declare)),
                "hare": asyncio.run(hare_round(client, n, declare_url=declare)),
            }
        for loop, (enqueue, drain) in loops.items():
            row[f"{place} {loop} enqueue"] = enqueue
            row[f"{place} {loop} drain"] = drain
    return row


def measure(places: dict[str, tuple[str, str]], n: int, reps: int) -> list[dict[str, float]]:
    rows = []
    for rep in range(reps):
        rows.append(one_rep(places, n))
        print(json.dumps({"rep": rep, **{k: round(v) for k, v in rows[-1].items()}}), flush=True)
    return rows


def table(rows: list[dict[str, float]], n: int, reps: int) -> str:
    lines = [
        f"N = {n:,} per loop, {reps} reps; messages/s, min / median / max",
        "",
        "| queue | client on | loop | enqueue | drain |",
        "|---|---|---|---|---|",
    ]
    places = dict.fromkeys(key.rsplit(" ", 2)[0] for key in rows[0])
    for place in places:
        for loop in ("raw", "hare"):
            if f"{place} {loop} enqueue" not in rows[0]:
                continue
            cells = []
            for what in ("enqueue", "drain"):
                values = [row[f"{place} {loop} {what}"] for row in rows]
                low, mid, high = min(values), statistics.median(values), max(values)
                cells.append(f"{low:,.0f} / **{mid:,.0f}** / {high:,.0f}")
            queue, client = _describe(place)
            lines.append(f"| {queue} | {client} | {loop} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _describe(place: str) -> tuple[str, str]:
    return {
        "leader": ("3-node cluster, 3 members", "the leader's node"),
        "follower": ("3-node cluster, 3 members", "a follower's node"),
        "single": ("single node, 1 member", "the node"),
        "sharded": ("3-node cluster, 3 queues side by side, one led by each node", "its leader"),
    }[place]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cluster")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--single", action="store_true", help="also the single 4.0.5 node of node.sh (5673)"
    )
    args = parser.parse_args(argv)
    with running_cluster(), vhost(CLUSTER_CTL, PORTS[0]) as url:
        places = {
            "leader": (url, url),
            "follower": (on_port(url, PORTS[1]), url),
            "sharded": (url, url),
        }
        if args.single:
            with vhost(NODE_CTL, 5673) as single:
                rows = measure({**places, "single": (single, single)}, args.n, args.reps)
        else:
            rows = measure(places, args.n, args.reps)
    print()
    print(table(rows, args.n, args.reps))
