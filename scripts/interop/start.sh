#!/usr/bin/env bash
# Starts every interop server on free loopback ports and writes the environment the
# tests read to .interop/env (source it to run `cargo test` by hand; stop.sh stops all).
# Stops leftovers of an earlier run first (by their recorded PIDs). Needs install.sh done.
#
# Ports come from SMTPKIT_INTEROP_PORTS (default 42500-42599): the first free ones are
# taken. Allocation and start-up happen under a lock (/tmp/smtpkit-interop.lock), so two
# worktrees starting at once never pick the same ports; a port that turns out busy when
# the server binds makes the start fail loudly, it is never shared.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/interop/common.sh
. "$here/common.sh"
mkdir -p "$interop"
"$here/stop.sh" >/dev/null

"$here/certs.sh"

range="${SMTPKIT_INTEROP_PORTS:-42500-42599}"
lo="${range%-*}"
hi="${range#*-}"
if ! [[ $lo =~ ^[0-9]+$ && $hi =~ ^[0-9]+$ ]] || ((lo < 1024 || hi > 65535 || lo > hi)); then
    echo "interop: SMTPKIT_INTEROP_PORTS must be LOW-HIGH within 1024-65535, got '$range'" >&2
    exit 1
fi

# free_ports N LO HI: the first N ports in LO..HI where nothing accepts a connection on
# 127.0.0.1 and a bind succeeds (SO_REUSEADDR, as the servers bind: a port in TIME_WAIT
# is usable, one bound by anything else is not). One python run scans the range.
free_ports() {
    "$interop/venv/bin/python" - "$@" <<'PY'
import errno, socket, sys
n, lo, hi = map(int, sys.argv[1:])
found = []
for port in range(lo, hi + 1):
    if len(found) == n:
        break
    with socket.socket() as c:
        c.settimeout(1)
        if c.connect_ex(("127.0.0.1", port)) != errno.ECONNREFUSED:
            continue
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    found.append(port)
print(" ".join(map(str, found)))
PY
}

exec 8>/tmp/smtpkit-interop.lock
if ! flock -w 120 8; then
    echo "interop: could not take /tmp/smtpkit-interop.lock within 120 s" >&2
    exit 1
fi

# 8 for Postfix, aiosmtpd and redis, then one per smtp-sink instance.
sinks="$("$here/smtp-sink.sh" count)"
need=$((8 + sinks))
read -r -a ports <<<"$(free_ports "$need" "$lo" "$hi")"
if ((${#ports[@]} < need)); then
    echo "interop: fewer than $need free ports in $range (found: ${ports[*]:-none})" >&2
    exit 1
fi

# Per-run random test passwords: nothing guessable stays valid after the run.
pf_pass="pf-$(openssl rand -hex 12)"
ai_pass="ai-$(openssl rand -hex 12)"

SMTPKIT_POSTFIX_PASSWORD="$pf_pass" "$here/postfix.sh" start "${ports[0]}" "${ports[1]}" "${ports[2]}" "${ports[3]}"
SMTPKIT_AIOSMTPD_PASSWORD="$ai_pass" "$here/aiosmtpd.sh" start "${ports[4]}" "${ports[5]}" "${ports[6]}"
"$here/redis.sh" start "${ports[7]}"
"$here/smtp-sink.sh" start "${ports[@]:8:$sinks}"
flock -u 8

umask 077
cat >"$interop/env" <<ENV
# Written by scripts/interop/start.sh; the servers run until scripts/interop/stop.sh.
export SMTPKIT_INTEROP=1
export SMTPKIT_INTEROP_REQUIRED=1
export SMTPKIT_CA_FILE=$interop/certs/ca.pem
export SMTPKIT_POSTFIX_STARTTLS=127.0.0.1:${ports[0]}
export SMTPKIT_POSTFIX_SMTPS=127.0.0.1:${ports[1]}
export SMTPKIT_POSTFIX_SUBMISSION=127.0.0.1:${ports[2]}
export SMTPKIT_POSTFIX_UNTRUSTED=127.0.0.1:${ports[3]}
export SMTPKIT_POSTFIX_USER=testuser@example.test
export SMTPKIT_POSTFIX_PASSWORD=$pf_pass
export SMTPKIT_POSTFIX_MAILDIR=$(postfix_runtime)/postfix-maildir
# The instance's config directory, for its sendmail(1): sendmail -C DIR (postdrop into its queue).
export SMTPKIT_POSTFIX_CONFIG=$(postfix_runtime)/postfix/etc
export SMTPKIT_POSTFIX_SENDMAIL=$(command -v sendmail || echo /usr/sbin/sendmail)
export SMTPKIT_AIOSMTPD_STARTTLS=127.0.0.1:${ports[4]}
export SMTPKIT_AIOSMTPD_SMTPS=127.0.0.1:${ports[5]}
export SMTPKIT_AIOSMTPD_LMTP=127.0.0.1:${ports[6]}
export SMTPKIT_AIOSMTPD_USER=testuser@example.test
export SMTPKIT_AIOSMTPD_PASSWORD=$ai_pass
export SMTPKIT_AIOSMTPD_MAILDIR=$interop/aiosmtpd-maildir
export SMTPKIT_REDIS_URL=redis://127.0.0.1:${ports[7]}
ENV
cat "$interop/sink.env" >>"$interop/env"

pf_version="$(postconf -d -h mail_version 2>/dev/null || echo '?')"
ai_version="$("$interop/venv/bin/python" -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null || echo '?')"
pf_pid="$(awk '$1 == "postfix" {print $2}' "$interop/pids")"
ai_pid="$(awk '$1 == "aiosmtpd" {print $2}' "$interop/pids")"
echo "interop: postfix $pf_version up (pid $pf_pid) on 127.0.0.1:${ports[0]} (starttls)" \
    "${ports[1]} (implicit tls) ${ports[2]} (submission) ${ports[3]} (starttls, untrusted cert)"
echo "interop: aiosmtpd $ai_version up (pid $ai_pid) on 127.0.0.1:${ports[4]} (starttls)" \
    "${ports[5]} (implicit tls) ${ports[6]} (lmtp)"
echo "interop: $sinks smtp-sink instances up on 127.0.0.1:${ports[8]}..${ports[$((7 + sinks))]} (fault flags, see smtp-sink.sh)"
echo "interop: environment in $interop/env"
