//! Test the mail your service sends, including what happens when the server misbehaves.
//!
//! ```text
//! cargo run --example fault_injection
//! ```
//!
//! Three in-process servers: one that refuses a recipient, one that greylists the message
//! after the final dot (4xx: safe to retry later), and one that commits the message and
//! drops the connection before answering (ambiguous: the message may have been delivered,
//! so do not resend blindly). Each prints what the client reported and what the server
//! recorded. Exit status 0 when every outcome is the expected one.

use std::process::ExitCode;

use smtpkit::testing::{Fault, Step, TestServer};
use smtpkit::{Client, Envelope, Error};

const MESSAGE: &str = "From: <app@example.com>\r\nSubject: Your receipt\r\n\r\nThanks!\r\n";

async fn send_to(server: &TestServer) -> Result<smtpkit::SendReport, Error> {
    let mut client = Client::from_url(&server.url())?.connect().await?;
    let envelope = Envelope::parse("app@example.com", &["alice@example.com", "bob@example.com"])?;
    client.send(&envelope, MESSAGE).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut ok = true;

    // 1. A recipient is refused: the other still gets the message.
    let server = TestServer::builder()
        .reject_recipient("bob@example.com", 550, "5.1.1 No such user")
        .start()
        .await
        .expect("start server");
    match send_to(&server).await {
        Ok(report) => {
            for r in &report.recipients {
                println!("[reject] {} -> {}", r.address, r.reply);
            }
            ok &= report.accepted().count() == 1;
        }
        Err(e) => {
            println!("[reject] unexpected error: {e}");
            ok = false;
        }
    }
    println!("[reject] server recorded {} message(s)", server.messages().len());

    // 2. Greylisting after the dot: nothing delivered, retry later.
    let server = TestServer::builder()
        .on(Step::DataEnd, Fault::Reply { code: 451, text: "4.7.1 Greylisted, try again later".into() })
        .start()
        .await
        .expect("start server");
    match send_to(&server).await {
        Err(e) => {
            println!("[greylist] transient={} permanent={} {e}", e.is_transient(), e.is_permanent());
            ok &= e.is_transient() && server.messages().is_empty();
        }
        Ok(_) => ok = false,
    }

    // 3. The server commits the message and drops the link before its reply.
    let server =
        TestServer::builder().on(Step::DataEnd, Fault::CommitThenClose).start().await.expect("start server");
    match send_to(&server).await {
        Err(e) if e.is_ambiguous() => {
            println!("[ambiguous] {e}");
            println!(
                "[ambiguous] server recorded {} message(s): do not resend blindly",
                server.messages().len()
            );
            ok &= server.messages().len() == 1;
        }
        other => {
            println!("[ambiguous] unexpected: {other:?}");
            ok = false;
        }
    }

    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
