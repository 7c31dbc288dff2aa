//! The output contract shared by `examples/send` and `examples/compose`: one line per
//! recipient, `ambiguous <cause>`, and the exit codes.

use std::time::Duration;

use smtpkit::testing::TestServer;
use smtpkit::{Address, Error, Reply, SendReport};

/// Prints one line per recipient and returns the exit code (0 all accepted, 1 any
/// rejected, 3 ambiguous), or `None` for an error with no per-recipient answer.
pub fn report(recipients: &[Address], result: &Result<SendReport, Error>) -> Option<u8> {
    match result {
        Ok(report) => {
            for r in &report.recipients {
                if r.accepted() {
                    println!("accepted {} {} {}", r.address, report.reply.code(), full_text(&report.reply));
                } else {
                    print_rejected(r.address.as_str(), &r.reply);
                }
            }
            Some(if report.rejected().count() == 0 { 0 } else { 1 })
        }
        Err(Error::Ambiguous { cause, .. }) => {
            println!("ambiguous {}", cause.report());
            Some(3)
        }
        Err(e @ (Error::Rejected { .. } | Error::RecipientsRejected { .. })) => {
            for rcpt in recipients {
                let own = e.recipients().iter().find(|r| r.address == *rcpt);
                match (own, e) {
                    (Some(r), Error::RecipientsRejected { .. }) => print_rejected(rcpt.as_str(), &r.reply),
                    (Some(r), _) if !r.accepted() => print_rejected(rcpt.as_str(), &r.reply),
                    (_, Error::Rejected { reply, .. }) => print_rejected(rcpt.as_str(), reply),
                    _ => {}
                }
            }
            Some(1)
        }
        Err(_) => None,
    }
}

/// `rejected <address> <code> <enhanced status> <text>`; a missing enhanced status is shown
/// as its class with `.0.0`.
fn print_rejected(address: &str, reply: &Reply) {
    let enhanced =
        reply.enhanced().map_or_else(|| format!("{}.0.0", reply.code().class()), |e| e.to_string());
    println!("rejected {address} {} {enhanced} {}", reply.code(), reply.text().replace('\n', " "));
}

fn full_text(reply: &Reply) -> String {
    let text = reply.text().replace('\n', " ");
    match reply.enhanced() {
        Some(e) => format!("{e} {text}"),
        None => text,
    }
}

/// The exit status table of `examples/send` and `examples/compose`:
///
/// | code | meaning |
/// |------|---------|
/// | 0 | every recipient was accepted |
/// | 1 | the server refused the message or some of its recipients (`rejected` lines) |
/// | 2 | usage or configuration: a bad URL, envelope, file or option |
/// | 3 | ambiguous: the link failed after the final dot; the message may have been delivered |
/// | 4 | connection, TLS or authentication failure (network, timeout, certificate, STARTTLS missing or refused, AUTH refused, a server that broke the protocol) |
/// | 5 | the server refused the session (greeting or EHLO refused) or cannot take this message (a needed extension such as SMTPUTF8 or 8BITMIME is missing, or the message exceeds its SIZE) |
pub fn exit_code_for(e: &Error) -> u8 {
    use smtpkit::{Extension, Phase};
    match e {
        Error::Config(_) | Error::Input(_) => 2,
        Error::Transport(t) if t.is_caller() => 2,
        Error::Ambiguous { .. } => 3,
        Error::Rejected { phase: Phase::Greeting | Phase::Ehlo | Phase::Helo, .. } => 5,
        Error::ExtensionMissing(Extension::StartTls | Extension::Auth) => 4,
        Error::ExtensionMissing(_) | Error::MessageTooLarge { .. } => 5,
        Error::Rejected { phase: Phase::StartTls, .. } => 4,
        Error::Rejected { .. } | Error::RecipientsRejected { .. } => 1,
        _ => 4,
    }
}

/// Prints what the embedded server captured.
pub async fn print_captured(server: &TestServer) {
    for m in server.wait_for_messages(1, Duration::from_secs(2)).await {
        println!("--- the embedded server captured (from <{}> to {:?}):", m.mail_from, m.rcpt_to);
        print!("{}", String::from_utf8_lossy(&m.data));
        println!("--- end of message");
    }
}
