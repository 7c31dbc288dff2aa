#!/usr/bin/env bash
# Installs what smtpkit's interop tests need: Postfix with Cyrus SASL (Debian packages)
# and aiosmtpd in a private venv under .interop/venv. Idempotent: every step is skipped
# when its result is already there, so a second run costs well under a second.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
interop="$root/.interop"
mkdir -p "$interop"

# The Debian packages (postfix also ships smtp-sink, for tests/suite/sink.rs).
# `dpkg-query` tells what is installed; only a missing package
# triggers `apt-get update` + install, because the update alone costs several seconds.
packages=(postfix sasl2-bin libsasl2-modules openssl redis-server)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "interop: install.sh needs root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "interop: installing ${missing[*]} (apt)"
    # Without the preseed, postfix's postinst asks which kind of mail server to set up
    # (and would configure /etc/postfix as a live one). "No configuration" leaves
    # /etc/postfix empty: our instance runs from its own config directory.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # The lock timeout lets two worktrees install at the same time without failing.
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300 --no-install-recommends)
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" >"$interop/apt.log" 2>&1 || {
        tail -n 30 "$interop/apt.log" >&2
        exit 1
    }
fi

# aiosmtpd, pinned to 1.4.x (the series INTEROP.md's facts were gathered on) in a venv
# so the system Python stays untouched. The marker file is written last, so an
# interrupted pip run is retried rather than taken for a finished one.
venv="$interop/venv"
marker="$venv/.smtpkit-aiosmtpd-1.4"
if [[ ! -f $marker ]]; then
    echo "interop: creating python venv with aiosmtpd 1.4.x"
    python=""
    for candidate in python3 /usr/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            python="$candidate"
            break
        fi
    done
    if [[ -z $python ]]; then
        echo "interop: no python3 found" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" || {
        # Debian's python3 lacks ensurepip unless python3-venv is installed.
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -q -y -o DPkg::Lock::Timeout=300 python3-venv >"$interop/apt-venv.log" 2>&1
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q --disable-pip-version-check 'aiosmtpd>=1.4,<1.5'
    touch "$marker"
fi

# dkimpy (with PyNaCl for ed25519-sha256): the independent DKIM verifier of
# tests/suite/dkim.rs. Its own marker, so venvs made before it was added get it too.
marker="$venv/.smtpkit-dkimpy-1.1"
if [[ ! -f $marker ]]; then
    echo "interop: installing dkimpy 1.1.x into the venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'dkimpy>=1.1,<1.2' 'pynacl>=1.5,<2'
    touch "$marker"
fi

# icalendar: the independent iCalendar parser that tests/suite/mime_delivery.rs reads
# delivered calendar invitations with. Its own marker, like dkimpy's.
marker="$venv/.smtpkit-icalendar-6"
if [[ ! -f $marker ]]; then
    echo "interop: installing icalendar 6.x into the venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'icalendar>=6,<7'
    touch "$marker"
fi
