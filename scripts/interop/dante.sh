#!/usr/bin/env bash
# Starts the Dante SOCKS5 proxy (danted, Debian dante-server) on a loopback port, with
# RFC 1929 username/password authentication against a throwaway system account.
#   SMTPKIT_DANTE_PASSWORD=... dante.sh start PORT
#   dante.sh stop
# start: creates the account (named after this checkout, so two worktrees never share
# one; an existing one gets the new password), writes .interop/dante/danted.conf, waits
# (bounded) for the port and appends "dante PID ACCOUNT" to .interop/pids. stop.sh stops
# the process by that PID and then removes the account.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interop="$root/.interop"
base="$interop/dante"

die() {
    echo "interop: dante: $*" >&2
    [[ -f $base/danted.log ]] && tail -n 20 "$base/danted.log" >&2
    exit 1
}

# account: the throwaway user's name, stable per checkout (at most 32 characters).
account() {
    printf 'smtpkit-px-%s\n' "$(printf '%s' "$root" | sha256sum | cut -c1-10)"
}

start() {
    [[ $# -eq 1 ]] || die "usage: dante.sh start PORT"
    [[ -n ${SMTPKIT_DANTE_PASSWORD:-} ]] || die "SMTPKIT_DANTE_PASSWORD is not set"
    command -v danted >/dev/null || die "danted not installed (run scripts/interop/install.sh)"
    local user port=$1
    user="$(account)"
    if ! id "$user" >/dev/null 2>&1; then
        useradd --no-create-home --no-user-group --shell /usr/sbin/nologin "$user" || die "cannot create account $user"
    fi
    printf '%s:%s\n' "$user" "$SMTPKIT_DANTE_PASSWORD" | chpasswd || die "cannot set the password of $user"
    rm -rf "$base"
    mkdir -p "$base"
    cat >"$base/danted.conf" <<CONF
logoutput: $base/danted.log
internal: 127.0.0.1 port = $port
external: 127.0.0.1
clientmethod: none
# RFC 1929 only: a client without credentials is refused at method negotiation.
socksmethod: username
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }
CONF
    setsid danted -f "$base/danted.conf" -N 1 </dev/null >"$base/stdout.log" 2>&1 &
    local pid=$!
    echo "dante $pid $user" >>"$interop/pids"
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "danted (pid $pid) exited during start-up"
        sleep 0.05
    done
    die "danted (pid $pid) not listening on $port within 5 s"
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    exec "$here/stop.sh" dante
    ;;
account)
    account
    ;;
*)
    echo "usage: dante.sh start PORT | stop" >&2
    exit 2
    ;;
esac
