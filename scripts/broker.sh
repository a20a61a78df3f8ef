# Sourced by the project's scripts: make sure a RabbitMQ answers on 127.0.0.1:5672.
#
# Order: one already answering; a locally installed rabbitmq-server, started detached;
# Debian's rabbitmq-server, installed when running as root; otherwise nothing, and the test
# suite either uses testcontainers (when a Docker engine answers) or skips the broker tier
# with a clear message -- except under CI, where a missing broker fails the run.

broker_answers() {
    (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
}

wait_for_broker() {
    for _ in $(seq 1 90); do
        broker_answers && return 0
        sleep 1
    done
    return 1
}

ensure_broker() {
    if [ -n "${HARE_TEST_BROKER_URL:-}" ]; then
        echo "broker: using HARE_TEST_BROKER_URL" >&2
        return 0
    fi
    if broker_answers; then
        echo "broker: RabbitMQ answers on 127.0.0.1:5672" >&2
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        echo "broker: installing Debian's rabbitmq-server" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq rabbitmq-server >&2 || true
    fi
    if command -v rabbitmq-server >/dev/null 2>&1; then
        echo "broker: starting rabbitmq-server -detached" >&2
        rabbitmq-server -detached >&2 || true
        if wait_for_broker; then
            return 0
        fi
        echo "broker: rabbitmq-server did not answer within 90 s" >&2
    fi
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo "broker: none local; the tests will start one with testcontainers" >&2
        export HARE_TESTCONTAINERS=1
        return 0
    fi
    echo "broker: NO RabbitMQ available -- the broker tier will be skipped" \
         "(and fail, under CI)" >&2
    return 0
}

# Make sure a Redis answers on 127.0.0.1:6379, for the redis:// result backend tests.
#
# Order: HARE_TEST_REDIS_URL (used as given); one already answering; a locally installed
# redis-server, started daemonized on 127.0.0.1 without persistence; Debian's redis-server,
# installed when running as root; otherwise nothing, and the Redis tests skip with a clear
# message -- except under CI, where a missing Redis fails them.

redis_answers() {
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null
}

wait_for_redis() {
    for _ in $(seq 1 30); do
        redis_answers && return 0
        sleep 1
    done
    return 1
}

ensure_redis() {
    if [ -n "${HARE_TEST_REDIS_URL:-}" ]; then
        echo "redis: using HARE_TEST_REDIS_URL" >&2
        return 0
    fi
    if redis_answers; then
        echo "redis: Redis answers on 127.0.0.1:6379" >&2
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        echo "redis: installing Debian's redis-server" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2 || true
    fi
    if command -v redis-server >/dev/null 2>&1; then
        echo "redis: starting redis-server --daemonize yes" >&2
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
            --save '' --appendonly no >&2 || true
        if wait_for_redis; then
            return 0
        fi
        echo "redis: redis-server did not answer within 30 s" >&2
    fi
    echo "redis: NO Redis available -- the Redis result tests will be skipped" \
         "(and fail, under CI)" >&2
    return 0
}

# RabbitMQ 4.0 beside the system broker, for the 4.0 tier: Debian 13's rabbitmq-server in a
# debootstrapped chroot (scripts/rabbitmq/node.sh; made once, about a minute, then 4-5 s a
# start), one node on 127.0.0.1:5673. Needs root and deb.debian.org (or RMQ4_MIRROR).
# On success it exports HARE_RMQ4_URL and puts rabbitmqctl shims aimed at the node into
# HARE_RMQ4_SHIMS, so the tests that shell out to rabbitmqctl reach that node, not 3.10.
ensure_rabbitmq4() {
    if [ "$(id -u)" != 0 ]; then
        echo "rabbitmq4: not root: cannot start RabbitMQ 4.0 -- the 4.0 tier will be" \
             "skipped (and fail, under CI)" >&2
        return 1
    fi
    local url
    url=$(nice -n 5 scripts/rabbitmq/node.sh start | tail -1) || return 1
    export HARE_RMQ4_URL=$url
    HARE_RMQ4_SHIMS=$(mktemp -d)
    export HARE_RMQ4_SHIMS
    scripts/rabbitmq/node.sh shims "$HARE_RMQ4_SHIMS" >/dev/null
    echo "rabbitmq4: RabbitMQ 4.0 answers at $url" >&2
}

# Debian's Chromium at /usr/bin/chromium, for the dashboard's browser tests (Playwright drives
# it; no browser is downloaded). Installed when missing and running as root; otherwise the
# browser tests skip with a clear message -- except under CI, where a missing browser fails
# the run here.
ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then
        echo "chromium: /usr/bin/chromium" >&2
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "chromium: installing Debian's chromium" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq chromium >&2 || true
    fi
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    echo "chromium: NO /usr/bin/chromium -- the dashboard's browser tests will be skipped" \
         "(and fail, under CI)" >&2
    [ -z "${CI:-}" ]
}
