"""Smoke test of the interop servers with Python's smtplib (stdlib only).

Run by scripts/test.sh after start.sh, with the environment of .interop/env. Proves the
servers behave as the Rust interop tests expect before cargo runs: TLS with the test CA,
AUTH, fixed recipient replies, and byte-exact readback from both maildirs (the same
format that tests/suite/support/interop.rs reads). One PASS line per check; the first
failure prints FAIL with the reason and exits 1. Every socket has a timeout and every
wait a deadline.
"""

import base64
import os
import smtplib
import socket
import ssl
import sys
import time
import uuid

TIMEOUT = 10.0


class Fail(Exception):
    pass


def env(name):
    value = os.environ.get(name)
    if not value:
        raise Fail(f"${name} is not set (source .interop/env)")
    return value


def addr(name):
    host, _, port = env(name).rpartition(":")
    return host, int(port)


def check(cond, what):
    if not cond:
        raise Fail(what)


def ca_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def read_deliveries(maildir):
    """All deliveries in MAILDIR/new as (sender, recipients, data), in delivery order."""
    out = []
    new = os.path.join(maildir, "new")
    for name in sorted(os.listdir(new)):
        if not name.endswith(".envelope"):
            continue
        stem = name[: -len(".envelope")]
        with open(os.path.join(new, name), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        with open(os.path.join(new, stem + ".eml"), "rb") as f:
            data = f.read()
        out.append((lines[0] if lines else "", lines[1:], data))
    return out


def wait_for(maildir, marker, expected, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in read_deliveries(maildir) if marker.encode() in d[2]]
        if len(found) >= expected or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def message(marker, sender, to):
    # Lines that need dot-stuffing, 8-bit UTF-8, a client Received header and an empty
    # line inside the body: all must come back exactly as sent.
    return (
        f"Received: from client.example.test by relay.example.test; {marker}\r\n"
        f"Message-ID: <{marker}@smoke.example.test>\r\n"
        f"Subject: smoke {marker}\r\n"
        f"From: <{sender}>\r\n"
        f"To: <{to}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "line one\r\n"
        ".leading dot\r\n"
        "..two dots\r\n"
        ".\r\n"
        "\u00fcn\u00efc\u00f8d\u00e9 8bit \u2713\r\n"
        "\r\n"
        "last line\r\n"
    ).encode("utf-8")


def login(s, mech, user, password):
    s.user, s.password = user, password
    fn = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
    code, _ = s.auth(mech, fn, initial_response_ok=(mech != "LOGIN"))
    check(code == 235, f"AUTH {mech}: expected 235, got {code}")


def starttls_client(host, port, ctx):
    s = smtplib.SMTP(host, port, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    check(s.has_extn("starttls"), "STARTTLS not advertised")
    check(not s.has_extn("auth"), "AUTH advertised before TLS")
    code, _ = s.starttls(context=ctx)
    check(code == 220, f"STARTTLS: got {code}")
    s.ehlo()
    return s


def raw_exchange(host, port, payload, read_until_close=True):
    """Sends PAYLOAD after the greeting in one write; returns everything read back."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        greeting = sock.recv(4096)
        sock.sendall(payload)
        chunks = [greeting]
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                b = sock.recv(4096)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close and b.endswith(b"\r\n"):
                break
        return b"".join(chunks)


def lmtp_send(host, port, sender, rcpts, data):
    """A minimal LMTP client: returns the list of per-recipient replies after DATA."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        f = sock.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline()
                check(line.endswith(b"\r\n"), f"LMTP: truncated reply {line!r}")
                lines.append(line)
                if line[3:4] != b"-":
                    return lines

        def cmd(line, want):
            sock.sendall(line + b"\r\n")
            r = reply()
            check(r[-1][:3] == want, f"LMTP {line!r}: got {r!r}")

        check(reply()[-1][:3] == b"220", "LMTP greeting")
        cmd(b"LHLO smoke.example.test", b"250")
        cmd(b"MAIL FROM:<" + sender.encode() + b">", b"250")
        for r in rcpts:
            cmd(b"RCPT TO:<" + r.encode() + b">", b"250")
        cmd(b"DATA", b"354")
        body = b"".join(b"." + l if l.startswith(b".") else l for l in data.splitlines(keepends=True))
        sock.sendall(body + b".\r\n")
        replies = [reply()[-1] for _ in rcpts]
        sock.sendall(b"QUIT\r\n")
        return replies


def run_common(name, pfx, ca, checks):
    """The checks both servers share. PFX is the env prefix (SMTPKIT_POSTFIX / _AIOSMTPD)."""
    host, port = addr(pfx + "_STARTTLS")
    ihost, iport = addr(pfx + "_SMTPS")
    user, password = env(pfx + "_USER"), env(pfx + "_PASSWORD")
    maildir = env(pfx + "_MAILDIR")
    ctx = ca_context(ca)

    def ok(what):
        checks.append(f"{name}: {what}")
        print(f"PASS {name}: {what}", flush=True)

    # STARTTLS + AUTH PLAIN, two accepted recipients beside a rejected and a deferred one.
    marker = "smoke-" + uuid.uuid4().hex
    sender = "sender@example.test"
    msg = message(marker, sender, "rcpt1@example.test")
    s = starttls_client(host, port, ctx)
    check(s.has_extn("auth"), "AUTH not advertised after STARTTLS")
    login(s, "PLAIN", user, password)
    ok("STARTTLS (certificate verified against SMTPKIT_CA_FILE) + AUTH PLAIN")
    rcpts = ["rcpt1@example.test", "reject@example.test", "tempfail@example.test", "rcpt2@example.com"]
    refused = s.sendmail(sender, rcpts, msg, mail_options=["BODY=8BITMIME"])
    s.quit()
    check(set(refused) == {"reject@example.test", "tempfail@example.test"}, f"refused: {refused}")
    code, text = refused["reject@example.test"]
    check(code == 550 and text.startswith(b"5.1.1"), f"reject@: {code} {text!r}")
    code, text = refused["tempfail@example.test"]
    check(code == 450 and text.startswith(b"4.2.0"), f"tempfail@: {code} {text!r}")
    ok("reject@ -> 550 5.1.1 and tempfail@ -> 450 4.2.0 at RCPT, accepted recipients beside them")

    got = wait_for(maildir, marker, 1)
    # One delivery with both accepted recipients, on both servers.
    check(len(got) == 1, f"expected one delivery, got {[(d[0], d[1]) for d in got]}")
    got_rcpts = sorted(got[0][1])
    check(got_rcpts == ["rcpt1@example.test", "rcpt2@example.com"], f"delivered recipients {got_rcpts}")
    for d_sender, _, data in got:
        check(d_sender == sender, f"envelope sender {d_sender!r}")
        check(data == msg, f"readback differs:\n sent {msg!r}\n got  {data!r}")
    ok("byte-exact readback from the maildir: one delivery listing both accepted recipients")

    # AUTH LOGIN on the STARTTLS port, then a wrong password.
    s = starttls_client(host, port, ctx)
    login(s, "LOGIN", user, password)
    s.quit()
    ok("AUTH LOGIN")
    s = starttls_client(host, port, ctx)
    try:
        login(s, "PLAIN", user, password + "-wrong")
        raise Fail("wrong password accepted")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 535, f"wrong password: {e.smtp_code}")
    finally:
        s.close()
    ok("wrong password -> 535")

    # Implicit TLS: AUTH offered at once, mail goes through.
    marker2 = "smoke-" + uuid.uuid4().hex
    msg2 = message(marker2, sender, "implicit@example.test")
    s = smtplib.SMTP_SSL(ihost, iport, local_hostname="smoke.example.test", context=ctx, timeout=TIMEOUT)
    s.ehlo()
    check(s.has_extn("auth"), "AUTH not advertised on implicit TLS")
    login(s, "PLAIN", user, password)
    s.sendmail(sender, ["implicit@example.test"], msg2, mail_options=["BODY=8BITMIME"])
    s.quit()
    got = wait_for(maildir, marker2, 1)
    check(len(got) == 1 and got[0][2] == msg2, f"implicit TLS readback: {got!r}")
    ok("implicit TLS + AUTH PLAIN + delivery")

    # SMTPUTF8: non-ASCII envelope addresses reach the .envelope file as UTF-8.
    marker3 = "smoke-utf8-" + uuid.uuid4().hex
    u_sender, u_rcpt = "s\u00e9nder@example.test", "\u00fcser-\u2713@example.test"
    msg3 = message(marker3, u_sender, u_rcpt)
    s = starttls_client(host, port, ctx)
    s.sendmail(u_sender, [u_rcpt], msg3, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    s.quit()
    got = wait_for(maildir, marker3, 1)
    check(len(got) == 1 and got[0][0] == u_sender and got[0][1] == [u_rcpt] and got[0][2] == msg3,
          f"SMTPUTF8 readback: {[(d[0], d[1]) for d in got]}")
    ok("SMTPUTF8 envelope (non-ASCII sender and recipient) read back exact")
    return ctx, ok


def run_postfix(ca, checks):
    ctx, ok = run_common("postfix", "SMTPKIT_POSTFIX", ca, checks)
    host, port = addr("SMTPKIT_POSTFIX_STARTTLS")
    user, password = env("SMTPKIT_POSTFIX_USER"), env("SMTPKIT_POSTFIX_PASSWORD")
    maildir = env("SMTPKIT_POSTFIX_MAILDIR")

    s = smtplib.SMTP(host, port, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    want = ["pipelining", "size", "8bitmime", "smtputf8", "dsn", "enhancedstatuscodes", "chunking", "starttls"]
    missing = [w for w in want if not s.has_extn(w)]
    check(not missing, f"EHLO lacks {missing}")
    check(s.esmtp_features.get("size") == "10485760", f"SIZE {s.esmtp_features.get('size')}")
    s.starttls(context=ctx)
    s.ehlo()
    mechs = set(s.esmtp_features.get("auth", "").split())
    check({"PLAIN", "LOGIN", "CRAM-MD5"} <= mechs, f"AUTH mechanisms {mechs}")
    login(s, "CRAM-MD5", user, password)
    s.quit()
    ok("EHLO: PIPELINING SIZE 10485760 8BITMIME SMTPUTF8 DSN ENHANCEDSTATUSCODES CHUNKING STARTTLS")
    ok("AUTH PLAIN LOGIN CRAM-MD5 after TLS; CRAM-MD5 works")

    # Strict pipelining: EHLO and MAIL in one write is a protocol violation here.
    out = raw_exchange(host, port, b"EHLO smoke.example.test\r\nMAIL FROM:<a@example.test>\r\n")
    check(b"554 5.5.0" in out, f"EHLO+MAIL in one packet: {out!r}")
    ok("unauthorized pipelining (EHLO+MAIL in one packet) -> 554 5.5.0")

    # Bare LF inside DATA is refused.
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        f = sock.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                check(line.endswith(b"\r\n"), f"truncated reply {line!r}")
                if line[3:4] != b"-":
                    return line

        reply()
        for cmd in (b"EHLO smoke.example.test", b"MAIL FROM:<a@example.test>", b"RCPT TO:<b@example.test>"):
            sock.sendall(cmd + b"\r\n")
            r = reply()
            check(r.startswith(b"250"), f"{cmd!r}: {r!r}")
        sock.sendall(b"DATA\r\n")
        check(reply().startswith(b"354"), "DATA")
        sock.sendall(b"Subject: bare lf\r\n\r\nline with bare\nLF\r\n.\r\n")
        r = reply()
        check(r.startswith(b"5"), f"bare LF: {r!r}")
    ok(f"bare LF in DATA -> {r.decode()[:9]}")

    # Submission: MAIL needs STARTTLS, then AUTH.
    shost, sport = addr("SMTPKIT_POSTFIX_SUBMISSION")
    s = smtplib.SMTP(shost, sport, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    code, _ = s.mail("a@example.test")
    check(code == 530, f"submission MAIL before STARTTLS: {code}")
    s.rset()
    s.starttls(context=ctx)
    s.ehlo()
    code, text = s.mail("a@example.test")
    check(code == 530, f"submission MAIL before AUTH: {code} {text!r}")
    s.rset()
    login(s, "PLAIN", user, password)
    code, _ = s.mail("a@example.test")
    check(code == 250, f"submission MAIL after AUTH: {code}")
    s.quit()
    ok("submission: MAIL -> 530 before STARTTLS and before AUTH, 250 after AUTH")

    # Untrusted certificate: verification against the test CA must fail, while the
    # untrusted CA accepts it (so the failure is about trust, nothing else).
    uhost, uport = addr("SMTPKIT_POSTFIX_UNTRUSTED")
    s = smtplib.SMTP(uhost, uport, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    try:
        s.starttls(context=ctx)
        raise Fail("untrusted certificate accepted")
    except ssl.SSLCertVerificationError:
        pass
    finally:
        s.close()
    untrusted_ca = os.path.join(os.path.dirname(ca), "untrusted-ca.pem")
    s = smtplib.SMTP(uhost, uport, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    s.starttls(context=ca_context(untrusted_ca))
    s.quit()
    ok("untrusted listener: certificate rejected by SMTPKIT_CA_FILE, valid under its own CA")

    # DSN: NOTIFY=SUCCESS produces a success notice back to the sender's maildir.
    marker = "smoke-dsn-" + uuid.uuid4().hex
    sender = "dsn-sender@example.test"
    msg = message(marker, sender, "dsn-rcpt@example.test")
    s = smtplib.SMTP(host, port, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    s.sendmail(sender, ["dsn-rcpt@example.test"], msg, mail_options=["RET=HDRS", f"ENVID={marker}"],
               rcpt_options=["NOTIFY=SUCCESS"])
    s.quit()
    got = wait_for(maildir, marker, 2)
    dsn = [d for d in got if d[0] == "" and d[1] == [sender]]
    check(len(got) == 2 and len(dsn) == 1, f"DSN: {[(d[0], d[1]) for d in got]}")
    check(b"multipart/report" in dsn[0][2] and b"delivery-status" in dsn[0][2], "DSN is no delivery report")
    ok("DSN NOTIFY=SUCCESS -> success report to the sender (null sender) in the maildir")


def run_aiosmtpd(ca, checks):
    ctx, ok = run_common("aiosmtpd", "SMTPKIT_AIOSMTPD", ca, checks)
    host, port = addr("SMTPKIT_AIOSMTPD_STARTTLS")
    maildir = env("SMTPKIT_AIOSMTPD_MAILDIR")
    s = smtplib.SMTP(host, port, local_hostname="smoke.example.test", timeout=TIMEOUT)
    s.ehlo()
    missing = [w for w in ("pipelining", "smtputf8", "8bitmime", "size", "starttls") if not s.has_extn(w)]
    check(not missing, f"EHLO lacks {missing}")
    s.quit()
    ok("EHLO: PIPELINING SMTPUTF8 8BITMIME SIZE STARTTLS")

    lhost, lport = addr("SMTPKIT_AIOSMTPD_LMTP")
    marker = "smoke-lmtp-" + uuid.uuid4().hex
    sender = "lmtp-sender@example.test"
    msg = message(marker, sender, "l1@example.test")
    replies = lmtp_send(lhost, lport, sender, ["l1@example.test", "l2@example.test"], msg)
    check(len(replies) == 2 and all(r.startswith(b"250") for r in replies), f"LMTP replies {replies!r}")
    got = wait_for(maildir, marker, 1)
    check(len(got) == 1 and got[0][1] == ["l1@example.test", "l2@example.test"] and got[0][2] == msg,
          f"LMTP readback {got!r}")
    ok("LMTP: one 250 per recipient after DATA, byte-exact readback")


def main():
    checks = []
    try:
        ca = env("SMTPKIT_CA_FILE")
        run_postfix(ca, checks)
        run_aiosmtpd(ca, checks)
    except (Fail, OSError, smtplib.SMTPException, AssertionError) as e:
        print(f"FAIL interop smoke after {len(checks)} passed check(s): {type(e).__name__}: {e}", flush=True)
        return 1
    print(f"interop smoke: {len(checks)} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
