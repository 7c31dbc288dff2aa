//! Round trips per message on a reused connection, counted exactly.
//!
//! The client talks to the in-process [`TestServer`] through a link that delivers every
//! byte the server writes `DELAY` after it was written (client to server is instant), on
//! tokio's paused clock. Processing takes no virtual time, so the time a send takes is
//! exactly `DELAY` times the number of round trips it waited for; the link also counts the
//! distinct instants at which the server wrote (its reply flights). Both counts are
//! deterministic and asserted; nothing here measures wall-clock speed.
//!
//! Print the table with `cargo test --test suite round_trips -- --nocapture`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, MessageOptions, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One-way delay of the server's replies.
const DELAY: Duration = Duration::from_millis(100);
/// Messages measured per case, after one warm-up message on the same connection.
const MESSAGES: usize = 10;

/// A connection to `server` whose server-to-client direction is delayed by `DELAY`.
/// Returns the client's end and a counter of reply flights (distinct server write instants).
fn delayed_link(server: &TestServer) -> (DuplexStream, Arc<AtomicUsize>) {
    let upstream = server.connect_in_memory();
    let (client_end, proxy_end) = tokio::io::duplex(1 << 20);
    let (mut from_client, mut to_client) = tokio::io::split(proxy_end);
    let (mut from_server, mut to_server) = tokio::io::split(upstream);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
        let _ = to_server.shutdown().await;
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    let flights = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&flights);
    tokio::spawn(async move {
        let mut last = None;
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at + DELAY).await;
            if last != Some(at) {
                last = Some(at);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            if to_client.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to_client.shutdown().await;
    });
    (client_end, flights)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `Client::send` for each message, one after the other.
    Send,
    /// One `Client::send_many` with all the messages.
    SendMany,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    server_pipelining: bool,
    server_chunking: bool,
    /// `None`: the builder's default (CHUNKING when offered).
    client_chunking: Option<bool>,
    recipients: usize,
    mode: Mode,
    /// Expected round trips for `MESSAGES` messages.
    expected: usize,
}

#[derive(Debug, PartialEq, Eq)]
struct Measured {
    /// Connect to ready: greeting and EHLO.
    connect: usize,
    /// Round trips for `MESSAGES` messages, from elapsed virtual time.
    by_clock: usize,
    /// The same, from the link's count of reply flights.
    by_flights: usize,
}

fn rounds(elapsed: Duration) -> usize {
    let r = elapsed.as_secs_f64() / DELAY.as_secs_f64();
    assert!((r - r.round()).abs() < 0.05, "elapsed {elapsed:?} is not a whole number of delays");
    r.round() as usize
}

async fn measure(case: Case) -> Measured {
    let server = TestServer::builder()
        .pipelining(case.server_pipelining)
        .chunking(case.server_chunking)
        .start()
        .await
        .expect("test server");
    let (stream, flights) = delayed_link(&server);
    let builder = Client::builder("localhost").tls(TlsPolicy::Disabled);
    let builder = match case.client_chunking {
        Some(on) => builder.chunking(on),
        None => builder,
    };
    let connector = builder.build().expect("client config");
    let start = Instant::now();
    let mut client = connector.connect_with(stream).await.expect("connect");
    let connect = rounds(start.elapsed());

    let to: Vec<String> = (0..case.recipients).map(|i| format!("rcpt{i}@example.net")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let envelope = Envelope::parse("sender@example.com", &to).expect("envelope");
    let body = Bytes::from_static(b"Subject: round trips\r\n\r\nHello.\r\n.leading dot\r\n");
    // Warm up: the connection has carried a message before the count starts.
    client.send(&envelope, body.clone()).await.expect("warm-up message");

    let before = flights.load(Ordering::Relaxed);
    let start = Instant::now();
    match case.mode {
        Mode::Send => {
            for _ in 0..MESSAGES {
                client.send(&envelope, body.clone()).await.expect("message accepted");
            }
        }
        Mode::SendMany => {
            let batch = (0..MESSAGES).map(|_| (envelope.clone(), body.clone(), MessageOptions::default()));
            for result in client.send_many(batch).await {
                result.expect("message accepted");
            }
        }
    }
    let by_clock = rounds(start.elapsed());
    let by_flights = flights.load(Ordering::Relaxed) - before;
    assert!(client.is_reusable());
    client.quit().await.expect("quit");
    assert_eq!(server.messages().len(), MESSAGES + 1, "{}: every message delivered", case.name);
    Measured { connect, by_clock, by_flights }
}

const fn case(
    name: &'static str,
    (server_pipelining, server_chunking, client_chunking): (bool, bool, Option<bool>),
    recipients: usize,
    mode: Mode,
    expected: usize,
) -> Case {
    Case { name, server_pipelining, server_chunking, client_chunking, recipients, mode, expected }
}

const DATA: (bool, bool, Option<bool>) = (true, false, Some(false));
const LOCKSTEP: (bool, bool, Option<bool>) = (false, false, Some(false));
const BDAT: (bool, bool, Option<bool>) = (true, true, Some(true));
const BDAT_LOCKSTEP: (bool, bool, Option<bool>) = (false, true, Some(true));
/// The server offers PIPELINING and CHUNKING; the client keeps its defaults.
const DEFAULTS: (bool, bool, Option<bool>) = (true, true, None);
/// The same server; the client turns CHUNKING off.
const NO_CHUNKING: (bool, bool, Option<bool>) = (true, true, Some(false));

const CASES: [Case; 12] = [
    // Steady state 1 per message: after the 354, the body, the dot and the next message's
    // MAIL/RCPT/DATA leave in one write; only the first MAIL/RCPT/DATA costs an extra one.
    case("PIPELINING + DATA, send_many", DATA, 1, Mode::SendMany, MESSAGES + 1),
    case("PIPELINING + DATA, send_many, 10 rcpt", DATA, 10, Mode::SendMany, MESSAGES + 1),
    // MAIL/RCPT/DATA in one flight, then body + dot: 2 per message.
    case("PIPELINING + DATA, send", DATA, 1, Mode::Send, 2 * MESSAGES),
    case("PIPELINING + DATA, send, 10 rcpt", DATA, 10, Mode::Send, 2 * MESSAGES),
    // Lock-step: MAIL, RCPT (one per recipient), DATA, dot.
    case("no PIPELINING, send_many", LOCKSTEP, 1, Mode::SendMany, 4 * MESSAGES),
    case("no PIPELINING, send", LOCKSTEP, 1, Mode::Send, 4 * MESSAGES),
    case("no PIPELINING, send, 10 rcpt", LOCKSTEP, 10, Mode::Send, 13 * MESSAGES),
    // MAIL, RCPT, BDAT n LAST and the data in one flight.
    case("PIPELINING + CHUNKING, send_many", BDAT, 1, Mode::SendMany, MESSAGES),
    case("PIPELINING + CHUNKING, send", BDAT, 1, Mode::Send, MESSAGES),
    // Lock-step: MAIL, RCPT, BDAT LAST.
    case("CHUNKING, no PIPELINING, send", BDAT_LOCKSTEP, 1, Mode::Send, 3 * MESSAGES),
    // CHUNKING is the default when offered: one round trip per single send.
    case("PIPELINING + CHUNKING offered, default client, send", DEFAULTS, 1, Mode::Send, MESSAGES),
    case("PIPELINING + CHUNKING offered, chunking(false), send", NO_CHUNKING, 1, Mode::Send, 2 * MESSAGES),
];

#[tokio::test(start_paused = true)]
async fn round_trips_per_message() {
    let mut table = String::from(
        "| case | recipients | round trips for 10 messages | per message | connect (greeting + EHLO) |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut wrong = Vec::new();
    for case in CASES {
        let m = measure(case).await;
        table.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} |\n",
            case.name,
            case.recipients,
            m.by_clock,
            m.by_clock as f64 / MESSAGES as f64,
            m.connect
        ));
        if m.by_clock != case.expected || m.by_flights != case.expected || m.connect != 2 {
            wrong.push(format!("{}: expected {}, measured {m:?}", case.name, case.expected));
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "round trips differ:\n{}", wrong.join("\n"));
}

/// The bulk path streams: a connection takes the next batch before the previous one
/// drains, so small batches cost no extra round trip at their boundaries.
#[tokio::test(start_paused = true)]
async fn bulk_sending_streams_across_batches() {
    use smtpkit::pool::{BulkOptions, Outgoing, Pool};

    const BULK: usize = 20;
    let server = Arc::new(TestServer::builder().pipelining(true).start().await.expect("test server"));
    let connector = Client::builder("localhost").tls(TlsPolicy::Disabled).build().expect("client config");
    let linked = Arc::clone(&server);
    let pool = Pool::builder_with_connect_fn("delayed", move || {
        let (stream, _) = delayed_link(&linked);
        let connector = connector.clone();
        async move { connector.connect_with(stream).await }
    })
    .max_connections(1)
    .build();
    let envelope = Envelope::parse("sender@example.com", &["rcpt@example.net"]).expect("envelope");
    let body = Bytes::from_static(b"Subject: bulk\r\n\r\nHello.\r\n");
    let outgoing = (0..BULK).map(|_| Outgoing::new(envelope.clone(), body.clone()));
    // Batches of 4: five batch boundaries a draining connection would pay for.
    let options = BulkOptions::default().concurrency(1).batch(4);

    let start = Instant::now();
    let summary = pool.send_each(outgoing, &options, |_, outcome| assert!(outcome.is_sent())).await;
    let elapsed = rounds(start.elapsed());
    assert_eq!((summary.sent, summary.failed), (BULK, 0));
    // Greeting and EHLO (2), the first MAIL/RCPT/DATA (1), then one per message.
    assert_eq!(elapsed, BULK + 3, "round trips for {BULK} messages in batches of 4");
    assert_eq!(pool.stats().opened, 1);
    pool.close().await;
    assert_eq!(server.messages().len(), BULK);
}
