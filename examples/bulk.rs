//! Bulk sending with a progress bar: a recipient list from CSV, one personalised message
//! each, a summary table at the end and a CSV report of every failed recipient.
//!
//! ```text
//! cargo run --example bulk                                  # demo list, embedded server
//! SMTP_URL=smtp://user:pass@mail.example.com MAIL_FROM=news@example.com \
//!   cargo run --example bulk -- recipients.csv [--report failures.csv] [--rate 10] \
//!   [--concurrency 4] [--retry 3]
//! ```
//!
//! The CSV has a header row with at least an `email` column; a `name` column, when
//! present, personalises the subject and the body. Without a file, a demo list of 300
//! recipients is generated and sent to an in-process server that greylists every message
//! once (so each is retried) and refuses a few addresses, to show every column.
//!
//! - `--rate R`: at most R messages per second (a local token bucket, burst 1).
//! - `--retry N`: up to N attempts for failures that delivered nothing (default 3).
//! - `--report FILE`: where the failures go (default `bulk-failures.csv`): one row per
//!   failed recipient with the reply code, enhanced status and text.
//!
//! Exit status: 0 when everything was sent, 1 when something failed, 2 for usage errors.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use smtpkit::pool::{BulkOptions, MessageOutcome, Outgoing, Pool};
use smtpkit::rate::LocalLimiter;
use smtpkit::retry::RetryPolicy;
use smtpkit::testing::TestServer;
use smtpkit::{Client, Message, Reply};

struct Args {
    csv: Option<String>,
    report: String,
    rate: Option<f64>,
    concurrency: usize,
    retry: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { csv: None, report: "bulk-failures.csv".into(), rate: None, concurrency: 4, retry: 3 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--report" => a.report = value()?,
            "--rate" => a.rate = Some(value()?.parse().map_err(|_| "--rate: not a number")?),
            "--concurrency" => a.concurrency = value()?.parse().map_err(|_| "--concurrency: not a number")?,
            "--retry" => a.retry = value()?.parse().map_err(|_| "--retry: not a number")?,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            path => a.csv = Some(path.to_string()),
        }
    }
    Ok(a)
}

/// One row of the recipient list.
struct Recipient {
    email: String,
    name: String,
}

fn read_csv(path: &str) -> Result<Vec<Recipient>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{path}: {e}"))?;
    let headers = reader.headers().map_err(|e| format!("{path}: {e}"))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let email = column("email").ok_or_else(|| format!("{path}: no `email` column"))?;
    let name = column("name");
    let mut list = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("{path}: {e}"))?;
        let field = |i: Option<usize>| i.and_then(|i| row.get(i)).unwrap_or("").trim().to_string();
        list.push(Recipient { email: field(Some(email)), name: field(name) });
    }
    Ok(list)
}

fn demo_list() -> Vec<Recipient> {
    (0..300)
        .map(|i| Recipient { email: format!("reader{i}@example.com"), name: format!("Reader {i}") })
        .collect()
}

/// The personalised message for one recipient.
fn compose(from: &str, r: &Recipient) -> Result<Outgoing, String> {
    let name = if r.name.is_empty() { "reader" } else { r.name.as_str() };
    let to = if r.name.is_empty() { r.email.clone() } else { format!("{} <{}>", r.name, r.email) };
    let message = Message::builder()
        .from(from)
        .to(to.as_str())
        .subject(format!("Hello {name}, here is this week's news"))
        .text_body(format!("Dear {name},\r\n\r\nThis week's news is that nothing happened.\r\n"))
        .build()
        .map_err(|e| format!("{}: {e}", r.email))?;
    Ok(Outgoing::new(message.envelope().clone(), message.to_bytes()))
}

/// One row per failed recipient: address, code, enhanced status, text.
fn failures(recipients: &[Recipient], index: usize, outcome: &MessageOutcome) -> Vec<[String; 4]> {
    let row = |address: &str, reply: Option<&Reply>| {
        let code = reply.map_or(String::new(), |r| r.code().0.to_string());
        let enhanced = reply.and_then(Reply::enhanced).map_or(String::new(), |s| s.to_string());
        let text = reply.map_or(String::new(), Reply::text);
        [address.to_string(), code, enhanced, text]
    };
    let mut rows: Vec<[String; 4]> =
        outcome.rejected().map(|r| row(r.address.as_str(), Some(&r.reply))).collect();
    for e in outcome.transactions.iter().filter_map(|t| t.as_ref().err()) {
        match e.smtp() {
            Some(smtp) if !smtp.recipients().is_empty() => {
                rows.extend(
                    smtp.recipients()
                        .iter()
                        .filter(|r| !r.accepted())
                        .map(|r| row(r.address.as_str(), Some(&r.reply))),
                );
                if smtp.recipients().iter().all(|r| r.accepted()) {
                    let mut failed = row(&recipients[index].email, smtp.reply());
                    failed[3] = format!("{e}");
                    rows.push(failed);
                }
            }
            _ => {
                let mut failed = row(&recipients[index].email, e.smtp().and_then(smtpkit::Error::reply));
                if failed[3].is_empty() {
                    failed[3] = e.to_string();
                }
                rows.push(failed);
            }
        }
    }
    rows
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

async fn run(a: Args) -> Result<bool, String> {
    let (recipients, server) = match &a.csv {
        Some(path) => (read_csv(path)?, None),
        None => {
            let server = TestServer::builder()
                .greylist(true)
                .reject_recipient("reader13@example.com", 550, "5.1.1 no such mailbox")
                .reject_recipient("reader77@example.com", 552, "5.2.2 mailbox full")
                .start()
                .await
                .map_err(|e| e.to_string())?;
            (demo_list(), Some(server))
        }
    };
    let from = std::env::var("MAIL_FROM").unwrap_or_else(|_| "news@example.com".into());
    let connector = match (&server, std::env::var("SMTP_URL")) {
        (Some(s), _) => {
            Client::builder("127.0.0.1").port(s.addr().port()).tls(smtpkit::TlsPolicy::Disabled).build()
        }
        (None, Ok(url)) => Client::from_url(&url).and_then(|b| b.build()),
        (None, Err(_)) => return Err("SMTP_URL is not set (needed with a CSV file)".into()),
    }
    .map_err(|e| e.to_string())?;
    let mut pool = Pool::builder(connector)
        .max_connections(a.concurrency.max(1))
        .retry(RetryPolicy::new(a.retry).base_delay(Duration::from_millis(200)));
    if let Some(rate) = a.rate {
        pool = pool.rate_limiter(Arc::new(LocalLimiter::per_second(rate).map_err(|e| e.to_string())?));
    }
    let pool = pool.build();
    let messages: Vec<Outgoing> = recipients.iter().map(|r| compose(&from, r)).collect::<Result<_, _>>()?;

    let bar = ProgressBar::new(messages.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").map_err(|e| e.to_string())?);
    let mut report = std::fs::File::create(&a.report).map_err(|e| format!("{}: {e}", a.report))?;
    writeln!(report, "email,code,enhanced,text").map_err(|e| e.to_string())?;
    let (mut attempts, mut failed_rows) = (0u64, 0usize);
    let summary = pool
        .send_with_progress(messages, &BulkOptions::default(), |index, outcome, p| {
            attempts += u64::from(outcome.attempts);
            for row in failures(&recipients, index, &outcome) {
                failed_rows += 1;
                let line: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(report, "{}", line.join(","));
            }
            bar.set_position(p.completed as u64);
            bar.set_message(format!(
                "sent {} failed {} ambiguous {} in flight {} {:.0} msgs/s",
                p.sent_so_far(),
                p.failed,
                p.ambiguous,
                p.in_flight,
                p.msgs_per_sec()
            ));
        })
        .await;
    bar.finish();
    pool.close().await;

    let stats = pool.stats();
    println!();
    println!("| messages | sent | failed | ambiguous | retried | attempts | connections opened | reused |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {attempts} | {} | {} |",
        summary.sent + summary.failed,
        summary.sent,
        summary.failed,
        summary.ambiguous,
        summary.retried,
        stats.opened,
        stats.reused
    );
    println!("{failed_rows} failed recipient(s) written to {}", a.report);
    if let Some(s) = server {
        s.shutdown().await;
    }
    Ok(summary.failed == 0 && failed_rows == 0)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bulk: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bulk: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(a)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bulk: {e}");
            ExitCode::from(2)
        }
    }
}
