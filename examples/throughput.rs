//! Throughput benchmark client for the peer harness (`bench/run.sh`, see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example throughput -- --messages N --concurrency C --size BYTES \
//!     --recipients R --port P [--threads T] [--batch B] [--tls] [--ca-file PEM] \
//!     [--rate MSGS_PER_SEC | --rate-redis redis://HOST:PORT --rate-key NAME] [--retry N]
//! throughput --connect-only K --port P [--tls] [--ca-file PEM]
//! ```
//!
//! Sends N messages whose body is BYTES bytes (lines of 78 `X` + CRLF, after a few fixed
//! headers, built once before the clock starts) to R envelope recipients over C pooled,
//! reused connections to `127.0.0.1:P` in plain SMTP, through the same [`Pool`] and
//! [`Pool::send_each`] a user would call. Prints one JSON line,
//! `{"client":"smtpkit","messages":N,"secs":S,"msgs_per_sec":M,...}`, and exits non-zero
//! if any message failed. The clock covers connecting, sending and `QUIT`. The JSON line
//! also carries `sent`, `rejected`, `ambiguous`, `retried` (messages with a retry),
//! `connections_opened` and `connections_reused`.
//!
//! - `--tls`: implicit TLS (SMTPS) to `localhost:P`; `--ca-file PEM` trusts the CA
//!   certificate(s) in PEM instead of the system roots.
//! - `--rate R`: at most R messages per second, evenly spaced (a local token bucket,
//!   burst 1). `--rate-redis URL --rate-key NAME` (feature `redis`): the same limit kept
//!   in Redis under NAME, shared by every process that uses the key.
//! - `--retry N`: up to N attempts per message for failures that delivered nothing.
//! - `--connect-only K`: open K connections one after another (connect, TLS handshake,
//!   greeting, EHLO, `QUIT`), send nothing, and print
//!   `{"client":"smtpkit","connections":K,"secs":S,"conns_per_sec":X}`.
//!
//! Without a server to point it at, run Postfix's sink: `smtp-sink 127.0.0.1:25250 1024`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smtpkit::pool::{BulkOptions, Outgoing, Pool};
use smtpkit::rate::{LocalLimiter, RateLimiter};
use smtpkit::retry::RetryPolicy;
use smtpkit::{Address, Client, Connector, Envelope, TlsPolicy};

struct Args {
    messages: usize,
    concurrency: usize,
    size: usize,
    recipients: usize,
    port: u16,
    threads: usize,
    batch: usize,
    tls: bool,
    ca_file: Option<String>,
    connect_only: Option<usize>,
    rate: Option<f64>,
    rate_redis: Option<String>,
    rate_key: Option<String>,
    retry: Option<u32>,
}

/// What a run counted, for the JSON line.
#[derive(Default)]
struct Counts {
    failed: usize,
    ambiguous: usize,
    retried: usize,
    opened: u64,
    reused: u64,
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
        tls: false,
        ca_file: None,
        connect_only: None,
        rate: None,
        rate_redis: None,
        rate_key: None,
        retry: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        if flag == "--tls" {
            a.tls = true;
            continue;
        }
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
            "--ca-file" => a.ca_file = Some(value.clone()),
            "--connect-only" => a.connect_only = Some(num()?),
            "--rate" => {
                let r = value.parse::<f64>().map_err(|_| format!("--rate: not a number: {value}"))?;
                a.rate = Some(r);
            }
            "--rate-redis" => a.rate_redis = Some(value.clone()),
            "--rate-key" => a.rate_key = Some(value.clone()),
            "--retry" => {
                a.retry = Some(u32::try_from(num()?).map_err(|_| format!("--retry: {value} is too large"))?)
            }
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

/// The connector the flags describe: plain to 127.0.0.1, or implicit TLS to localhost.
fn connector(a: &Args) -> Result<Connector, String> {
    let err = |e: smtpkit::Error| e.to_string();
    let builder = if a.tls {
        let b = Client::builder("localhost").port(a.port).tls(TlsPolicy::Implicit);
        match &a.ca_file {
            Some(pem) => b.without_native_roots().add_root_pem_file(pem).map_err(err)?,
            None => b,
        }
    } else {
        Client::builder("127.0.0.1").port(a.port).tls(TlsPolicy::Disabled)
    };
    builder.build().map_err(err)
}

/// The rate limiter the flags ask for, if any.
fn limiter(a: &Args) -> Result<Option<Arc<dyn RateLimiter>>, String> {
    if let Some(url) = &a.rate_redis {
        let rate = a.rate.ok_or("--rate-redis needs --rate")?;
        let key = a.rate_key.clone().ok_or("--rate-redis needs --rate-key")?;
        return redis_limiter(url, &key, rate);
    }
    match a.rate {
        Some(r) => Ok(Some(Arc::new(LocalLimiter::per_second(r).map_err(|e| e.to_string())?))),
        None => Ok(None),
    }
}

#[cfg(feature = "redis")]
fn redis_limiter(url: &str, key: &str, rate: f64) -> Result<Option<Arc<dyn RateLimiter>>, String> {
    let limiter = smtpkit::rate::RedisLimiter::builder(url, key)
        .messages_per_sec(rate, 1)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(limiter)))
}

#[cfg(not(feature = "redis"))]
fn redis_limiter(_: &str, _: &str, _: f64) -> Result<Option<Arc<dyn RateLimiter>>, String> {
    Err("--rate-redis needs the `redis` feature (cargo build --features redis)".into())
}

/// `--connect-only K`: K sequential connections, each greeted, EHLO'd and QUIT.
async fn connect_only(a: &Args, k: usize) -> Result<f64, String> {
    let connector = connector(a)?;
    let start = Instant::now();
    for _ in 0..k {
        let client = connector.connect().await.map_err(|e| e.to_string())?;
        client.quit().await.map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn run(a: &Args) -> Result<(Counts, f64), String> {
    let recipients: Vec<Address> = (1..=a.recipients)
        .map(|i| Address::new(&format!("rcpt{i}@example.com")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let from = Address::new("from@example.com").map_err(|e| e.to_string())?;
    let envelope = Envelope::new(Some(from), recipients).map_err(|e| e.to_string())?;
    let message = Bytes::from(build_message(a.size, "rcpt1@example.com"));
    let mut pool = Pool::builder(connector(a)?).max_connections(a.concurrency);
    if let Some(limiter) = limiter(a)? {
        pool = pool.rate_limiter(limiter).rate_wait(Duration::from_secs(3600));
    }
    if let Some(n) = a.retry {
        pool = pool.retry(RetryPolicy::new(n).base_delay(Duration::from_millis(100)));
    }
    let pool = pool.build();
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
    let stats = pool.stats();
    let counts = Counts {
        failed: summary.failed,
        ambiguous: summary.ambiguous,
        retried: summary.retried,
        opened: stats.opened,
        reused: stats.reused,
    };
    Ok((counts, secs))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "throughput: {e}\nusage: throughput --messages N --concurrency C --size BYTES --recipients R --port P [--threads T] [--batch B] [--tls] [--ca-file PEM] [--rate R | --rate-redis URL --rate-key NAME] [--retry N]\n       throughput --connect-only K --port P [--tls] [--ca-file PEM]"
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
    if let Some(k) = a.connect_only {
        return match rt.block_on(connect_only(&a, k)) {
            Ok(secs) => {
                let rate = if secs > 0.0 { k as f64 / secs } else { 0.0 };
                println!(
                    "{{\"client\":\"smtpkit\",\"connections\":{k},\"secs\":{secs:.4},\"conns_per_sec\":{rate:.1}}}"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("throughput: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(run(&a)) {
        Ok((c, secs)) => {
            let failed = c.failed;
            let sent = a.messages - failed;
            println!(
                "{{\"client\":\"smtpkit\",\"messages\":{},\"secs\":{secs:.4},\"msgs_per_sec\":{:.1},\"concurrency\":{},\"size\":{},\"recipients\":{},\"errors\":{failed},\"sent\":{sent},\"rejected\":{},\"ambiguous\":{},\"retried\":{},\"connections_opened\":{},\"connections_reused\":{}}}",
                a.messages,
                sent as f64 / secs,
                a.concurrency,
                a.size,
                a.recipients,
                failed - c.ambiguous,
                c.ambiguous,
                c.retried,
                c.opened,
                c.reused,
            );
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("throughput: {e}");
            ExitCode::FAILURE
        }
    }
}
