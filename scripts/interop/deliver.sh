#!/bin/sh
# pipe(8) delivery agent of the interop Postfix: writes one delivered message into the
# test maildir in the readback format shared with the aiosmtpd handler:
#   MAILDIR/new/ID.eml        the message bytes exactly as Postfix hands them over
#   MAILDIR/new/ID.envelope   line 1: envelope sender (empty for <>), then one recipient a line
# Both are written under tmp/ and renamed, the .envelope last: a reader that sees the
# .envelope also sees the complete .eml. IDs start with a nanosecond timestamp, so name
# order is delivery order.
# usage: deliver.sh MAILDIR SENDER RECIPIENT... (message on stdin)
set -eu
# Any failure is a temporary one (EX_TEMPFAIL): Postfix keeps the message queued and
# logs the problem instead of bouncing test mail.
trap 'exit 75' HUP INT TERM
maildir=$1
sender=$2
shift 2
id="$(date +%s%N).postfix.$$"
umask 022
cat >"$maildir/tmp/$id.eml" || exit 75
{
    printf '%s\n' "$sender"
    for r in "$@"; do
        printf '%s\n' "$r"
    done
} >"$maildir/tmp/$id.envelope" || exit 75
mv "$maildir/tmp/$id.eml" "$maildir/new/$id.eml" || exit 75
mv "$maildir/tmp/$id.envelope" "$maildir/new/$id.envelope" || exit 75
exit 0
