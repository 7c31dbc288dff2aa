//! `examples/send` without async: the same environment variables, argument, output lines
//! and exit codes (see `examples/send.rs`), through `smtpkit::blocking`.
//!
//! ```text
//! cargo run --example send_blocking                     # embedded server on loopback
//! SMTP_URL=smtp://user:pass@mail.example.com MAIL_FROM=me@example.com \
//!   MAIL_TO=a@example.org,b@example.org cargo run --example send_blocking [message.eml]
//! ```
//!
//! Only the embedded server (`SMTP_URL` unset) needs a tokio runtime, on threads of its
//! own; the client is `smtpkit::blocking::Client` behind the transport `SMTP_URL` names.

use std::process::ExitCode;

use smtpkit::Outgoing;
use smtpkit::testing::TestServer;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/outcome.rs"]
mod outcome;
use cli::{Failure, dsn_options, fail};
use outcome::{exit_code_for, print_captured, report};

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run() -> Result<u8, Failure> {
    let url = std::env::var("SMTP_URL").ok().filter(|u| !u.is_empty());
    let runtime = match url {
        Some(_) => None,
        None => Some(tokio::runtime::Runtime::new().map_err(|e| fail(4, format!("no runtime: {e}")))?),
    };
    let embedded = match &runtime {
        Some(rt) => Some(
            rt.block_on(TestServer::builder().starttls(true).user("demo", "demo-password").start())
                .map_err(|e| fail(4, format!("cannot start the embedded server: {e}")))?,
        ),
        None => None,
    };
    let url = match (url, &embedded) {
        (Some(u), _) => u,
        (None, Some(server)) => {
            eprintln!("SMTP_URL not set: using the embedded server at {}", server.addr());
            server.url_with_password()
        }
        (None, None) => return Err(fail(2, "SMTP_URL is required")),
    };
    let (envelope, message) = cli::inputs(embedded.is_some())?;
    let embedded_ca = embedded.as_ref().map(TestServer::ca_pem);
    let transport =
        smtpkit::blocking::transport_from_url_with(&url, |b| cli::configure(b, embedded_ca.as_deref()))
            .map_err(|e| fail(2, e.report().to_string()))?;

    let options = dsn_options()?;
    let result = transport.send(Outgoing::new(envelope.clone(), message).with_options(options));
    let status = report(envelope.to(), &result);
    transport.close();
    if let (Some(server), Some(rt)) = (embedded, &runtime) {
        rt.block_on(async {
            print_captured(&server).await;
            server.shutdown().await;
        });
    }
    match (status, result) {
        (Some(code), _) => Ok(code),
        (None, Err(e)) => Err(fail(exit_code_for(&e), e.report().to_string())),
        (None, Ok(_)) => Ok(0),
    }
}
