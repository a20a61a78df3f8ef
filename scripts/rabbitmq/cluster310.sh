#!/usr/bin/env bash
# The same 3-node loopback cluster as cluster.sh, but made of the HOST's own
# rabbitmq-server (Debian 12: 3.10.8 on Erlang 25) -- no chroot, nothing to download.
# Extra nodes rabbit310c1..3@localhost on 127.0.0.1:5691..5693 (dist 25691..25693), an epmd
# of their own on 4372, data under /var/lib/rabbitmq-hare/nodes/<name>; the host broker
# (rabbit@<host> on 5672, epmd 4369) is not touched. Same commands as cluster.sh:
#   start | stop | kill-node N | stop-node N | start-node N | status | ctl N ... | tool N ... |
#   urls | reset
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RMQ4_ROOT=/
export RMQ4_NODES_DIR=${RMQ310_NODES_DIR:-/var/lib/rabbitmq-hare/nodes}
export RMQ4C_PREFIX=${RMQ310C_PREFIX:-rabbit310c}
export RMQ4C_BASE_PORT=${RMQ310C_BASE_PORT:-5690}
export RMQ4C_BASE_DIST=${RMQ310C_BASE_DIST:-25690}
export RMQ4C_EPMD_PORT=${RMQ310C_EPMD_PORT:-4372}
export RMQ4C_MGMT_BASE=${RMQ310C_MGMT_BASE:-0}
export RMQ4C_SIZE=${RMQ310C_SIZE:-3}
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] \
    || { echo "rmq310: the host has no rabbitmq-server (apt-get install rabbitmq-server)" >&2; exit 1; }
mkdir -p "$RMQ4_NODES_DIR"
exec "$here/cluster.sh" "$@"
