#!/usr/bin/env bash
# Starts tinyproxy (Debian) as an HTTP CONNECT proxy on a loopback port, with Basic
# proxy credentials, allowing CONNECT only to the given ports (any other port gets
# tinyproxy's 403: the "tunnel refused" case of the tests).
#   SMTPKIT_TINYPROXY_PASSWORD=... tinyproxy.sh start PORT USER CONNECT_PORT...
#   tinyproxy.sh stop
# start: writes .interop/tinyproxy/tinyproxy.conf, waits (bounded) for the port and
# appends "tinyproxy PID" to .interop/pids.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interop="$root/.interop"
base="$interop/tinyproxy"

die() {
    echo "interop: tinyproxy: $*" >&2
    [[ -f $base/tinyproxy.log ]] && tail -n 20 "$base/tinyproxy.log" >&2
    exit 1
}

start() {
    (($# >= 3)) || die "usage: tinyproxy.sh start PORT USER CONNECT_PORT..."
    [[ -n ${SMTPKIT_TINYPROXY_PASSWORD:-} ]] || die "SMTPKIT_TINYPROXY_PASSWORD is not set"
    command -v tinyproxy >/dev/null || die "tinyproxy not installed (run scripts/interop/install.sh)"
    local port=$1 user=$2
    shift 2
    rm -rf "$base"
    mkdir -p "$base"
    chown nobody "$base" 2>/dev/null || true
    {
        echo "User nobody"
        echo "Group nogroup"
        echo "Port $port"
        echo "Listen 127.0.0.1"
        echo "Allow 127.0.0.1"
        echo "Timeout 60"
        echo "LogFile \"$base/tinyproxy.log\""
        echo "LogLevel Info"
        echo "MaxClients 50"
        echo "BasicAuth $user $SMTPKIT_TINYPROXY_PASSWORD"
        local p
        for p in "$@"; do echo "ConnectPort $p"; done
    } >"$base/tinyproxy.conf"
    chmod 0644 "$base/tinyproxy.conf"
    setsid tinyproxy -d -c "$base/tinyproxy.conf" </dev/null >"$base/stdout.log" 2>&1 &
    local pid=$!
    echo "tinyproxy $pid" >>"$interop/pids"
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "tinyproxy (pid $pid) exited during start-up"
        sleep 0.05
    done
    die "tinyproxy (pid $pid) not listening on $port within 5 s"
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    exec "$here/stop.sh" tinyproxy
    ;;
*)
    echo "usage: tinyproxy.sh start PORT USER CONNECT_PORT... | stop" >&2
    exit 2
    ;;
esac
