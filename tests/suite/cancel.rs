//! Cancellation is a state (RELIABILITY.md rule 13): a future dropped at any poll leaves
//! the connection cancelled, and from then on nothing is written on it except the
//! transport shutdown, whatever the caller calls next.
//!
//! Each test cuts an operation after exactly `n` polls, for every `n` until it completes,
//! against the in-process server over in-memory pipes (64 KiB of buffer, so a body of
//! several flights takes many polls), and asserts on what the server received: a prefix
//! of what a clean session writes, never more.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use smtpkit::pool::Pool;
use smtpkit::testing::TestServer;
use smtpkit::{Client, ClientBuilder, Envelope, Error, MessageOptions, TlsPolicy};

/// More polls than any send below takes: reaching it means the loop never completed.
const MAX_POLLS: usize = 5_000;

/// Polls `fut` at most `n` times; `None` when it was still pending then (it is dropped).
pub(crate) async fn poll_at_most<F: Future>(fut: F, n: usize) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut polls = 0;
    poll_fn(|cx| {
        polls += 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if polls >= n => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

fn builder(chunking: bool) -> ClientBuilder {
    Client::builder("localhost").tls(TlsPolicy::Disabled).chunking(chunking)
}

fn env() -> Envelope {
    Envelope::parse("a@example.com", &["b@example.com"]).unwrap()
}

/// A body of `size` octets or a little more. With `attack`, lines are shaped so that a
/// cut flight turns a dot into a line start: `pad.` CRLF followed by SMTP commands. Cut
/// after `pad`, the stream would carry CRLF `.` CRLF (the end of data) and then a spoofed
/// transaction in the victim's session.
fn body(size: usize, attack: bool) -> Bytes {
    let mut out = String::from("Subject: cancellation\r\n\r\n");
    let mut i = 0;
    while out.len() < size {
        if attack && i % 7 == 3 {
            out.push_str("padding-padding-padding.\r\nMAIL FROM:<spoof@evil.example>\r\n");
            out.push_str("RCPT TO:<victim@example.com>\r\nDATA\r\nSubject: spoofed\r\n\r\nspoofed\r\n");
            out.push_str(".\r\n..\r\n.leading dot\r\n");
        } else {
            out.push_str(&format!("line {i:06} of a long body, plain text that fills the flight\r\n"));
        }
        i += 1;
    }
    Bytes::from(out)
}

async fn connect(server: &TestServer, builder: ClientBuilder) -> Client {
    builder.build().unwrap().connect_with(server.connect_in_memory()).await.unwrap()
}

/// Waits (bounded) until the server has seen connection `conn` end.
async fn wait_closed(server: &TestServer, conn: usize) {
    for _ in 0..2_000 {
        if server.transcripts().get(conn).is_some_and(|t| t.contains("* connection closed")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("connection {conn} never closed");
}

/// What a clean session writes for one message, before its QUIT: a cancelled
/// connection's bytes must be a prefix of it.
async fn clean_session(server: &TestServer, builder: ClientBuilder, body: &Bytes) -> Vec<u8> {
    let conn = server.connection_count();
    let mut client = connect(server, builder).await;
    client.send(&env(), body.clone()).await.unwrap();
    client.quit().await.unwrap();
    wait_closed(server, conn).await;
    let mut bytes = server.received_bytes()[conn].clone();
    assert!(bytes.ends_with(b"QUIT\r\n"));
    bytes.truncate(bytes.len() - b"QUIT\r\n".len());
    bytes
}

#[track_caller]
fn assert_prefix(got: &[u8], clean: &[u8], what: &str) {
    if !clean.starts_with(got) {
        let at = got.iter().zip(clean).position(|(a, b)| a != b).unwrap_or(clean.len());
        let show =
            |b: &[u8]| String::from_utf8_lossy(&b[at.min(b.len())..(at + 80).min(b.len())]).into_owned();
        panic!(
            "{what}: after the cut the server received other bytes at offset {at} of {}: got {:?}, a clean \
             session writes {:?}",
            got.len(),
            show(got),
            show(clean),
        );
    }
}

/// No message but the caller's was ever received, and at most one per connection.
fn assert_no_second_message(server: &TestServer, body: &Bytes) {
    let messages = server.all_messages();
    for m in &messages {
        assert_eq!(m.mail_from, "a@example.com", "a spoofed transaction was received");
        assert!(m.data == body.as_ref(), "a message other than the caller's was received");
    }
    let mut conns: Vec<usize> = messages.iter().map(|m| m.connection).collect();
    let all = conns.len();
    conns.dedup();
    assert_eq!(conns.len(), all, "a connection carried a second message");
}

/// The usual cleanups after a cut, in turn: each must fail at once with `Cancelled`.
async fn cleanup_after_cut(client: Client, n: usize) -> Vec<Result<(), Error>> {
    let mut client = client;
    let mut results = Vec::new();
    match n % 4 {
        0 => {}
        1 => results.push(client.noop().await.map(drop)),
        2 => results.push(client.rset().await.map(drop)),
        _ => results.push(client.send(&env(), "Subject: again\r\n\r\nagain\r\n").await.map(drop)),
    }
    results.push(client.quit().await);
    results
}

async fn cut_send_at_every_poll(chunking: bool, attack: bool) {
    let server = TestServer::builder().chunking(chunking).start().await.unwrap();
    let body = body(600 * 1024, attack);
    let clean = clean_session(&server, builder(chunking), &body).await;
    let mut cuts = 0;
    let mut completed = false;
    for n in 1..MAX_POLLS {
        let conn = server.connection_count();
        let mut client = connect(&server, builder(chunking)).await;
        let envelope = env();
        let results = match poll_at_most(client.send(&envelope, body.clone()), n).await {
            Some(result) => {
                result.unwrap();
                client.quit().await.unwrap();
                completed = true;
                None
            }
            None => {
                cuts += 1;
                assert!(client.is_cancelled() && !client.is_reusable());
                Some(cleanup_after_cut(client, n).await)
            }
        };
        wait_closed(&server, conn).await;
        let got = &server.received_bytes()[conn];
        match results {
            None => assert_eq!(&got[..clean.len()], &clean[..], "the completed send"),
            Some(results) => {
                assert_prefix(got, &clean, &format!("cut after {n} polls"));
                for r in results {
                    assert!(matches!(r, Err(Error::Cancelled)), "after {n} polls: {r:?}");
                }
            }
        }
        if completed {
            break;
        }
    }
    assert!(completed, "the send never completed within {MAX_POLLS} polls");
    // The body took several flights, each cut somewhere.
    assert!(cuts >= 10, "only {cuts} cancellation points");
    assert_no_second_message(&server, &body);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    server.shutdown().await;
}

#[tokio::test]
async fn a_cut_data_send_is_never_resumed() {
    cut_send_at_every_poll(false, false).await;
}

#[tokio::test]
async fn a_cut_data_send_with_dot_lines_never_injects_commands() {
    cut_send_at_every_poll(false, true).await;
}

#[tokio::test]
async fn a_cut_bdat_send_is_never_resumed() {
    cut_send_at_every_poll(true, false).await;
}

#[tokio::test]
async fn a_cut_bdat_send_with_dot_lines_never_injects_commands() {
    cut_send_at_every_poll(true, true).await;
}

/// Every operation of a cancelled client fails at once and writes nothing: the submitted
/// message is reported, not lost, and not as sent.
#[tokio::test]
async fn every_operation_on_a_cancelled_client_fails_at_once() {
    let server = TestServer::builder().start().await.unwrap();
    let body = body(600 * 1024, true);
    let clean = clean_session(&server, builder(false), &body).await;
    // Cut half way through: count the polls a whole send takes, then cut at half.
    let whole = {
        let mut probe = connect(&server, builder(false)).await;
        let envelope = env();
        let mut n = 1;
        while poll_at_most(probe.send(&envelope, body.clone()), n).await.is_none() {
            n += 1;
            assert!(n < MAX_POLLS);
            drop(probe);
            probe = connect(&server, builder(false)).await;
        }
        drop(probe);
        n
    };
    let conn = server.connection_count();
    let mut client = connect(&server, builder(false)).await;
    let envelope = env();
    assert!(poll_at_most(client.send(&envelope, body.clone()), whole / 2).await.is_none(), "completed");
    let opts = MessageOptions::default;
    assert!(matches!(client.submit(env(), body.clone(), opts()), Err(Error::Cancelled)));
    assert!(client.next_outcome().await.is_none());
    assert!(!client.settle().await);
    assert!(!client.check_idle().await);
    assert!(matches!(client.noop().await, Err(Error::Cancelled)));
    assert!(matches!(client.rset().await, Err(Error::Cancelled)));
    assert!(matches!(client.vrfy("b").await, Err(Error::Cancelled)));
    assert!(matches!(client.ehlo().await, Err(Error::Cancelled)));
    assert!(matches!(client.command_line("HELP", "").await, Err(Error::Cancelled)));
    let many = client.send_many([(env(), body.clone(), opts())]).await;
    assert!(matches!(many.as_slice(), [Err(Error::Cancelled)]), "{many:?}");
    assert!(matches!(client.quit().await, Err(Error::Cancelled)));
    wait_closed(&server, conn).await;
    assert_prefix(&server.received_bytes()[conn], &clean, "after every operation");
    assert_no_second_message(&server, &body);
    server.shutdown().await;
}

/// A message submitted before the cancellation gets an outcome naming it, never silence
/// and never "closed by the server".
#[tokio::test]
async fn submitted_messages_fail_as_cancelled() {
    let server = TestServer::builder().start().await.unwrap();
    let mut client = connect(&server, builder(false)).await;
    let body = body(600 * 1024, false);
    let first = client.submit(env(), body.clone(), MessageOptions::default()).unwrap();
    let second = client.submit(env(), body.clone(), MessageOptions::default()).unwrap();
    assert!(poll_at_most(client.next_outcome(), 5).await.is_none());
    let (id, result) = client.next_outcome().await.unwrap();
    assert_eq!(id, first);
    let e = result.unwrap_err();
    assert!(
        matches!(&e, Error::Cancelled)
            || matches!(&e, Error::Ambiguous { cause, .. } if matches!(**cause, Error::Cancelled)),
        "{e:?}"
    );
    let (id, result) = client.next_outcome().await.unwrap();
    assert_eq!(id, second);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(client.next_outcome().await.is_none());
    assert!(matches!(client.quit().await, Err(Error::Cancelled)));
    server.shutdown().await;
}

/// A pooled connection dropped in the middle of a send is closed, never reused, and
/// nothing more is written on it.
#[tokio::test]
async fn a_pooled_client_dropped_mid_send_is_never_reused() {
    let server = Arc::new(TestServer::builder().chunking(true).start().await.unwrap());
    let body = body(600 * 1024, true);
    let clean = clean_session(&server, builder(true), &body).await;
    let connector = builder(true).build().unwrap();
    let pool = {
        let server = Arc::clone(&server);
        Pool::builder_with_connect_fn("in-memory", move || {
            let connector = connector.clone();
            let stream = server.connect_in_memory();
            async move { connector.connect_with(stream).await }
        })
        .max_connections(1)
        .build()
    };
    let mut cuts = 0;
    for n in 1..MAX_POLLS {
        let conn = server.connection_count();
        let mut pooled = pool.get().await.unwrap();
        let envelope = env();
        let outcome = poll_at_most(pooled.send(&envelope, body.clone()), n).await;
        drop(pooled);
        match outcome {
            Some(result) => {
                result.unwrap();
                break;
            }
            None => {
                cuts += 1;
                wait_closed(&server, conn).await;
                assert_prefix(
                    &server.received_bytes()[conn],
                    &clean,
                    &format!("pooled, cut after {n} polls"),
                );
                assert_eq!(pool.stats().idle, 0, "a cancelled connection went back to the pool");
            }
        }
    }
    assert!(cuts >= 10, "only {cuts} cancellation points");
    let stats = pool.stats();
    assert_eq!(stats.opened, cuts + 1, "{stats:?}");
    assert_no_second_message(&server, &body);
    pool.close().await;
    drop(pool);
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown().await,
        Err(_) => panic!("the server is still shared"),
    }
}

/// `Debug` shows the connection's state, never a queued body or a credential.
#[tokio::test]
async fn client_debug_never_prints_bodies_or_secrets() {
    let server = TestServer::builder().user("user", "pass-w0rd-secret").start().await.unwrap();
    let b = Client::builder("localhost")
        .tls(TlsPolicy::Disabled)
        .allow_insecure_auth(true)
        .credentials(smtpkit::Credentials::new("user", "pass-w0rd-secret"));
    let mut client = connect(&server, b).await;
    client
        .submit(
            env(),
            Bytes::from_static(b"Subject: s\r\n\r\nTOP-SECRET-BODY\r\n"),
            MessageOptions::default(),
        )
        .unwrap();
    let shown = format!("{client:?}");
    assert!(!shown.contains("TOP-SECRET-BODY"), "{shown}");
    assert!(!shown.contains("pass-w0rd-secret"), "{shown}");
    let shown = format!("{client:#?}");
    assert!(!shown.contains("TOP-SECRET-BODY") && !shown.contains("pass-w0rd-secret"), "{shown}");
    client.next_outcome().await.unwrap().1.unwrap();
    client.quit().await.unwrap();
    server.shutdown().await;
}
