#!/usr/bin/env bash
# The project's test command: installs and starts the real SMTP servers of the interop
# tests (Postfix, aiosmtpd) on loopback, proves them with a Python smtplib smoke test,
# then runs the whole cargo test suite (unit, integration, doc tests) against them.
#   scripts/test.sh [ARGS...]     ARGS go to `cargo test --all-features`
# Every server started here is stopped by its PID when this script exits, even on
# failure or Ctrl-C. Exits with cargo's status. Needs root for the one-time apt install
# and for Postfix (Debian 12; no systemd or docker needed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
interop="$root/.interop"

t0=$SECONDS
scripts/interop/install.sh
t_install=$((SECONDS - t0))

# From here on servers may be running: whatever happens, stop them. INT/TERM are turned
# into a normal exit so the EXIT trap runs for them too.
trap 'scripts/interop/stop.sh' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
scripts/interop/start.sh
t_start=$((SECONDS - t0))
echo "interop: install ${t_install}s, certificates + start ${t_start}s"

# The servers' addresses and credentials (see tests/suite/support/interop.rs).
set -a
# shellcheck source=/dev/null
. "$interop/env"
set +a
# The venv's python (with dkimpy) for the DKIM tests' independent verifier.
export SMTPKIT_PYTHON="$interop/venv/bin/python"

"$interop/venv/bin/python" scripts/interop/smoke.py

status=0
cargo test --all-features "$@" || status=$?

# The examples whose contracts users and acceptance checks rely on, end to end: the embedded
# server, then the real Postfix over STARTTLS + AUTH (a full run only, not a filtered one).
if [ "$status" -eq 0 ] && [ $# -eq 0 ]; then
  for ex in send compose fault_injection; do
    if cargo run -q --all-features --example "$ex" > "$interop/example-$ex.log" 2>&1; then
      echo "example $ex: ok (embedded server)"
    else
      echo "example $ex: FAILED"; cat "$interop/example-$ex.log"; status=1
    fi
  done
  enc() { python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1],safe=""))' "$1"; }
  url="smtp://$(enc "$SMTPKIT_POSTFIX_USER"):$(enc "$SMTPKIT_POSTFIX_PASSWORD")@localhost:${SMTPKIT_POSTFIX_STARTTLS##*:}"
  if SMTP_URL="$url" SMTP_CA_FILE="$SMTPKIT_CA_FILE" MAIL_FROM=sender@example.test \
     MAIL_TO=ok@example.test cargo run -q --all-features --example send > "$interop/example-send-postfix.log" 2>&1 \
     && grep -q '^accepted ok@example.test 250' "$interop/example-send-postfix.log"; then
    echo "example send: ok (postfix, STARTTLS + AUTH)"
  else
    echo "example send against postfix: FAILED"; cat "$interop/example-send-postfix.log"; status=1
  fi
fi
exit "$status"
