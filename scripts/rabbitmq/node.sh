#!/usr/bin/env bash
# One RabbitMQ 4.0.x node (Debian trixie's rabbitmq-server in a chroot) on 127.0.0.1:5673,
# beside the host's own broker on 5672. Run as root.
#
#   node.sh bootstrap        make the chroot (debootstrap + apt), once; reused afterwards
#   node.sh start            bootstrap if needed, start the node, wait for AMQP (idempotent)
#   node.sh stop             stop it (graceful), and its epmd
#   node.sh kill             SIGKILL it (a broker crash; `start` brings it back)
#   node.sh status           running or not, versions, listeners
#   node.sh ctl ARGS...      rabbitmqctl against the node (e.g. ctl list_queues name type)
#   node.sh tool TOOL ARGS   rabbitmq-diagnostics|rabbitmq-queues|rabbitmq-plugins ...
#   node.sh reset            stop, then delete the node's data (not the chroot)
#   node.sh url              print the AMQP URL
#   node.sh log-errors [N]   the last N (100) error and warning lines of the node's log, without
#                                 the channel errors clients provoke on purpose (passive declares)
#   node.sh shims DIR        write rabbitmqctl, rabbitmq-diagnostics, rabbitmq-queues and
#                                 rabbitmq-plugins into DIR, aimed at this node: put DIR first on
#                                 PATH so tests that shell out to `rabbitmqctl` reach it
#
# Settings (environment): RMQ4_NAME (rabbit4), RMQ4_PORT (5673), RMQ4_DIST_PORT (25673),
# RMQ4_EPMD_PORT (4370: an epmd of its own, loopback only), RMQ4_MGMT_PORT (0 = management
# plugin off; e.g. 15673 to turn it on), RMQ4_EXTRA_CONF (extra rabbitmq.conf lines),
# RMQ4_ROOT (/opt/rmq4/trixie), RMQ4_MIRROR, RMQ4_SUITE -- see lib.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

NAME=${RMQ4_NAME:-rabbit4}
PORT=${RMQ4_PORT:-5673}
DIST=${RMQ4_DIST_PORT:-25673}
EPMD=${RMQ4_EPMD_PORT:-4370}
MGMT=${RMQ4_MGMT_PORT:-0}
EXTRA=${RMQ4_EXTRA_CONF:-}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
bootstrap)
    rmq4_bootstrap
    cat "$RMQ4_READY_MARK"
    ;;
start)
    rmq4_bootstrap
    rmq4_start_node "$NAME" "$PORT" "$DIST" "$EPMD" "$MGMT" "$EXTRA"
    # The AMQP listener opens near the end of boot; await_startup makes sure of the rest.
    rmq4_cli "$NAME" "$PORT" "$DIST" "$EPMD" rabbitmqctl -q await_startup --timeout 120
    echo "amqp://guest:guest@127.0.0.1:$PORT/"
    ;;
stop)
    rmq4_ready || { rmq4_log "no chroot at $RMQ4_ROOT"; exit 0; }
    rmq4_stop_node "$NAME" "$PORT" "$DIST" "$EPMD"
    rmq4_stop_epmd_if_idle "$EPMD"
    ;;
kill)
    rmq4_ready || { rmq4_log "no chroot at $RMQ4_ROOT"; exit 0; }
    rmq4_kill_node "$NAME"
    ;;
status)
    if ! rmq4_ready; then echo "no chroot at $RMQ4_ROOT"; exit 3; fi
    if pid=$(rmq4_launcher_pid "$NAME") && rmq4_port_answers "$PORT"; then
        echo "$NAME@localhost running: pid $pid, amqp://guest:guest@127.0.0.1:$PORT/"
        rmq4_cli "$NAME" "$PORT" "$DIST" "$EPMD" rabbitmq-diagnostics -q status \
            | grep -E 'RabbitMQ version|Erlang/OTP|Interface:|Node data directory' || true
    else
        echo "$NAME@localhost not running"
        exit 3
    fi
    ;;
ctl)
    rmq4_cli "$NAME" "$PORT" "$DIST" "$EPMD" rabbitmqctl "$@"
    ;;
tool)
    tool=${1:?tool name}
    shift
    rmq4_cli "$NAME" "$PORT" "$DIST" "$EPMD" "$tool" "$@"
    ;;
log-errors)
    log=$(rmq4_hostpath "$RMQ4_NODES_DIR/$NAME/log/$NAME@localhost.log")
    [ -f "$log" ] || { rmq4_log "no log at $log"; exit 0; }
    grep -E '\[(error|warning)\]' "$log" \
        | grep -vE 'exception not_found|Channel error on|closing AMQP conn|unexpectedly closed TCP' \
        | tail -n "${1:-100}"
    ;;
reset)
    rmq4_stop_node "$NAME" "$PORT" "$DIST" "$EPMD"
    rmq4_stop_epmd_if_idle "$EPMD"
    rm -rf --one-file-system "$(rmq4_hostpath "$RMQ4_NODES_DIR/$NAME")"
    rmq4_log "deleted the data of $NAME@localhost"
    ;;
url)
    echo "amqp://guest:guest@127.0.0.1:$PORT/"
    ;;
shims)
    dir=${1:?shims DIR}
    mkdir -p "$dir"
    self="$here/$(basename "$0")"
    for tool in rabbitmqctl rabbitmq-diagnostics rabbitmq-queues rabbitmq-plugins; do
        {
            echo "#!/bin/sh"
            echo "# $tool aimed at $NAME@localhost (RabbitMQ in $RMQ4_ROOT), written by $self"
            printf 'export RMQ4_ROOT=%q RMQ4_NAME=%q RMQ4_PORT=%q RMQ4_DIST_PORT=%q RMQ4_EPMD_PORT=%q\n' \
                "$RMQ4_ROOT" "$NAME" "$PORT" "$DIST" "$EPMD"
            printf 'exec %q tool %q "$@"\n' "$self" "$tool"
        } >"$dir/$tool"
        chmod 755 "$dir/$tool"
    done
    echo "$dir"
    ;;
*)
    sed -n '2,24p' "$0" >&2
    exit 2
    ;;
esac
