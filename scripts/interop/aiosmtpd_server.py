"""aiosmtpd-based interop server for smtpkit's tests (run with .interop/venv's python).

One process serves three loopback listeners with one handler:
  * SMTP with STARTTLS; AUTH PLAIN/LOGIN only after STARTTLS (auth_require_tls)
  * SMTP over implicit TLS; AUTH offered at once (auth_require_tls cannot see implicit
    TLS, so it is off on that listener)
  * LMTP (plain, no AUTH), one reply per recipient after DATA

The handler accepts any recipient at example.test / example.com (and their subdomains),
refuses reject@example.test with 550 5.1.1 and tempfail@example.test with 450 4.2.0 at
RCPT time, and other domains with 554 5.7.1. Each accepted transaction is written to the
maildir in the format shared with the Postfix pipe agent (deliver.sh):
  MAILDIR/new/ID.eml        envelope.original_content: the DATA bytes after dot-unstuffing,
                            CRLF kept
  MAILDIR/new/ID.envelope   line 1: MAIL FROM address (empty for <>), then one RCPT a line
One file pair per transaction, with every accepted recipient in it (as the Postfix
instance does). The password comes from the environment variable named by
--password-env, never from the command line, and is never logged.
Prints READY on stdout once every listener is bound.
"""

import argparse
import asyncio
import hmac
import itertools
import logging
import os
import signal
import ssl
import sys
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ACCEPTED_DOMAINS = ("example.test", "example.com")
HOSTNAME = "aiosmtpd.smtpkit.test"
# Same limit as the Postfix instance (message_size_limit) so SIZE tests behave alike.
SIZE_LIMIT = 10 * 1024 * 1024


def accepted_domain(domain: str) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in ACCEPTED_DOMAINS)


class MaildirHandler:
    """Writes every accepted message into the test maildir; fixed replies for test addresses."""

    def __init__(self, maildir: str):
        self.maildir = maildir
        self.counter = itertools.count()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # The 5-argument hook replaces aiosmtpd's own bookkeeping, so keep it.
        session.host_name = hostname
        # Stock aiosmtpd handles pipelined commands (it reads one line at a time from a
        # buffered stream) but does not say so; advertise it so clients pipeline here too.
        responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lower = address.lower()
        if lower == "reject@example.test":
            return f"550 5.1.1 <{address}>: Recipient address rejected: test mailbox does not exist"
        if lower == "tempfail@example.test":
            return f"450 4.2.0 <{address}>: Recipient address rejected: test mailbox temporarily unavailable"
        if not accepted_domain(lower.rpartition("@")[2]):
            return f"554 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        msg_id = f"{time.time_ns()}.aiosmtpd.{os.getpid()}.{next(self.counter)}"
        tmp = os.path.join(self.maildir, "tmp")
        new = os.path.join(self.maildir, "new")
        with open(os.path.join(tmp, msg_id + ".eml"), "wb") as f:
            f.write(envelope.original_content)
        lines = [envelope.mail_from or ""] + list(envelope.rcpt_tos)
        with open(os.path.join(tmp, msg_id + ".envelope"), "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        # The .envelope is renamed last: a reader that sees it finds a complete .eml.
        os.rename(os.path.join(tmp, msg_id + ".eml"), os.path.join(new, msg_id + ".eml"))
        os.rename(os.path.join(tmp, msg_id + ".envelope"), os.path.join(new, msg_id + ".envelope"))
        if isinstance(server, LMTP):
            # RFC 2033: one reply per accepted recipient, in RCPT order.
            return "\r\n".join(f"250 2.0.0 <{r}> delivered as {msg_id}" for r in envelope.rcpt_tos)
        return f"250 2.0.0 OK: queued as {msg_id}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--starttls-port", type=int, required=True)
    ap.add_argument("--smtps-port", type=int, required=True)
    ap.add_argument("--lmtp-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-env", default="SMTPKIT_AIOSMTPD_PASSWORD")
    args = ap.parse_args()

    password = os.environ.get(args.password_env)
    if not password:
        print(f"aiosmtpd_server: ${args.password_env} is not set", file=sys.stderr)
        return 2
    user = args.user.encode()
    secret = password.encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, user)
            and hmac.compare_digest(auth_data.password, secret)
        )
        # handled=False: aiosmtpd then sends the 535 itself (handled=True means "the
        # authenticator already replied" and would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    handler = MaildirHandler(args.maildir)

    def tls_ctx() -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        return ctx

    common = dict(
        hostname=HOSTNAME,
        enable_SMTPUTF8=True,
        data_size_limit=SIZE_LIMIT,
        authenticator=authenticator,
    )
    # No command-level logging: AUTH lines carry credentials.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # aiosmtpd 1.4 warns about its own deprecated attribute on every successful AUTH.
    logging.getLogger("mail.log").addFilter(lambda r: "login_data is deprecated" not in r.getMessage())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        starttls_ctx = tls_ctx()
        implicit_ctx = tls_ctx()
        servers = [
            await loop.create_server(
                lambda: SMTP(handler, tls_context=starttls_ctx, auth_require_tls=True, **common),
                args.host,
                args.starttls_port,
            ),
            await loop.create_server(
                lambda: SMTP(handler, auth_require_tls=False, **common),
                args.host,
                args.smtps_port,
                ssl=implicit_ctx,
            ),
            await loop.create_server(
                lambda: LMTP(handler, **common),
                args.host,
                args.lmtp_port,
            ),
        ]
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("READY", flush=True)
        await stop.wait()
        # Stop listening and exit; a client still mid-transaction is simply dropped
        # (waiting for connections to finish could stall the caller's stop step).
        for s in servers:
            s.close()

    try:
        asyncio.run(serve())
    except OSError as e:
        print(f"aiosmtpd_server: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
