#!/usr/bin/env bash
# A 3-node RabbitMQ 4.0.x cluster on loopback (Debian trixie's rabbitmq-server in the chroot
# of lib.sh), beside the host's broker and the single node.sh node. Run as root.
#
#   cluster.sh start           bootstrap if needed; start all nodes at once; they form one
#                                   cluster by classic-config peer discovery (idempotent)
#   cluster.sh stop            stop every node (graceful), then the cluster's epmd
#   cluster.sh kill-node N     SIGKILL node N (a crash: node loss)
#   cluster.sh stop-node N     stop node N gracefully
#   cluster.sh start-node N    start node N again; it rejoins the cluster from its data
#   cluster.sh status          which nodes run, and the cluster's view of itself
#   cluster.sh ctl N ARGS...   rabbitmqctl against node N
#   cluster.sh tool N TOOL ... rabbitmq-queues|rabbitmq-diagnostics|... against node N
#   cluster.sh urls            the AMQP URLs, one a line
#   cluster.sh reset           stop, then delete all the nodes' data (not the chroot)
#
# Node N (1..RMQ4C_SIZE) is ${RMQ4C_PREFIX}N@localhost (default rabbit4c1..3), AMQP on
# 127.0.0.1:$((RMQ4C_BASE_PORT+N)) (5681..5683), dist port $((RMQ4C_BASE_DIST+N))
# (25681..25683), all registered with an epmd of their own on RMQ4C_EPMD_PORT (4371).
# RMQ4C_MGMT_BASE (0 = off; e.g. 15680 gives management on 15681..15683).
# All nodes share the chroot's Erlang cookie (/var/lib/rabbitmq/.erlang.cookie in the chroot).
#
# After `stop`, start the cluster again with `start` (all nodes at once): a node started alone
# waits for the peers it last saw (Mnesia) before it opens its AMQP port.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

SIZE=${RMQ4C_SIZE:-3}
PREFIX=${RMQ4C_PREFIX:-rabbit4c}
BASE_PORT=${RMQ4C_BASE_PORT:-5680}
BASE_DIST=${RMQ4C_BASE_DIST:-25680}
EPMD=${RMQ4C_EPMD_PORT:-4371}
MGMT_BASE=${RMQ4C_MGMT_BASE:-0}

node_name() { echo "$PREFIX$1"; }
node_port() { echo $((BASE_PORT + $1)); }
node_dist() { echo $((BASE_DIST + $1)); }
node_mgmt() { if [ "$MGMT_BASE" = 0 ]; then echo 0; else echo $((MGMT_BASE + $1)); fi; }

check_n() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$SIZE" ] \
        || rmq4_die "node number must be 1..$SIZE, not '${1:-}'"
}

discovery_conf() {
    local i
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for i in $(seq 1 "$SIZE"); do
        echo "cluster_formation.classic_config.nodes.$i = $(node_name "$i")@localhost"
    done
    echo "cluster_formation.target_cluster_size_hint = $SIZE"
    # Loopback nodes on one small machine: fail fast rather than the 10 x 30 s default
    # when a peer never comes.
    echo "mnesia_table_loading_retry_timeout = 10000"
    echo "mnesia_table_loading_retry_limit = 30"
}

# Start node N; a node whose boot fails is started again, up to 3 tries in all. Nodes booting
# at the same moment can trip over each other: seen here on a restart of all three from their
# data, "BOOT FAILED ... {case_clause,{error,{node_not_running,rabbit4c1@localhost}}} in
# rabbit_mnesia:check_mnesia_consistency" (rabbitmq-server PR #15502 adds retries for the
# same race); a second try joins the peers that are up by then.
start_one() {
    local n=$1 try
    for try in 1 2 3; do
        if (rmq4_start_node "$(node_name "$n")" "$(node_port "$n")" "$(node_dist "$n")" \
            "$EPMD" "$(node_mgmt "$n")" "$(discovery_conf)${RMQ4C_EXTRA_CONF:+
$RMQ4C_EXTRA_CONF}"); then
            return 0
        fi
        [ "$try" = 3 ] || rmq4_log "$(node_name "$n")@localhost: boot failed (try $try); starting it again"
        sleep 2
    done
    return 1
}

cli() {
    local n=$1
    shift
    rmq4_cli "$(node_name "$n")" "$(node_port "$n")" "$(node_dist "$n")" "$EPMD" "$@"
}

first_running() {
    local i
    for i in $(seq 1 "$SIZE"); do
        if rmq4_launcher_pid "$(node_name "$i")" >/dev/null && rmq4_port_answers "$(node_port "$i")"
        then
            echo "$i"
            return 0
        fi
    done
    return 1
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
start)
    rmq4_bootstrap
    rmq4_ensure_epmd "$EPMD"
    pids=()
    for i in $(seq 1 "$SIZE"); do
        start_one "$i" &
        pids+=($!)
        sleep 1  # staggered a little: fewer boot races
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" = 0 ] || rmq4_die "a node failed to start (see above)"
    # Every node must see all the others running.
    for i in $(seq 1 "$SIZE"); do
        cli "$i" rabbitmqctl -q await_startup --timeout 120
    done
    running=$(cli 1 rabbitmqctl -q cluster_status --formatter json \
        | rmq4_in_root python3 -c 'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))' \
        || echo "?")
    [ "$running" = "$SIZE" ] || rmq4_die "cluster has $running running nodes, not $SIZE"
    rmq4_log "cluster of $SIZE running nodes"
    for i in $(seq 1 "$SIZE"); do echo "amqp://guest:guest@127.0.0.1:$(node_port "$i")/"; done
    ;;
stop)
    rmq4_ready || { rmq4_log "no chroot at $RMQ4_ROOT"; exit 0; }
    # In parallel: a node stopping alone would move quorum-queue leaders back and forth.
    pids=()
    for i in $(seq 1 "$SIZE"); do
        rmq4_stop_node "$(node_name "$i")" "$(node_port "$i")" "$(node_dist "$i")" "$EPMD" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    rmq4_stop_epmd_if_idle "$EPMD"
    ;;
kill-node)
    check_n "${1:-}"
    rmq4_kill_node "$(node_name "$1")"
    ;;
stop-node)
    check_n "${1:-}"
    rmq4_stop_node "$(node_name "$1")" "$(node_port "$1")" "$(node_dist "$1")" "$EPMD"
    ;;
start-node)
    check_n "${1:-}"
    rmq4_ensure_epmd "$EPMD"
    start_one "$1"
    cli "$1" rabbitmqctl -q await_startup --timeout 120
    ;;
status)
    if ! rmq4_ready; then echo "no chroot at $RMQ4_ROOT"; exit 3; fi
    for i in $(seq 1 "$SIZE"); do
        if pid=$(rmq4_launcher_pid "$(node_name "$i")"); then
            state="running (pid $pid)"
            rmq4_port_answers "$(node_port "$i")" || state="starting (pid $pid)"
        else
            state="stopped"
        fi
        echo "node $i $(node_name "$i")@localhost amqp 127.0.0.1:$(node_port "$i"): $state"
    done
    if n=$(first_running); then
        echo "as seen from node $n:"
        cli "$n" rabbitmqctl -q cluster_status --formatter json | rmq4_in_root python3 -c '
import json, sys
s = json.load(sys.stdin)
print("  members:", " ".join(sorted(s["disk_nodes"])))
print("  running:", " ".join(sorted(s["running_nodes"])))
for alarm in s.get("alarms", []):
    print("  alarm:", alarm)
for node, ver in sorted(s.get("versions", {}).items()):
    print("  " + node, "RabbitMQ", ver.get("rabbitmq_version"), "Erlang", ver.get("erlang_version"))'
    else
        echo "no node running"
        exit 3
    fi
    ;;
ctl)
    check_n "${1:-}"
    n=$1
    shift
    cli "$n" rabbitmqctl "$@"
    ;;
tool)
    check_n "${1:-}"
    n=$1
    tool=${2:?tool name}
    shift 2
    cli "$n" "$tool" "$@"
    ;;
urls)
    for i in $(seq 1 "$SIZE"); do echo "amqp://guest:guest@127.0.0.1:$(node_port "$i")/"; done
    ;;
reset)
    "$0" stop
    for i in $(seq 1 "$SIZE"); do
        rm -rf --one-file-system "$(rmq4_hostpath "$RMQ4_NODES_DIR/$(node_name "$i")")"
    done
    rmq4_log "deleted the data of the cluster's nodes"
    ;;
*)
    sed -n '2,28p' "$0" >&2
    exit 2
    ;;
esac
