# shellcheck shell=bash
# Shared paths of the interop scripts; sourced, not run. Needs $root (the repo root).
interop="${root:?}/.interop"

# postfix_runtime: prints the directory that holds the Postfix instance and its
# maildir. pipe(8) runs deliver.sh as nobody and smtpd reads the sasldb as the postfix
# user, so both must be able to reach it. A checkout under a private directory (/root
# is mode 700) is out of their reach: then the instance lives under /tmp, in a directory
# named after the checkout so two checkouts never share one.
postfix_runtime() {
    mkdir -p "$interop"
    if runuser -u nobody -- test -x "$interop" 2>/dev/null; then
        printf '%s\n' "$interop"
    else
        local dir
        dir="/tmp/smtpkit-interop-$(printf '%s' "$root" | sha256sum | cut -c1-16)"
        mkdir -p "$dir"
        chmod 0755 "$dir"
        printf '%s\n' "$dir"
    fi
}
