#!/usr/bin/env bash
# Stops the interop servers recorded in .interop/pids ("NAME PID [CONFIG_DIR]" lines),
# by PID only: nothing else on the machine is touched.
#   stop.sh [NAME...]    stops the named servers (postfix, aiosmtpd, redis, smtp-sink), or all of them
# A PID whose process no longer runs the expected program (reused PID) is skipped. Each
# server gets a graceful stop, then SIGKILL after a 10 s deadline. Always exits 0 unless
# a server survived SIGKILL, so it is safe in an EXIT trap.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pids="$root/.interop/pids"
if [[ ! -f $pids ]]; then
    rm -f "$root/.interop/env"
    exit 0
fi

want=("$@")
selected() {
    ((${#want[@]} == 0)) && return 0
    local w
    for w in "${want[@]}"; do
        [[ $w == "$1" ]] && return 0
    done
    return 1
}

# is_ours PID NAME: the process is alive and runs the program we started under that PID.
is_ours() {
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
    case $2 in
    postfix) [[ $cmd == *postfix/sbin/master* || $cmd == *master\ -w* ]] ;;
    aiosmtpd) [[ $cmd == *aiosmtpd_server.py* ]] ;;
    redis) [[ $cmd == *redis-server* ]] ;;
    smtp-sink) [[ $cmd == smtp-sink\ * ]] ;;
    *) return 1 ;;
    esac
}

wait_gone() { # PID TENTHS
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

status=0
keep=()
stopping=()
# Phase 1: ask every selected server to stop, so their shutdowns overlap.
while read -r name pid conf; do
    [[ -n ${name:-} ]] || continue
    if ! selected "$name"; then
        keep+=("$name $pid${conf:+ $conf}")
        continue
    fi
    if ! is_ours "$pid" "$name"; then
        continue
    fi
    if [[ $name == postfix && -n ${conf:-} ]]; then
        # Master ends its children itself on `postfix stop` (SIGTERM to master).
        postfix -c "$conf" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
    else
        kill -TERM "$pid" 2>/dev/null
    fi
    stopping+=("$name $pid")
done <"$pids"

# Phase 2: wait for each (10 s deadline each), then SIGKILL.
for entry in "${stopping[@]}"; do
    read -r name pid <<<"$entry"
    if ! wait_gone "$pid" 100; then
        echo "interop: $name (pid $pid) ignored the stop request; killing it" >&2
        kill -KILL "$pid" 2>/dev/null
        wait_gone "$pid" 50 || status=1
    fi
    echo "interop: stopped $name (pid $pid)"
done

if ((${#keep[@]})); then
    printf '%s\n' "${keep[@]}" >"$pids"
else
    # With every server gone, the env file would point at ports that another worktree's
    # servers may take next: remove it so nobody runs tests against those by mistake.
    rm -f "$pids" "$root/.interop/env"
fi
exit $status
