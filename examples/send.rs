//! Send one message and report what happened to each recipient.
//!
//! ```text
//! cargo run --example send                      # embedded server on loopback
//! SMTP_URL=smtp://user:pass@mail.example.com MAIL_FROM=me@example.com \
//!   MAIL_TO=a@example.org,b@example.org cargo run --example send [message.eml]
//! ```
//!
//! Environment:
//! - `SMTP_URL`: `smtp://[user[:password]@]host[:port][?tls=required|opportunistic|none]`,
//!   `smtps://...`, `lmtp://...`, or another transport: `file:///dir` (one `.eml` and one
//!   `.json` per message), `sendmail:` or `sendmail:///path/to/sendmail`, `stub:`; without it an in-process server is started on loopback (STARTTLS
//!   and AUTH, its CA trusted) and what it captured is printed afterwards.
//! - `SMTP_CA_FILE`: PEM file of extra trusted roots (optional).
//! - `MAIL_FROM`, `MAIL_TO` (comma-separated). Defaults exist only for the embedded server.
//! - `SMTP_TRACE=1`: the session transcript on stderr, AUTH redacted.
//! - `MAIL_DSN_NOTIFY` (e.g. `SUCCESS,FAILURE` or `NEVER`), `MAIL_DSN_RET` (`FULL` or
//!   `HDRS`), `MAIL_DSN_ENVID`: RFC 3461 delivery status notifications (the server must
//!   offer DSN). The URL's `?auth=plain|login|cram-md5|scram-sha-256|xoauth2|oauthbearer`
//!   forces a mechanism (XOAUTH2/OAUTHBEARER take the URL's password as the token).
//!
//! The optional first argument is a file holding a raw RFC 5322 message, sent as given;
//! otherwise a small built-in text message is sent.
//!
//! Output: one line per recipient, `accepted <address> <code> <text>` or
//! `rejected <address> <code> <enhanced status> <text>` (a missing enhanced status is shown
//! as its class with `.0.0`); `ambiguous <cause>` when the link failed after the final dot
//! and delivery is unknown; `error: ...` on stderr for anything else.
//!
//! Exit status (one table for `send` and `compose`):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | every recipient was accepted |
//! | 1 | the server refused the message or some of its recipients (`rejected` lines) |
//! | 2 | usage or configuration: a bad URL, envelope, file or option |
//! | 3 | ambiguous: the link failed after the final dot; the message may have been delivered |
//! | 4 | connection, TLS or authentication failure (network, timeout, certificate, STARTTLS missing or refused, AUTH refused, a server that broke the protocol) |
//! | 5 | the server refused the session (greeting or EHLO refused) or cannot take this message (a needed extension such as SMTPUTF8 or 8BITMIME is missing, or the message exceeds its SIZE) |
//!
//! The goodbye is bounded: `QUIT` waits at most 10 s for its `221`, and its result never
//! changes the exit status.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use smtpkit::proto::params::{EnvId, Notify, Ret};
use smtpkit::testing::TestServer;
use smtpkit::{Envelope, MessageOptions, Outgoing};

#[path = "common/outcome.rs"]
mod outcome;
use outcome::{exit_code_for, print_captured, report};

struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run() -> Result<u8, Failure> {
    let url = std::env::var("SMTP_URL").ok().filter(|u| !u.is_empty());
    let embedded = match url {
        Some(_) => None,
        None => Some(
            TestServer::builder()
                .starttls(true)
                .user("demo", "demo-password")
                .start()
                .await
                .map_err(|e| fail(4, format!("cannot start the embedded server: {e}")))?,
        ),
    };
    let url = match (&url, &embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(server)) => {
            eprintln!("SMTP_URL not set: using the embedded server at {}", server.addr());
            server.url_with_password()
        }
        (None, None) => unreachable!(),
    };
    let default_from = embedded.as_ref().map(|_| "sender@example.com");
    let default_to = embedded.as_ref().map(|_| "rcpt@example.com");
    let from = env_or("MAIL_FROM", default_from)?;
    let to = env_or("MAIL_TO", default_to)?;
    let to: Vec<&str> = to.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let envelope = Envelope::parse(&from, &to).map_err(|e| fail(2, format!("bad envelope: {e}")))?;

    let message = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(&path)
            .map_err(|e| fail(2, format!("cannot read {}: {e}", path.to_string_lossy())))?,
        None => builtin_message(&from, &to),
    };

    let ca_file = std::env::var("SMTP_CA_FILE").ok().filter(|p| !p.is_empty());
    let embedded_ca = embedded.as_ref().map(TestServer::ca_pem);
    let trace = std::env::var("SMTP_TRACE").is_ok_and(|v| v == "1");
    // Any transport URL: smtp(s)/lmtp (configured here), file:///dir, sendmail:, stub:.
    let transport = smtpkit::transport::from_url_with(&url, |mut builder| {
        if let Some(path) = &ca_file {
            builder = builder.add_root_pem_file(path)?;
        }
        if let Some(pem) = &embedded_ca {
            builder = builder.add_root_pem(pem.as_bytes())?;
        }
        if trace {
            builder = builder.trace(|line| eprintln!("{line}"));
        }
        Ok(builder)
    })
    .map_err(|e| fail(2, e.to_string()))?;

    let options = dsn_options()?;
    let result = transport.send(Outgoing::new(envelope.clone(), message).with_options(options)).await;
    let status = report(envelope.to(), &result);
    transport.close().await;
    if let Some(server) = embedded {
        print_captured(&server).await;
        server.shutdown().await;
    }
    match (status, result) {
        (Some(code), _) => Ok(code),
        (None, Err(e)) => Err(fail(exit_code_for(&e), e.to_string())),
        (None, Ok(_)) => Ok(0),
    }
}

fn dsn_options() -> Result<MessageOptions, Failure> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = MessageOptions::default();
    if let Some(notify) = var("MAIL_DSN_NOTIFY") {
        options.notify = Some(Notify::parse(&notify).map_err(|e| fail(2, format!("MAIL_DSN_NOTIFY: {e}")))?);
    }
    if let Some(ret) = var("MAIL_DSN_RET") {
        options.ret = Some(match ret.to_ascii_uppercase().as_str() {
            "FULL" => Ret::Full,
            "HDRS" => Ret::Hdrs,
            _ => return Err(fail(2, "MAIL_DSN_RET must be FULL or HDRS")),
        });
    }
    if let Some(envid) = var("MAIL_DSN_ENVID") {
        options.envid = Some(EnvId::new(&envid).map_err(|e| fail(2, format!("MAIL_DSN_ENVID: {e}")))?);
    }
    Ok(options)
}

fn env_or(name: &str, default: Option<&str>) -> Result<String, Failure> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => {
            default.map(str::to_string).ok_or_else(|| fail(2, format!("{name} is required with SMTP_URL")))
        }
    }
}

fn builtin_message(from: &str, to: &[&str]) -> Vec<u8> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: smtpkit test message\r\nDate: {}\r\n\
         Message-ID: <{secs}.{}@smtpkit.invalid>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         Hello from smtpkit.\r\n.This line starts with a dot and is dot-stuffed on the wire.\r\n",
        to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", "),
        rfc5322_date(secs),
        std::process::id(),
    )
    .into_bytes()
}

/// `Sun, 22 Nov 2026 04:19:30 +0000` from Unix seconds (UTC).
fn rfc5322_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        [(month - 1) as usize];
    format!("{weekday}, {day} {month} {year} {:02}:{:02}:{:02} +0000", rem / 3600, rem % 3600 / 60, rem % 60)
}
