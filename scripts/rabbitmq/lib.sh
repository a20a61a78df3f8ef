# shellcheck shell=bash
# Sourced by node.sh and cluster.sh: RabbitMQ 4.0.x (Debian 13 "trixie" packages)
# run from a debootstrapped trixie chroot on a Debian 12 host, next to the host's own
# rabbitmq-server, with no Docker engine. Needs root (debootstrap, chroot, unshare, mount).
#
# Layout (override with the environment):
#   RMQ4_ROOT    the chroot                      (default /opt/rmq4/trixie)
#   RMQ4_MIRROR  the Debian mirror for the chroot (default http://deb.debian.org/debian)
#   RMQ4_SUITE   the Debian suite                 (default trixie: rabbitmq-server 4.0.5)
# Node data lives inside the chroot, one folder per node:
#   $RMQ4_ROOT/var/lib/rabbitmq/nodes/<short name>/{rabbitmq.conf,enabled_plugins,mnesia,log,...}
#
# RMQ4_ROOT=/ means "no chroot": the same functions then run the host's own rabbitmq-server
# (used by rmq310-cluster.sh); RMQ4_NODES_DIR should then point somewhere of its own.
#
# Every process of a node runs in a private mount namespace (unshare --mount) in which /proc
# is mounted into the chroot: the mount vanishes with the last process, so nothing is ever
# left mounted on the host and `rm -rf $RMQ4_ROOT` stays safe once the nodes are stopped.
# /dev needs no bind mount: debootstrap's own device nodes (null, zero, urandom, ...) suffice.

RMQ4_ROOT=${RMQ4_ROOT:-/opt/rmq4/trixie}
RMQ4_MIRROR=${RMQ4_MIRROR:-http://deb.debian.org/debian}
RMQ4_SUITE=${RMQ4_SUITE:-trixie}
RMQ4_START_TIMEOUT=${RMQ4_START_TIMEOUT:-240}
RMQ4_READY_MARK="${RMQ4_ROOT%/}/.rmq4-ready"
# Where the nodes' folders are, as seen inside the chroot.
RMQ4_NODES_DIR=${RMQ4_NODES_DIR:-/var/lib/rabbitmq/nodes}

rmq4_log() { echo "rmq4: $*" >&2; }
rmq4_die() { echo "rmq4: ERROR: $*" >&2; exit 1; }

rmq4_need_root() {
    [ "$(id -u)" = 0 ] || rmq4_die "must run as root (debootstrap, chroot, unshare, mount)"
}

rmq4_host_mode() { [ "$RMQ4_ROOT" = / ]; }

# A path inside the root, as seen from the host.
rmq4_hostpath() { echo "${RMQ4_ROOT%/}$1"; }

# True once the root can run nodes.
rmq4_ready() { rmq4_host_mode || [ -f "$RMQ4_READY_MARK" ]; }

# The words that run a command inside the chroot, in a private mount namespace with /proc
# mounted (nothing at all in host mode), into the array RMQ4_PFX.
rmq4_prefix() {
    if rmq4_host_mode; then
        RMQ4_PFX=()
    else
        RMQ4_PFX=(unshare --mount --propagation private -- sh -c '
            root=$1; shift
            mount -t proc proc "$root/proc" || exit 111
            exec chroot "$root" "$@"' rmq4 "$RMQ4_ROOT")
    fi
}

# Run a command inside the chroot.
rmq4_in_root() {
    local -a RMQ4_PFX
    rmq4_prefix
    "${RMQ4_PFX[@]}" "$@"
}

# True when something under the chroot is mounted in the host's namespace (it must not be,
# with this script; checked before anything deletes the folder).
rmq4_root_has_mounts() {
    awk -v r="$RMQ4_ROOT" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' \
        /proc/mounts
}

# Create the chroot with rabbitmq-server installed, once; later calls return at once.
# The apt lists are deleted afterwards (~90 MiB): run `apt-get update` in the chroot before
# installing anything else there.
rmq4_bootstrap() {
    rmq4_need_root
    rmq4_ready && return 0
    mkdir -p "$(dirname "$RMQ4_ROOT")"
    exec 9>"$RMQ4_ROOT.lock"
    flock 9
    if [ -f "$RMQ4_READY_MARK" ]; then exec 9>&-; return 0; fi
    local t0 t1 t2
    t0=$(date +%s)
    if ! command -v debootstrap >/dev/null 2>&1; then
        rmq4_log "installing debootstrap on the host"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q debootstrap >&2; } \
            || rmq4_die "cannot install debootstrap"
    fi
    if [ -e "$RMQ4_ROOT" ]; then
        # A half-made chroot from an interrupted run: start over.
        rmq4_root_has_mounts && rmq4_die "$RMQ4_ROOT has mounts; refusing to delete it"
        rmq4_log "removing the unfinished chroot $RMQ4_ROOT"
        rm -rf --one-file-system "$RMQ4_ROOT"
    fi
    rmq4_log "debootstrap --variant=minbase $RMQ4_SUITE $RMQ4_ROOT $RMQ4_MIRROR"
    debootstrap --variant=minbase "$RMQ4_SUITE" "$RMQ4_ROOT" "$RMQ4_MIRROR" \
        >"$RMQ4_ROOT.debootstrap.log" 2>&1 \
        || { tail -20 "$RMQ4_ROOT.debootstrap.log" >&2; rmq4_die "debootstrap failed"; }
    t1=$(date +%s)
    # No service may start while packages are installed in the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$RMQ4_ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$RMQ4_ROOT/usr/sbin/policy-rc.d"
    # debootstrap writes no /etc/hosts; short node names @localhost need one.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$RMQ4_ROOT/etc/hosts"
    # Give the chroot's rabbitmq user the host's rabbitmq uid/gid (when there is one and it is
    # free in the chroot), so that host tools (ps, top) show the 4.0 nodes as "rabbitmq" rather
    # than whichever host account happens to share the uid the package would pick.
    local uid gid
    uid=$(id -u rabbitmq 2>/dev/null || true)
    gid=$(id -g rabbitmq 2>/dev/null || true)
    local pre=":"
    if [ -n "$uid" ] && [ -n "$gid" ] \
        && ! awk -F: -v u="$uid" '$3 == u { f = 1 } END { exit !f }' "$RMQ4_ROOT/etc/passwd" \
        && ! awk -F: -v g="$gid" '$3 == g { f = 1 } END { exit !f }' "$RMQ4_ROOT/etc/group"; then
        pre="groupadd --system --gid $gid rabbitmq && useradd --system --uid $uid --gid $gid \
--home-dir /var/lib/rabbitmq --no-create-home --shell /usr/sbin/nologin \
--comment 'RabbitMQ messaging server' rabbitmq"
    fi
    rmq4_log "installing rabbitmq-server in the chroot"
    rmq4_in_root env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        LANG=C.UTF-8 sh -c "$pre && apt-get update -q && \
            apt-get install -y -q --no-install-recommends rabbitmq-server && apt-get clean && \
            rm -rf /var/lib/apt/lists/*" \
        >"$RMQ4_ROOT.install.log" 2>&1 \
        || { tail -20 "$RMQ4_ROOT.install.log" >&2; rmq4_die "installing rabbitmq-server failed"; }
    t2=$(date +%s)
    mkdir -p "$(rmq4_hostpath "$RMQ4_NODES_DIR")"
    rmq4_in_root chown rabbitmq:rabbitmq "$RMQ4_NODES_DIR"
    {
        echo "debootstrap_s=$((t1 - t0))"
        echo "install_s=$((t2 - t1))"
        echo "rabbitmq_server=$(rmq4_in_root dpkg-query -W -f '${Version}' rabbitmq-server)"
        echo "erlang_base=$(rmq4_in_root dpkg-query -W -f '${Version}' erlang-base)"
        echo "du_mib=$(du -sm "$RMQ4_ROOT" | cut -f1)"
    } >"$RMQ4_READY_MARK.tmp"
    mv "$RMQ4_READY_MARK.tmp" "$RMQ4_READY_MARK"
    rmq4_log "chroot ready: $(tr '\n' ' ' <"$RMQ4_READY_MARK")"
    exec 9>&-
}

# The environment of one node, as NAME=value words for `env -i`.
#   $1 short name  $2 AMQP port  $3 dist port  $4 epmd port
rmq4_node_env() {
    local name=$1 port=$2 dist=$3 epmd=$4 dir="$RMQ4_NODES_DIR/$1"
    printf '%s\n' \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/var/lib/rabbitmq \
        LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        ERL_EPMD_PORT="$epmd" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_NODENAME="$name@localhost" \
        RABBITMQ_USE_LONGNAME=false \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$port" \
        RABBITMQ_DIST_PORT="$dist" \
        RABBITMQ_CONF_ENV_FILE=/dev/null \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/beam.pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none -kernel inet_dist_use_interface {127,0,0,1}"
}

# Run a command as the chroot's rabbitmq user with one node's environment.
#   $1 short name  $2 AMQP port  $3 dist port  $4 epmd port  $5... command
rmq4_as_node() {
    local name=$1 port=$2 dist=$3 epmd=$4
    shift 4
    local -a envs
    mapfile -t envs < <(rmq4_node_env "$name" "$port" "$dist" "$epmd")
    rmq4_in_root setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        env -i "${envs[@]}" "$@"
}

# rabbitmqctl / rabbitmq-diagnostics / rabbitmq-queues / rabbitmq-plugins against one node.
#   $1 short name  $2 AMQP port  $3 dist port  $4 epmd port  $5 tool  $6... arguments
rmq4_cli() {
    local name=$1 port=$2 dist=$3 epmd=$4 tool=$5
    shift 5
    rmq4_as_node "$name" "$port" "$dist" "$epmd" \
        "/usr/lib/rabbitmq/bin/$tool" -n "$name@localhost" "$@"
}

rmq4_port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Start this world's own epmd (loopback only) on $1, unless one answers there already (then
# it is used as it is -- the host's own on 4369 works too -- and never stopped by us).
rmq4_ensure_epmd() {
    local epmd=$1 mark
    mark=$(rmq4_hostpath "$RMQ4_NODES_DIR/.epmd-$epmd.ours")
    rmq4_port_answers "$epmd" && return 0
    mkdir -p "$(dirname "$mark")"
    touch "$mark"
    rmq4_in_root setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        env -i PATH=/usr/bin:/bin HOME=/var/lib/rabbitmq \
        epmd -daemon -port "$epmd" -address 127.0.0.1
    local _
    for _ in $(seq 1 50); do
        rmq4_port_answers "$epmd" && return 0
        sleep 0.1
    done
    rmq4_die "epmd did not come up on 127.0.0.1:$epmd"
}

# Stop the epmd on $1 when we started it and no node is registered with it any more.
rmq4_stop_epmd_if_idle() {
    local epmd=$1 names mark
    mark=$(rmq4_hostpath "$RMQ4_NODES_DIR/.epmd-$epmd.ours")
    [ -f "$mark" ] || return 0
    rmq4_port_answers "$epmd" || { rm -f "$mark"; return 0; }
    names=$(rmq4_in_root env -i PATH=/usr/bin:/bin epmd -port "$epmd" -names 2>/dev/null \
        | grep -c '^name ' || true)
    if [ "$names" = 0 ]; then
        rmq4_in_root env -i PATH=/usr/bin:/bin epmd -port "$epmd" -kill >/dev/null 2>&1 || true
        rm -f "$mark"
    fi
}

# True while process $1 runs. Not `kill -0`: a killed node's launcher can stay a zombie for a
# second or more (until PID 1 reaps it), and kill -0 succeeds on a zombie.
rmq4_pid_alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}

# The host-side PID of a node's launcher (the rabbitmq-server shell script, parent of beam),
# if it still runs (and is still that script: PIDs get reused).
rmq4_launcher_pid() {
    local pidfile pid
    pidfile=$(rmq4_hostpath "$RMQ4_NODES_DIR/$1/launcher.pid")
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && rmq4_pid_alive "$pid" || return 1
    case "$(ps -o args= -p "$pid" 2>/dev/null)" in
        *rabbitmq-server*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

# Start one node in the background and wait until it accepts AMQP connections.
#   $1 short name  $2 AMQP port  $3 dist port  $4 epmd port  $5 management port (0: off)
#   $6 extra rabbitmq.conf lines (may be empty)
# Idempotent: a node that is already running is left alone.
rmq4_start_node() {
    local name=$1 port=$2 dist=$3 epmd=$4 mgmt=$5 extra=${6:-}
    local hostdir pid
    hostdir=$(rmq4_hostpath "$RMQ4_NODES_DIR/$name")
    if pid=$(rmq4_launcher_pid "$name"); then
        if rmq4_port_answers "$port"; then
            rmq4_log "$name@localhost already running (pid $pid, port $port)"
            return 0
        fi
        rmq4_log "$name@localhost is starting (pid $pid); waiting"
    else
        rmq4_port_answers "$port" && rmq4_die "port $port is taken by something else"
        rmq4_port_answers "$dist" && rmq4_die "dist port $dist is taken by something else"
        mkdir -p "$hostdir"
        {
            echo "# written by lib.sh on every start"
            echo "listeners.tcp.1 = 127.0.0.1:$port"
            echo "loopback_users.guest = true"
            if [ "$mgmt" != 0 ]; then
                echo "management.tcp.port = $mgmt"
                echo "management.tcp.ip = 127.0.0.1"
            fi
            [ -n "$extra" ] && printf '%s\n' "$extra"
        } >"$hostdir/rabbitmq.conf"
        [ -f "$hostdir/advanced.config" ] || echo "[]." >"$hostdir/advanced.config"
        if [ "$mgmt" != 0 ]; then
            echo "[rabbitmq_management]." >"$hostdir/enabled_plugins"
        else
            echo "[]." >"$hostdir/enabled_plugins"
        fi
        rmq4_in_root chown -R rabbitmq:rabbitmq "$RMQ4_NODES_DIR/$name"
        rmq4_ensure_epmd "$epmd"
        local -a envs
        mapfile -t envs < <(rmq4_node_env "$name" "$port" "$dist" "$epmd")
        # setsid: the node gets a session of its own (no controlling terminal, no signals
        # from ours); the PID recorded is the rabbitmq-server script's, which stops beam
        # gracefully on SIGTERM.
        local -a RMQ4_PFX
        rmq4_prefix
        setsid "${RMQ4_PFX[@]}" setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
            env -i "${envs[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server \
            >"$hostdir/console.log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$hostdir/launcher.pid"
        rmq4_log "$name@localhost launched (pid $pid, amqp 127.0.0.1:$port, dist $dist, epmd $epmd)"
    fi
    local t0=$SECONDS
    while ! rmq4_port_answers "$port"; do
        if ! rmq4_pid_alive "$pid"; then
            tail -30 "$hostdir/console.log" >&2
            tail -30 "$hostdir/log/$name@localhost.log" >&2 2>/dev/null || true
            rmq4_die "$name@localhost exited during start"
        fi
        if [ $((SECONDS - t0)) -ge "$RMQ4_START_TIMEOUT" ]; then
            rmq4_die "$name@localhost did not open port $port within ${RMQ4_START_TIMEOUT}s"
        fi
        sleep 0.5
    done
    rmq4_log "$name@localhost answers on 127.0.0.1:$port after $((SECONDS - t0))s"
}

# Stop one node gracefully (rabbitmqctl shutdown, then SIGTERM, then SIGKILL).
#   $1 short name  $2 AMQP port  $3 dist port  $4 epmd port
rmq4_stop_node() {
    local name=$1 port=$2 dist=$3 epmd=$4 pid _ hostdir
    hostdir=$(rmq4_hostpath "$RMQ4_NODES_DIR/$name")
    if ! pid=$(rmq4_launcher_pid "$name"); then
        rm -f "$hostdir/launcher.pid"
        rmq4_log "$name@localhost is not running"
        return 0
    fi
    rmq4_cli "$name" "$port" "$dist" "$epmd" rabbitmqctl -q shutdown --timeout 60 >&2 \
        || rmq4_log "rabbitmqctl shutdown failed; sending SIGTERM to $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do
        rmq4_pid_alive "$pid" || break
        sleep 0.5
    done
    if rmq4_pid_alive "$pid"; then
        rmq4_log "$name@localhost still running after 60s; SIGKILL to its process group"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$hostdir/launcher.pid"
    rmq4_log "$name@localhost stopped"
}

# Kill one node abruptly (SIGKILL to beam and the launcher): a crash, for node-loss tests.
rmq4_kill_node() {
    local name=$1 pid hostdir
    hostdir=$(rmq4_hostpath "$RMQ4_NODES_DIR/$name")
    if ! pid=$(rmq4_launcher_pid "$name"); then
        rmq4_log "$name@localhost is not running"
        return 0
    fi
    # The launcher is a session leader (setsid): its process group holds the rabbitmq-server
    # script and beam.smp. erl_child_setup (a group of its own) and the os_mon port programs
    # under it exit by themselves once beam is gone (checked: nothing is left behind).
    kill -KILL -- "-$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 40); do
        rmq4_pid_alive "$pid" || break
        sleep 0.25
    done
    rm -f "$hostdir/launcher.pid"
    rmq4_log "$name@localhost killed (SIGKILL, process group $pid)"
}
