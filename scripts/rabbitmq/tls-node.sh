#!/usr/bin/env bash
# One RabbitMQ node with a TLS listener, made of the HOST's own rabbitmq-server (Debian 12:
# 3.10.8 on Erlang 25; no chroot, nothing to download), beside the host broker on 5672 and
# the 4.0 nodes of node.sh/cluster.sh. Run as root.
#
#   tls-node.sh start CERTDIR   copy the certificates of CERTDIR into the node's folder, then
#                               start the node and wait for it (a running node is restarted,
#                               so that it serves CERTDIR's certificates)
#   tls-node.sh stop            stop it (graceful), and its epmd
#   tls-node.sh status | ctl ARGS... | tool TOOL ARGS... | reset   as node.sh
#   tls-node.sh urls            the plain and the TLS URL (user guest), one a line
#
# CERTDIR holds ca.pem (the CA that client certificates must chain to), server.pem and
# server.key (what the listener presents), and optionally sni-HOST.pem / sni-HOST.key: what it
# presents instead to a client that asks for HOST by SNI (e.g. sni-localhost.pem, for URLs
# naming localhost rather than 127.0.0.1). The listener asks every client for a certificate
# and checks any it gets against ca.pem (verify_peer), but lets clients without one in
# (fail_if_no_peer_cert = false): username and password still apply.
#
# Node rabbit310tls@localhost: plain AMQP on 127.0.0.1:5694, AMQP over TLS on 127.0.0.1:5695,
# dist port 25694, an epmd of its own on 4373, data under /var/lib/rabbitmq-hare/nodes.
# Settings: RMQTLS_NAME, RMQTLS_PORT, RMQTLS_TLS_PORT, RMQTLS_DIST_PORT, RMQTLS_EPMD_PORT,
# RMQ310_NODES_DIR, RMQTLS_EXTRA_CONF (more rabbitmq.conf lines, e.g. default_user and
# default_pass: the user a fresh node is made with, in place of guest).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RMQ4_ROOT=/
export RMQ4_NODES_DIR=${RMQ310_NODES_DIR:-/var/lib/rabbitmq-hare/nodes}
export RMQ4_NAME=${RMQTLS_NAME:-rabbit310tls}
export RMQ4_PORT=${RMQTLS_PORT:-5694}
export RMQ4_DIST_PORT=${RMQTLS_DIST_PORT:-25694}
export RMQ4_EPMD_PORT=${RMQTLS_EPMD_PORT:-4373}
export RMQ4_MGMT_PORT=0
TLS_PORT=${RMQTLS_TLS_PORT:-5695}
. "$here/lib.sh"

command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] \
    || rmq4_die "the host has no rabbitmq-server (apt-get install rabbitmq-server)"

dir="$RMQ4_NODES_DIR/$RMQ4_NAME"
tls="$dir/tls"

# The SNI alternatives of the certificate folder, as Erlang terms (empty: none).
sni_hosts() {
    local pem host entries=()
    for pem in "$tls"/sni-*.pem; do
        [ -e "$pem" ] || continue
        host=${pem##*/sni-}
        host=${host%.pem}
        entries+=("{\"$host\", [{certfile, \"$pem\"}, {keyfile, \"${pem%.pem}.key\"}]}")
    done
    local IFS=,
    echo "${entries[*]}"
}

# The TLS listener's configuration: rabbitmq.conf lines (into $conf) and advanced.config.
# rabbitmq.conf cannot express sni_hosts, and advanced.config's ssl_options replaces the whole
# list rabbitmq.conf made: with SNI alternatives, every TLS option goes to advanced.config.
tls_config() {
    local sni
    sni=$(sni_hosts)
    conf="listeners.ssl.default = 127.0.0.1:$TLS_PORT"
    if [ -z "$sni" ]; then
        conf+=$(printf '\n%s' \
            "ssl_options.cacertfile = $tls/ca.pem" \
            "ssl_options.certfile = $tls/server.pem" \
            "ssl_options.keyfile = $tls/server.key" \
            "ssl_options.verify = verify_peer" \
            "ssl_options.fail_if_no_peer_cert = false")
        echo "[]." >"$dir/advanced.config"
    else
        cat >"$dir/advanced.config" <<EOC
[{rabbit, [{ssl_options, [
    {cacertfile, "$tls/ca.pem"},
    {certfile, "$tls/server.pem"},
    {keyfile, "$tls/server.key"},
    {verify, verify_peer},
    {fail_if_no_peer_cert, false},
    {sni_hosts, [$sni]}
]}]}].
EOC
    fi
}

cmd=${1:-}
case "$cmd" in
start)
    certs=${2:?tls-node.sh start CERTDIR}
    for f in ca.pem server.pem server.key; do
        [ -r "$certs/$f" ] || rmq4_die "$certs/$f: missing or unreadable"
    done
    rmq4_need_root
    mkdir -p "$RMQ4_NODES_DIR"
    # A node already running serves the certificates it started with: start it afresh.
    "$here/node.sh" stop
    rm -rf "$tls"
    mkdir -p "$tls"
    cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$tls/"
    for pem in "$certs"/sni-*.pem; do
        if [ -e "$pem" ]; then cp "$pem" "${pem%.pem}.key" "$tls/"; fi
    done
    chmod 600 "$tls"/*.key
    tls_config
    chown -R rabbitmq:rabbitmq "$dir"
    export RMQ4_EXTRA_CONF="$conf${RMQTLS_EXTRA_CONF:+
$RMQTLS_EXTRA_CONF}"
    "$here/node.sh" start
    echo "amqps://guest:guest@127.0.0.1:$TLS_PORT/"
    ;;
urls)
    echo "amqp://guest:guest@127.0.0.1:$RMQ4_PORT/"
    echo "amqps://guest:guest@127.0.0.1:$TLS_PORT/"
    ;;
stop | status | ctl | tool | reset)
    exec "$here/node.sh" "$@"
    ;;
*)
    sed -n '2,24p' "$0" >&2
    exit 2
    ;;
esac
