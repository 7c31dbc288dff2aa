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
//! - `SMTP_PROXY`: `socks5://[user:pass@]host:port` or `http://[user:pass@]host:port`
//!   (percent-encoded credentials): reach the server through that proxy (optional).
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

use smtpkit::Outgoing;
use smtpkit::testing::TestServer;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/outcome.rs"]
mod outcome;
use cli::{Failure, dsn_options, fail};
use outcome::{exit_code_for, print_captured, report};

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
    let (envelope, message) = cli::inputs(embedded.is_some())?;
    let embedded_ca = embedded.as_ref().map(TestServer::ca_pem);
    // Any transport URL: smtp(s)/lmtp (configured here), file:///dir, sendmail:, stub:.
    let transport = smtpkit::transport::from_url_with(&url, |b| cli::configure(b, embedded_ca.as_deref()))
        .map_err(|e| fail(2, e.report().to_string()))?;

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
        (None, Err(e)) => Err(fail(exit_code_for(&e), e.report().to_string())),
        (None, Ok(_)) => Ok(0),
    }
}
