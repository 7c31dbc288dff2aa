//! Compose a MIME message (text + HTML alternatives, an inline PNG, a non-ASCII attachment)
//! and send it.
//!
//! ```text
//! cargo run --example compose                   # embedded server on loopback
//! SMTP_URL=smtp://user:pass@mail.example.com MAIL_FROM=me@example.com \
//!   MAIL_TO=a@example.org MAIL_CC=b@example.org MAIL_BCC=c@example.org cargo run --example compose
//! ```
//!
//! Same environment as `examples/send` (`SMTP_URL`, `SMTP_CA_FILE`, `MAIL_FROM`, `MAIL_TO`,
//! `SMTP_TRACE`) plus `MAIL_CC` and `MAIL_BCC` (comma-separated). The message: From
//! `Zoë Example <MAIL_FROM>`, Subject `Grüße from smtpkit ✓`, a text body and an HTML body
//! as `multipart/alternative`, a small PNG inline in the HTML through its Content-ID
//! (`cid:logo`), and an attachment named `résumé.txt`. Bcc recipients get the message but
//! no `Bcc:` header is ever transmitted.
//!
//! Output and exit status as `examples/send`: `accepted ...` / `rejected ...` per recipient,
//! `ambiguous ...`, `error: ...`; 0 only when every recipient was accepted, 1 rejected,
//! 2 usage, 3 ambiguous, 4 connection/TLS/auth, 5 session refused or the server cannot
//! take this message (missing extension, size limit): the table in `examples/send`.

use std::process::ExitCode;

use smtpkit::testing::TestServer;
use smtpkit::{Client, Message};

#[path = "common/outcome.rs"]
mod outcome;
use outcome::{exit_code_for, print_captured, report};

/// A 1x1 transparent PNG.
const LOGO: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01,
    0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("SMTP_URL").ok().filter(|u| !u.is_empty());
    let embedded = match url {
        Some(_) => None,
        None => match TestServer::builder().starttls(true).user("demo", "demo-password").start().await {
            Ok(s) => Some(s),
            Err(e) => return fail(4, format!("cannot start the embedded server: {e}")),
        },
    };
    let url = match (&url, &embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(server)) => {
            eprintln!("SMTP_URL not set: using the embedded server at {}", server.addr());
            server.url_with_password()
        }
        (None, None) => return fail(2, "no server"),
    };
    let from = std::env::var("MAIL_FROM").ok().filter(|v| !v.is_empty());
    let from = match (from, &embedded) {
        (Some(f), _) => f,
        (None, Some(_)) => "zoe@example.com".to_string(),
        (None, None) => return fail(2, "MAIL_FROM is required with SMTP_URL"),
    };
    let mut to = list("MAIL_TO");
    if to.is_empty() {
        if embedded.is_none() {
            return fail(2, "MAIL_TO is required with SMTP_URL");
        }
        to.push("rcpt@example.com".to_string());
    }

    let mut builder = Message::builder()
        .from(("Zoë Example", from.as_str()))
        .subject("Grüße from smtpkit ✓")
        .text_body("Hello!\n\nThis message has an HTML alternative, an inline logo and an attachment.\n")
        .html_body(
            "<html><body><p>Hello!</p><p>Our logo: <img src=\"cid:logo\" alt=\"logo\"></p></body></html>",
        )
        .inline_image("logo", "image/png", LOGO)
        .attachment("résumé.txt", "text/plain", "Zoë Example\nRésumé: writes SMTP clients.\n");
    for t in &to {
        builder = builder.to(t.as_str());
    }
    for c in list("MAIL_CC") {
        builder = builder.cc(c.as_str());
    }
    for b in list("MAIL_BCC") {
        builder = builder.bcc(b.as_str());
    }
    let message = match builder.build() {
        Ok(m) => m,
        Err(e) => return fail(2, format!("cannot compose the message: {e}")),
    };

    let mut client_builder = match Client::from_url(&url) {
        Ok(b) => b,
        Err(e) => return fail(2, e.report()),
    };
    if let Ok(path) = std::env::var("SMTP_CA_FILE") {
        if !path.is_empty() {
            client_builder = match client_builder.add_root_pem_file(&path) {
                Ok(b) => b,
                Err(e) => return fail(2, e.report()),
            };
        }
    }
    if let Some(server) = &embedded {
        client_builder = match client_builder.add_root_pem(server.ca_pem().as_bytes()) {
            Ok(b) => b,
            Err(e) => return fail(2, e.report()),
        };
    }
    if std::env::var("SMTP_TRACE").is_ok_and(|v| v == "1") {
        client_builder = client_builder.trace(|line| eprintln!("{line}"));
    }
    let mut client = match client_builder.connect().await {
        Ok(c) => c,
        Err(e) => return fail(exit_code_for(&e), e.report()),
    };
    let result = client.send_message(&message).await;
    let code = report(message.envelope().to(), &result);
    if client.is_reusable() {
        let _ = client.quit().await;
    }
    if let Some(server) = embedded {
        print_captured(&server).await;
        server.shutdown().await;
    }
    match (code, result) {
        (Some(c), _) => ExitCode::from(c),
        (None, Err(e)) => fail(exit_code_for(&e), e.report()),
        (None, Ok(_)) => ExitCode::SUCCESS,
    }
}
