//! Throughput benchmark client for the peer harness (`bench/run.sh`, see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example throughput -- --messages N --concurrency C --size BYTES \
//!     --recipients R --port P [--threads T] [--batch B]
//! ```
//!
//! Sends N messages whose body is BYTES bytes (lines of 78 `X` + CRLF, after a few fixed
//! headers, built once before the clock starts) to R envelope recipients over C pooled,
//! reused connections to `127.0.0.1:P` in plain SMTP, through the same [`Pool`] and
//! [`Pool::send_each`] a user would call. Prints one JSON line,
//! `{"client":"smtpkit","messages":N,"secs":S,"msgs_per_sec":M,...}`, and exits non-zero
//! if any message failed. The clock covers connecting, sending and `QUIT`.
//!
//! Without a server to point it at, run Postfix's sink: `smtp-sink 127.0.0.1:25250 1024`.

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use smtpkit::pool::{BulkOptions, Outgoing, Pool};
use smtpkit::{Address, Client, Envelope, TlsPolicy};

struct Args {
    messages: usize,
    concurrency: usize,
    size: usize,
    recipients: usize,
    port: u16,
    threads: usize,
    batch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        messages: 10_000,
        concurrency: 1,
        size: 2048,
        recipients: 1,
        port: 25250,
        threads: 0,
        batch: 32,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<usize>().map_err(|_| format!("{flag}: not a number: {value}"));
        // Unknown flags are errors, so a typo never benchmarks the defaults.
        match flag.as_str() {
            "--messages" => a.messages = num()?,
            "--concurrency" => a.concurrency = num()?.max(1),
            "--size" => a.size = num()?,
            "--recipients" => a.recipients = num()?.max(1),
            "--port" => {
                a.port = u16::try_from(num()?).map_err(|_| format!("--port: {value} is not a port"))?
            }
            "--threads" => a.threads = num()?,
            "--batch" => a.batch = num()?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// A few fixed headers, then `body_len` bytes of body in lines of 78 `X` + CRLF (the last
/// line absorbs the remainder), the payload `smtp-source -l` and the peers send.
fn build_message(body_len: usize, to: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(body_len + 256);
    m.extend_from_slice(b"From: <from@example.com>\r\n");
    m.extend_from_slice(format!("To: <{to}>\r\n").as_bytes());
    m.extend_from_slice(b"Subject: smtpkit throughput\r\n");
    m.extend_from_slice(b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n");
    m.extend_from_slice(b"Message-ID: <throughput@example.com>\r\n\r\n");
    let mut left = body_len;
    while left > 0 {
        let line = if left > 82 { 78 } else { left.saturating_sub(2) };
        m.extend(std::iter::repeat_n(b'X', line));
        m.extend_from_slice(b"\r\n");
        left -= (line + 2).min(left);
    }
    m
}

async fn run(a: &Args) -> Result<(usize, f64), String> {
    let err = |e: smtpkit::Error| e.to_string();
    let recipients: Vec<Address> = (1..=a.recipients)
        .map(|i| Address::new(&format!("rcpt{i}@example.com")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let from = Address::new("from@example.com").map_err(|e| e.to_string())?;
    let envelope = Envelope::new(Some(from), recipients).map_err(|e| e.to_string())?;
    let message = Bytes::from(build_message(a.size, "rcpt1@example.com"));
    let connector =
        Client::builder("127.0.0.1").port(a.port).tls(TlsPolicy::Disabled).build().map_err(err)?;
    let pool = Pool::builder(connector).max_connections(a.concurrency).build();
    let options = BulkOptions::default().concurrency(a.concurrency).batch(a.batch);
    let outgoing = (0..a.messages).map(|_| Outgoing::new(envelope.clone(), message.clone()));

    // `send_each` hands over each outcome as it is known instead of keeping N of them,
    // as a bulk sender streaming outcomes to a log or database would.
    let mut first_error = None;
    let start = Instant::now();
    let summary = pool
        .send_each(outgoing, &options, |index, outcome| {
            if first_error.is_none() {
                first_error = outcome.error().map(|e| format!("message {index}: {e}"));
            }
        })
        .await;
    pool.close().await;
    let secs = start.elapsed().as_secs_f64();

    if let Some(e) = first_error {
        eprintln!("throughput: {} message(s) failed; first error: {e}", summary.failed);
    }
    Ok((summary.failed, secs))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "throughput: {e}\nusage: throughput --messages N --concurrency C --size BYTES --recipients R --port P [--threads T] [--batch B]"
            );
            return ExitCode::from(2);
        }
    };
    let mut rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if a.threads > 1 {
        rt.worker_threads(a.threads);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("throughput: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&a)) {
        Ok((failed, secs)) => {
            let sent = a.messages - failed;
            println!(
                "{{\"client\":\"smtpkit\",\"messages\":{},\"secs\":{secs:.4},\"msgs_per_sec\":{:.1},\"concurrency\":{},\"size\":{},\"recipients\":{},\"errors\":{failed}}}",
                a.messages,
                sent as f64 / secs,
                a.concurrency,
                a.size,
                a.recipients,
            );
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("throughput: {e}");
            ExitCode::FAILURE
        }
    }
}
