//! Access to the real SMTP servers that `scripts/test.sh` starts for interop tests.
//!
//! `scripts/test.sh` (via `scripts/interop/start.sh`) runs a private Postfix 3.7 and an
//! aiosmtpd 1.4 on loopback and exports their addresses and credentials as `SMTPKIT_*`
//! environment variables (also written to `.interop/env`). [`postfix`] and [`aiosmtpd`]
//! turn that environment into a [`Server`]; [`wait_for_delivery`] reads delivered mail
//! back from the server's maildir. Only `std` is used, so this works before and
//! independently of the client under test.
//!
//! # Skipping and requiring
//! Without `SMTPKIT_INTEROP` the servers are absent and a test skips itself loudly:
//! ```ignore
//! let Some(server) = interop::postfix_or_skip("postfix_starttls_auth") else { return };
//! ```
//! `scripts/test.sh` also sets `SMTPKIT_INTEROP_REQUIRED=1`: then an absent server is a
//! failure (panic), so a broken setup can never pass as "skipped". An incomplete or
//! unparsable environment (`SMTPKIT_INTEROP` set, a variable missing) always panics.
//!
//! # What both servers do
//! They accept any recipient at `example.test` and `example.com` (and subdomains),
//! refuse `reject@example.test` with `550 5.1.1` and `tempfail@example.test` with
//! `450 4.2.0` at RCPT time, and other domains with `554 5.7.1` (relay denied). Every
//! listener of a [`Server`] that offers AUTH takes the same `user`/`password`.
//!
//! * Postfix: `starttls` offers STARTTLS, AUTH (PLAIN LOGIN CRAM-MD5) only after TLS;
//!   `implicit_tls` is wrapper mode with AUTH; `submission` requires STARTTLS and then
//!   AUTH before MAIL (`530 5.7.0` otherwise); `untrusted_tls` offers STARTTLS with a
//!   certificate from a CA that is *not* `ca_pem_path`. Unauthorized pipelining is
//!   strict (`smtpd_forbid_unauth_pipelining = yes`: EHLO+MAIL in one packet gets
//!   `554 5.5.0` and a disconnect), a bare LF in DATA gets `550 5.5.2`, SIZE is 10 MiB.
//!   Mail without AUTH to the test domains is accepted on `starttls` too.
//! * aiosmtpd: `starttls` offers STARTTLS, AUTH PLAIN/LOGIN only after TLS;
//!   `implicit_tls` with AUTH; `lmtp` is LMTP (LHLO, one reply per recipient after DATA,
//!   no TLS, no AUTH). PIPELINING is advertised; there is no CHUNKING, DSN parameters
//!   are refused with 555, lines over 1000 octets in DATA get `500 Line too long`,
//!   SIZE is 10 MiB.
//!
//! # Readback
//! Each delivery is a pair of files in `MAILDIR/new/`: `ID.eml` (the message) and
//! `ID.envelope` (line 1: envelope sender, empty for `<>`; then one recipient a line),
//! written before the pair is renamed into place, the `.envelope` last. IDs start with a
//! nanosecond timestamp, so file-name order is delivery order.
//!
//! Both servers write one delivery **per message** (per SMTP transaction) listing every
//! accepted recipient, so a message to two accepted and one rejected recipient yields
//! one [`Delivered`] with two `recipients`. Compare recipients as a set: aiosmtpd keeps
//! RCPT order, Postfix sorts them (by domain). Postfix splits a message only past 1000
//! recipients.
//!
//! * Postfix: all recipient domains share one pipe(8) next-hop, so the queue manager
//!   hands a message's recipients to the delivery agent together.
//!   `data` is byte-exact what the client sent after dot-unstuffing, CRLF kept, except
//!   that Postfix always removes `Bcc:`, `Return-Path:` and `Content-Length:` headers,
//!   and that a message whose first line is not a header gets an empty line (CRLF)
//!   prepended (an empty header section). Its own `Received:` header is dropped by a
//!   header check (a client's own `Received:` headers are kept). Checked exact: folded
//!   headers, a 1500-octet header line, a 5000-octet body line, dot-stuffed lines,
//!   8-bit UTF-8. A success DSN (`NOTIFY=SUCCESS`) for a sender at `example.test`
//!   arrives as an extra delivery with an empty sender and that sender as recipient.
//! * aiosmtpd: `data` is `envelope.original_content`, byte-exact after dot-unstuffing.
//!   LMTP deliveries land in the same maildir.
//!
//! Each test run starts with empty maildirs; tests tell their mail apart by a unique
//! marker (for example in the Message-ID or Subject) rather than by counting files.
//!
//! # smtp-sink
//! [`sinks`] gives the Postfix `smtp-sink` instances of `scripts/interop/smtp-sink.sh`,
//! one per fault flag set, by the names used there (`"hard-rcpt"`, `"drop-dot"`,
//! `"421-mail"`, `"delay-data"`, `"dump"`...). Per `man smtp-sink` (checked by hand
//! against 3.7): `-f CMD` answers CMD with `500 5.3.0`, `-r CMD` with `450 4.3.0`, both
//! without PIPELINING; `-q CMD` disconnects without a reply; `-Q CMD` sends
//! `421 4.0.0` and disconnects; `-p -w 1` waits a second before answering DATA (without PIPELINING) and
//! `-W .:1` before answering the final dot. Only `"dump"` keeps mail: [`wait_for_dump`]
//! reads a transaction back from its `-d` dump, whose format is text lines ending in LF:
//! `X-Client-Addr`, `X-Client-Proto`, `X-Helo-Args`, `X-Mail-Args` (the MAIL arguments
//! as sent), one `X-Rcpt-Args` per RCPT (as sent), a three-line `Received:` header, the
//! message after dot-unstuffing with each CRLF written as LF, and an empty line.

// The suite's tests each use a different part of this module.
#![allow(dead_code)]

use std::env;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// One running interop server: where to reach it and how to log in.
#[derive(Debug, Clone)]
pub struct Server {
    /// `"postfix"` or `"aiosmtpd"`.
    pub name: &'static str,
    /// Plain SMTP listener offering STARTTLS; AUTH is advertised only after TLS.
    pub starttls: SocketAddr,
    /// Implicit TLS listener (TLS from the first byte); AUTH is advertised at once.
    pub implicit_tls: SocketAddr,
    /// Submission-style listener that requires STARTTLS and AUTH before MAIL (Postfix).
    pub submission: Option<SocketAddr>,
    /// AUTH user name (`testuser@example.test`).
    pub user: String,
    /// AUTH password; random per test run. Never print it.
    pub password: String,
    /// Maildir the server delivers into (read it with [`wait_for_delivery`]).
    pub maildir: PathBuf,
    /// PEM file of the test CA that signed the certificates of the trusted listeners.
    pub ca_pem_path: PathBuf,
    /// STARTTLS listener whose certificate comes from a CA the client must not trust
    /// (Postfix).
    pub untrusted_tls: Option<SocketAddr>,
    /// LMTP listener delivering into the same maildir (aiosmtpd).
    pub lmtp: Option<SocketAddr>,
}

/// One delivered message as read back from a server's maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients of this delivery: every accepted recipient of the
    /// transaction (RCPT order for aiosmtpd, sorted by domain for Postfix).
    pub recipients: Vec<String>,
    /// The message bytes after SMTP dot-unstuffing, CRLF line ends kept.
    pub data: Vec<u8>,
}

/// The Postfix server from the environment, or `None` when `SMTPKIT_INTEROP` is unset
/// (panics instead when `SMTPKIT_INTEROP_REQUIRED=1`, or when the environment is
/// incomplete).
pub fn postfix() -> Option<Server> {
    if !interop_enabled("postfix") {
        return None;
    }
    Some(Server {
        name: "postfix",
        starttls: addr("SMTPKIT_POSTFIX_STARTTLS"),
        implicit_tls: addr("SMTPKIT_POSTFIX_SMTPS"),
        submission: Some(addr("SMTPKIT_POSTFIX_SUBMISSION")),
        user: var("SMTPKIT_POSTFIX_USER"),
        password: var("SMTPKIT_POSTFIX_PASSWORD"),
        maildir: dir("SMTPKIT_POSTFIX_MAILDIR"),
        ca_pem_path: file("SMTPKIT_CA_FILE"),
        untrusted_tls: Some(addr("SMTPKIT_POSTFIX_UNTRUSTED")),
        lmtp: None,
    })
}

/// The aiosmtpd server from the environment, or `None` when `SMTPKIT_INTEROP` is unset
/// (panics instead when `SMTPKIT_INTEROP_REQUIRED=1`, or when the environment is
/// incomplete).
pub fn aiosmtpd() -> Option<Server> {
    if !interop_enabled("aiosmtpd") {
        return None;
    }
    Some(Server {
        name: "aiosmtpd",
        starttls: addr("SMTPKIT_AIOSMTPD_STARTTLS"),
        implicit_tls: addr("SMTPKIT_AIOSMTPD_SMTPS"),
        submission: None,
        user: var("SMTPKIT_AIOSMTPD_USER"),
        password: var("SMTPKIT_AIOSMTPD_PASSWORD"),
        maildir: dir("SMTPKIT_AIOSMTPD_MAILDIR"),
        ca_pem_path: file("SMTPKIT_CA_FILE"),
        untrusted_tls: None,
        lmtp: Some(addr("SMTPKIT_AIOSMTPD_LMTP")),
    })
}

/// The smtp-sink instances (see the module docs).
#[derive(Debug, Clone)]
pub struct Sinks {
    /// Where the `"dump"` instance writes one file per transaction.
    pub dump_dir: PathBuf,
}

impl Sinks {
    /// The address of the instance `name` as named in `scripts/interop/smtp-sink.sh`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        addr(&format!("SMTPKIT_SINK_{}", name.to_ascii_uppercase().replace('-', "_")))
    }
}

/// The smtp-sink instances from the environment, or `None` when `SMTPKIT_INTEROP` is
/// unset (panics instead when `SMTPKIT_INTEROP_REQUIRED=1`, or when the environment is
/// incomplete).
pub fn sinks() -> Option<Sinks> {
    if !interop_enabled("smtp-sink") {
        return None;
    }
    let dump_dir = PathBuf::from(var("SMTPKIT_SINK_DUMP_DIR"));
    assert!(dump_dir.is_dir(), "interop: SMTPKIT_SINK_DUMP_DIR={} is not a directory", dump_dir.display());
    Some(Sinks { dump_dir })
}

/// [`sinks`], printing the skip notice for `test` when they are absent.
pub fn sinks_or_skip(test: &str) -> Option<Sinks> {
    let sinks = sinks();
    if sinks.is_none() {
        skip(test);
    }
    sinks
}

/// Polls `dir` every 50 ms for a complete smtp-sink dump (it ends with the empty line)
/// that contains `marker`, for at most `timeout`; returns its bytes.
pub fn wait_for_dump(dir: &Path, marker: &str, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("interop: cannot read {}: {e}", dir.display()));
        for entry in entries.filter_map(Result::ok) {
            let Ok(bytes) = fs::read(entry.path()) else { continue };
            if bytes.ends_with(b"\n\n") && contains(&bytes, marker.as_bytes()) {
                return Some(bytes);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50).min(deadline - now));
    }
}

/// The Postfix instance's `sendmail` program and config directory (`sendmail -C DIR`
/// posts into this instance's queue, and it delivers into [`Server::maildir`]).
pub fn postfix_sendmail() -> Option<(PathBuf, PathBuf)> {
    postfix()?;
    Some((file("SMTPKIT_POSTFIX_SENDMAIL"), PathBuf::from(var("SMTPKIT_POSTFIX_CONFIG"))))
}

/// Prints the loud skip notice for `test` straight to stderr. Writing to the handle
/// instead of using `eprintln!` bypasses libtest's output capture, so the notice shows
/// in an ordinary passing `cargo test` run too.
pub fn skip(test: &str) {
    let notice = format!("SKIPPED interop {test}: SMTPKIT_INTEROP not set; run scripts/test.sh\n");
    // Nothing useful can be done if stderr is gone; the test still returns early.
    let _ = std::io::stderr().write_all(notice.as_bytes());
}

/// [`postfix`], printing the skip notice for `test` when it is absent.
/// Usage: `let Some(server) = postfix_or_skip("my_test") else { return };`
pub fn postfix_or_skip(test: &str) -> Option<Server> {
    let server = postfix();
    if server.is_none() {
        skip(test);
    }
    server
}

/// [`aiosmtpd`], printing the skip notice for `test` when it is absent.
/// Usage: `let Some(server) = aiosmtpd_or_skip("my_test") else { return };`
pub fn aiosmtpd_or_skip(test: &str) -> Option<Server> {
    let server = aiosmtpd();
    if server.is_none() {
        skip(test);
    }
    server
}

/// The Redis server's URL (`redis://127.0.0.1:PORT`) from the environment, printing the
/// skip notice for `test` when interop is off (panics when required and missing).
#[cfg(feature = "redis")]
pub fn redis_or_skip(test: &str) -> Option<String> {
    if !interop_enabled("redis") {
        skip(test);
        return None;
    }
    Some(var("SMTPKIT_REDIS_URL"))
}

/// Polls `server`'s maildir every 50 ms until at least `expected` deliveries whose data
/// contains `marker` are there, or `timeout` has passed; returns the matching
/// deliveries in delivery order (possibly fewer than `expected` on timeout, or more if
/// more were already there: assert on the result).
///
/// Delivery is asynchronous for Postfix (well under a second); aiosmtpd writes before it
/// replies to the final dot. This blocks the calling thread: call it after the client's
/// transaction has completed, or through `tokio::task::spawn_blocking`.
pub fn wait_for_delivery(
    server: &Server,
    marker: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Delivered> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Delivered> = read_maildir(&server.maildir)
            .into_iter()
            .filter(|d| contains(&d.data, marker.as_bytes()))
            .collect();
        let now = Instant::now();
        if found.len() >= expected || now >= deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(50).min(deadline - now));
    }
}

/// Polls like [`wait_for_delivery`] until every address in `recipients` appears in a
/// delivery whose data contains `marker`, or `timeout` has passed; returns the matching
/// deliveries in delivery order. Both servers normally deliver a message once with all
/// its recipients, but this does not rely on it (a recipient could arrive in a later
/// delivery, e.g. after a deferral), so it is the call to use when a test knows which
/// recipients were accepted. Assert on the result: on timeout some are missing.
pub fn wait_for_recipients(
    server: &Server,
    marker: &str,
    recipients: &[&str],
    timeout: Duration,
) -> Vec<Delivered> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Delivered> = read_maildir(&server.maildir)
            .into_iter()
            .filter(|d| contains(&d.data, marker.as_bytes()))
            .collect();
        let complete =
            recipients.iter().all(|want| found.iter().any(|d| d.recipients.iter().any(|r| r == want)));
        let now = Instant::now();
        if complete || now >= deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(50).min(deadline - now));
    }
}

/// Every complete delivery in `maildir/new`, in delivery (file-name) order.
pub fn read_maildir(maildir: &Path) -> Vec<Delivered> {
    let new = maildir.join("new");
    let entries = match fs::read_dir(&new) {
        Ok(entries) => entries,
        Err(e) => panic!("interop: cannot read maildir {}: {e}", new.display()),
    };
    let mut stems: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".envelope").map(str::to_owned))
        .collect();
    stems.sort();
    stems
        .into_iter()
        .filter_map(|stem| {
            // The .envelope is renamed into place after the .eml, so both exist here;
            // a read error means the maildir was emptied under us: skip that entry.
            let envelope = fs::read_to_string(new.join(format!("{stem}.envelope"))).ok()?;
            let data = fs::read(new.join(format!("{stem}.eml"))).ok()?;
            let mut lines = envelope.lines();
            let sender = lines.next().unwrap_or_default().to_owned();
            let recipients = lines.map(str::to_owned).collect();
            Some(Delivered { sender, recipients, data })
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// True when the interop environment is there; panics when it is required but absent.
fn interop_enabled(server: &str) -> bool {
    let enabled = env::var_os("SMTPKIT_INTEROP").is_some_and(|v| !v.is_empty() && v != "0");
    if !enabled && env::var("SMTPKIT_INTEROP_REQUIRED").is_ok_and(|v| v == "1") {
        panic!(
            "interop server {server} required (SMTPKIT_INTEROP_REQUIRED=1) but SMTPKIT_INTEROP is not set; \
             run scripts/test.sh"
        );
    }
    enabled
}

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("interop: SMTPKIT_INTEROP is set but {name} is missing; source .interop/env"),
    }
}

fn addr(name: &str) -> SocketAddr {
    let v = var(name);
    v.parse().unwrap_or_else(|e| panic!("interop: {name}={v:?} is not an address: {e}"))
}

fn dir(name: &str) -> PathBuf {
    let p = PathBuf::from(var(name));
    assert!(p.join("new").is_dir(), "interop: {name}={} has no new/ directory", p.display());
    p
}

fn file(name: &str) -> PathBuf {
    let p = PathBuf::from(var(name));
    assert!(p.is_file(), "interop: {name}={} is not a file", p.display());
    p
}
