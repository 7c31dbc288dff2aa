#!/usr/bin/env bash
# Starts/stops a throwaway redis-server (Debian package redis-server) for the shared
# rate-limiter tests, on 127.0.0.1 only, with no persistence.
#   redis.sh start PORT
#   redis.sh stop
# start: waits (bounded) for PONG and appends "redis PID" to .interop/pids; the log is
# .interop/redis/server.log. stop.sh stops it by that PID.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interop="$root/.interop"
base="$interop/redis"

die() {
    echo "interop: redis: $*" >&2
    [[ -f $base/server.log ]] && tail -n 20 "$base/server.log" >&2
    exit 1
}

start() {
    [[ $# -eq 1 ]] || die "usage: redis.sh start PORT"
    command -v redis-server >/dev/null || die "redis-server not found (run scripts/interop/install.sh)"
    mkdir -p "$base"
    : >"$base/server.log"
    # Loopback only, no RDB/AOF files, no protected-mode surprises on 127.0.0.1.
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$base" \
        --daemonize no --logfile "$base/server.log" </dev/null >/dev/null 2>&1 &
    local pid=$! i
    for ((i = 0; i < 100; i++)); do
        if [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; then
            echo "redis $pid" >>"$interop/pids"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "redis-server exited at start"
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    die "no PONG on port $1 within 10 s"
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop) exec "$here/stop.sh" redis ;;
*) die "usage: redis.sh start PORT | stop" ;;
esac
