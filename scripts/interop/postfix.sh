#!/usr/bin/env bash
# Runs a private Postfix instance for the interop tests from .interop/postfix/ (its own
# main.cf, master.cf, queue, sasldb, log; under /tmp when the checkout is private, see
# common.sh); /etc/postfix is never touched.
#   SMTPKIT_POSTFIX_PASSWORD=... postfix.sh start PORT_STARTTLS PORT_SMTPS PORT_SUBMISSION PORT_UNTRUSTED
#   postfix.sh stop      (same as stop.sh postfix)
# start: writes the config from the templates beside this script, empties the maildir
# (.interop/postfix-maildir), starts master, waits (bounded) until every listener
# answers with a 220 banner and appends "postfix MASTER_PID DIR" to .interop/pids.
# Needs root (master binds as root and drops to the postfix user). Certificates must
# exist already (certs.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/interop/common.sh
. "$here/common.sh"
runtime="$(postfix_runtime)"
base="$runtime/postfix"
# Config apart from the queue: `postfix check` wants everything under the config
# directory owned by root, the queue belongs to the postfix user.
dir="$base/etc"
queue="$base/queue"
log="$base/log"
maildir="$runtime/postfix-maildir"
certs="$interop/certs"
user=testuser
realm=example.test

die() {
    echo "interop: postfix: $*" >&2
    [[ -f $log/maillog ]] && tail -n 20 "$log/maillog" >&2
    exit 1
}

# banner HOST PORT: true once a 220 greeting arrives (bash /dev/tcp, 1 s per try).
banner() {
    local line
    exec 9<>"/dev/tcp/$1/$2" 2>/dev/null || return 1
    if ! IFS= read -r -t 1 line <&9; then
        exec 9>&-
        return 1
    fi
    printf 'QUIT\r\n' >&9 2>/dev/null || true
    exec 9>&-
    [[ $line == 220* ]]
}

start() {
    [[ $# -eq 4 ]] || die "usage: postfix.sh start STARTTLS SMTPS SUBMISSION UNTRUSTED"
    [[ -n ${SMTPKIT_POSTFIX_PASSWORD:-} ]] || die "SMTPKIT_POSTFIX_PASSWORD is not set"
    local p_starttls=$1 p_smtps=$2 p_sub=$3 p_untrusted=$4
    command -v postfix >/dev/null || die "postfix is not installed (run scripts/interop/install.sh)"
    [[ -s $certs/server.pem && -s $certs/untrusted.pem ]] || die "no certificates (run scripts/interop/certs.sh)"
    if [[ -f $queue/pid/master.pid ]] && postfix -c "$dir" status >/dev/null 2>&1; then
        # Left over from a run that was killed before its stop step and lost its pids
        # line. It runs from this worktree's own config directory, so stopping it
        # touches nothing else.
        echo "interop: postfix: stopping a stale instance from $dir" >&2
        postfix -c "$dir" stop >/dev/null 2>&1 || true
        local i
        for ((i = 0; i < 100; i++)); do
            postfix -c "$dir" status >/dev/null 2>&1 || break
            sleep 0.1
        done
        ! postfix -c "$dir" status >/dev/null 2>&1 || die "stale instance in $dir does not stop"
    fi

    # A fresh instance every time: old queue files or mail must not leak into a run.
    rm -rf "$base" "$maildir"
    mkdir -p "$log" "$dir/sasl" "$base/data" "$queue" "$maildir/tmp" "$maildir/new" "$maildir/cur"
    local subst=(-e "s|@DIR@|$dir|g" -e "s|@BASE@|$base|g" -e "s|@CERTS@|$certs|g" -e "s|@MAILDIR@|$maildir|g"
        -e "s|@PORT_STARTTLS@|$p_starttls|g" -e "s|@PORT_SMTPS@|$p_smtps|g"
        -e "s|@PORT_SUBMISSION@|$p_sub|g" -e "s|@PORT_UNTRUSTED@|$p_untrusted|g")
    sed "${subst[@]}" "$here/postfix-main.cf.in" >"$dir/main.cf"
    sed "${subst[@]}" "$here/postfix-master.cf.in" >"$dir/master.cf"
    sed "${subst[@]}" "$here/postfix-sasl-smtpd.conf.in" >"$dir/sasl/smtpd.conf"
    cp "$here/postfix-header_checks" "$dir/header_checks"
    # pipe(8) runs the agent as nobody: it gets its own copy, and nobody owns the maildir.
    install -m 0755 "$here/deliver.sh" "$dir/deliver.sh"
    chown -R nobody:nogroup "$maildir"
    chown postfix "$base/data"
    : >"$log/maillog"

    # The password never appears on a command line (-p reads it from stdin).
    printf '%s' "$SMTPKIT_POSTFIX_PASSWORD" | saslpasswd2 -c -p -f "$dir/sasldb2" -u "$realm" "$user"
    chown root:postfix "$dir/sasldb2"
    chmod 0640 "$dir/sasldb2"

    # `postfix check` reports config errors only on a tty or in the log; script(1) gives
    # it a tty so a broken template fails here with a readable message.
    local check
    check="$(script -qec "postfix -c '$dir' check" /dev/null 2>&1)" || die "postfix check failed: $check"
    if [[ -n $check ]]; then
        echo "interop: postfix check: $check" >&2
    fi
    postfix -c "$dir" start >"$log/start.out" 2>&1 || die "postfix start failed: $(cat "$log/start.out")"

    local pid="" i
    for ((i = 0; i < 100; i++)); do
        if [[ -s $queue/pid/master.pid ]]; then
            pid="$(tr -d ' \n' <"$queue/pid/master.pid")"
            [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && break
        fi
        sleep 0.1
    done
    [[ -n $pid ]] || die "master did not write its pid file within 10 s"
    echo "postfix $pid $dir" >>"$interop/pids"

    # Master binds at start-up, but the listeners answer only once smtpd has been
    # spawned; wait for a banner on each (20 s cap for a loaded machine).
    local port ok
    for port in "$p_starttls" "$p_smtps" "$p_sub" "$p_untrusted"; do
        ok=0
        for ((i = 0; i < 100; i++)); do
            if [[ $port == "$p_smtps" ]]; then
                # Implicit TLS: the banner comes only after a handshake.
                if printf 'QUIT\r\n' | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$port" 2>/dev/null | grep -q '^220'; then
                    ok=1
                    break
                fi
            elif banner 127.0.0.1 "$port"; then
                ok=1
                break
            fi
            kill -0 "$pid" 2>/dev/null || die "master (pid $pid) died during start-up"
            sleep 0.2
        done
        ((ok)) || die "no 220 banner on 127.0.0.1:$port within 20 s"
    done
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    # The PID-level stop (graceful `postfix stop`, then a deadline) is stop.sh's.
    exec "$here/stop.sh" postfix
    ;;
*)
    echo "usage: postfix.sh start STARTTLS SMTPS SUBMISSION UNTRUSTED | stop" >&2
    exit 2
    ;;
esac
