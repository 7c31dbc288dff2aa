#!/usr/bin/env bash
# Starts/stops the aiosmtpd interop server (scripts/interop/aiosmtpd_server.py) in the
# background, from .interop/venv.
#   SMTPKIT_AIOSMTPD_PASSWORD=... aiosmtpd.sh start PORT_STARTTLS PORT_SMTPS PORT_LMTP
#   aiosmtpd.sh stop
# start: empties the maildir (.interop/aiosmtpd-maildir), waits (bounded) for READY and
# appends "aiosmtpd PID" to .interop/pids. The log is .interop/aiosmtpd/server.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interop="$root/.interop"
base="$interop/aiosmtpd"
maildir="$interop/aiosmtpd-maildir"
certs="$interop/certs"
python="$interop/venv/bin/python"
user=testuser@example.test

die() {
    echo "interop: aiosmtpd: $*" >&2
    [[ -f $base/server.log ]] && tail -n 20 "$base/server.log" >&2
    exit 1
}

start() {
    [[ $# -eq 3 ]] || die "usage: aiosmtpd.sh start STARTTLS SMTPS LMTP"
    [[ -n ${SMTPKIT_AIOSMTPD_PASSWORD:-} ]] || die "SMTPKIT_AIOSMTPD_PASSWORD is not set"
    [[ -x $python ]] || die "no venv at $interop/venv (run scripts/interop/install.sh)"
    [[ -s $certs/server.pem ]] || die "no certificates (run scripts/interop/certs.sh)"
    # A server left over from a killed run that lost its pids line: its own pid file
    # names it; it is stopped only if that PID still runs this worktree's script.
    if [[ -s $interop/aiosmtpd.pid ]]; then
        local old
        old="$(cat "$interop/aiosmtpd.pid")"
        if [[ $({ tr '\0' ' ' <"/proc/$old/cmdline"; } 2>/dev/null) == *"$here/aiosmtpd_server.py"* ]]; then
            echo "interop: aiosmtpd: stopping a stale server (pid $old)" >&2
            kill -TERM "$old" 2>/dev/null || true
            local j
            for ((j = 0; j < 50; j++)); do
                kill -0 "$old" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$old" 2>/dev/null || true
        fi
    fi
    rm -rf "$base" "$maildir"
    mkdir -p "$base" "$maildir/tmp" "$maildir/new" "$maildir/cur"
    # Detached from the caller's stdio (stdin from /dev/null, output to the log) so a CI
    # runner waiting for EOF on its pipes is never held open by this server.
    setsid "$python" -u "$here/aiosmtpd_server.py" \
        --starttls-port "$1" --smtps-port "$2" --lmtp-port "$3" \
        --cert "$certs/server.pem" --key "$certs/server.key" \
        --maildir "$maildir" --user "$user" \
        </dev/null >"$base/server.log" 2>&1 &
    local pid=$!
    echo "aiosmtpd $pid" >>"$interop/pids"
    echo "$pid" >"$interop/aiosmtpd.pid"
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q '^READY' "$base/server.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "server (pid $pid) exited during start-up"
        sleep 0.05
    done
    die "server (pid $pid) not ready within 10 s"
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    # The PID-level stop is stop.sh's (it owns .interop/pids); this is for symmetry.
    exec "$here/stop.sh" aiosmtpd
    ;;
*)
    echo "usage: aiosmtpd.sh start STARTTLS SMTPS LMTP | stop" >&2
    exit 2
    ;;
esac
