#!/usr/bin/env bash
# Runs Postfix's smtp-sink(1) fault-injecting test servers for tests/suite/sink.rs: one
# instance per flag set, each on its own loopback port, all as `nobody`.
#   smtp-sink.sh start PORT...   one port per instance, in the order of INSTANCES below
#   smtp-sink.sh stop            (same as stop.sh smtp-sink)
#   smtp-sink.sh count           prints how many ports `start` needs
# start: empties the dump directory, starts every instance, waits (bounded) for a 220
# banner on each, appends "smtp-sink PID NAME" per instance to .interop/pids and writes
# the SMTPKIT_SINK_* variables to .interop/sink.env (start.sh adds them to .interop/env).
# smtp-sink ships in Debian's postfix package (install.sh installs it).
#
# Flags, from `man smtp-sink` (Postfix 3.7; the man page, not folklore, is the reference):
#   -f CMD  reject CMD with a hard 5xx (implies -p: no PIPELINING)
#   -r CMD  reject CMD with a soft 4xx (implies -p)
#   -q CMD  disconnect without replying after CMD
#   -Q CMD  send 421 and disconnect after CMD
#   -w SEC  wait SEC before answering DATA;  -W CMD:SEC  wait SEC before answering CMD
#   -p      do not announce PIPELINING
#   -d TPL  dump each transaction to a file (see tests/suite/support/interop.rs)
# CMD "." is the end of data.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/interop/common.sh
. "$here/common.sh"

# NAME FLAGS...: the env variable is SMTPKIT_SINK_<NAME upper-cased, '-' as '_'>.
INSTANCES=(
    "dump"
    "hard-mail -f mail" "hard-rcpt -f rcpt" "hard-data -f data" "hard-dot -f ."
    "soft-mail -r mail" "soft-rcpt -r rcpt" "soft-data -r data" "soft-dot -r ."
    "drop-ehlo -q ehlo" "drop-mail -q mail" "drop-rcpt -q rcpt" "drop-data -q data" "drop-dot -q ."
    "421-mail -Q mail" "421-rcpt -Q rcpt" "421-data -Q data" "421-dot -Q ."
    # -p: without PIPELINING, DATA goes alone, so its reply is the one delayed; with it,
    # smtp-sink holds the MAIL and RCPT replies of the same flight back as well.
    "delay-data -p -w 1" "delay-dot -W .:1"
)

die() {
    echo "interop: smtp-sink: $*" >&2
    exit 1
}

# banner PORT: true once a 220 greeting arrives on 127.0.0.1:PORT (1 s per try).
banner() {
    local line
    exec 9<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    if ! IFS= read -r -t 1 line <&9; then
        exec 9>&-
        return 1
    fi
    printf 'QUIT\r\n' >&9 2>/dev/null || true
    exec 9>&-
    [[ $line == 220* ]]
}

env_name() {
    local upper="${1^^}"
    printf 'SMTPKIT_SINK_%s' "${upper//-/_}"
}

start() {
    (($# == ${#INSTANCES[@]})) || die "start needs ${#INSTANCES[@]} ports, got $#"
    command -v smtp-sink >/dev/null || die "smtp-sink is not installed (run scripts/interop/install.sh)"
    local runtime dumps logs
    # nobody writes the dumps: the directory must be reachable for it (see common.sh).
    runtime="$(postfix_runtime)"
    dumps="$runtime/sink-dumps"
    logs="$interop/sink-logs"
    rm -rf "$dumps" "$logs"
    mkdir -p "$dumps" "$logs"
    chown nobody "$dumps"
    local env_file="$interop/sink.env"
    : >"$env_file"
    local entry name flags port pid i ok
    local -a started=()
    for i in "${!INSTANCES[@]}"; do
        read -r name flags <<<"${INSTANCES[$i]}"
        port="${*:$((i + 1)):1}"
        [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port' for $name"
        local -a args=(-u nobody)
        # shellcheck disable=SC2206 # the flags are words by design
        [[ -n ${flags:-} ]] && args+=($flags)
        [[ $name == dump ]] && args+=(-d "$dumps/msg.")
        smtp-sink "${args[@]}" "127.0.0.1:$port" 64 >"$logs/$name.log" 2>&1 &
        pid=$!
        echo "smtp-sink $pid $name" >>"$interop/pids"
        started+=("$name $pid $port")
        echo "export $(env_name "$name")=127.0.0.1:$port" >>"$env_file"
    done
    echo "export SMTPKIT_SINK_DUMP_DIR=$dumps" >>"$env_file"
    for entry in "${started[@]}"; do
        read -r name pid port <<<"$entry"
        ok=0
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited: $(cat "$logs/$name.log")"
            if banner "$port"; then
                ok=1
                break
            fi
            sleep 0.1
        done
        ((ok)) || die "no 220 banner from $name on 127.0.0.1:$port within 5 s"
    done
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    exec "$here/stop.sh" smtp-sink
    ;;
count)
    echo "${#INSTANCES[@]}"
    ;;
*)
    echo "usage: smtp-sink.sh start PORT... | stop | count" >&2
    exit 2
    ;;
esac
