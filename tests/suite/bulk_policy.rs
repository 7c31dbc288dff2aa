//! The pool's rate limit, retries and metrics (issue 14) against the in-process server:
//! greylisting, per-recipient 4xx, ambiguous outcomes, and counters that add up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smtpkit::metrics::{Counter, Registry};
use smtpkit::pool::{BreakerConfig, BulkOptions, Outgoing, Pool, PoolBuilder, PoolError};
use smtpkit::rate::{LocalLimiter, RateError};
use smtpkit::retry::{RetryPolicy, RetryReason};
use smtpkit::testing::{Fault, FaultRule, Step, TestServer};
use smtpkit::{Client, Envelope, Timeouts, TlsPolicy};

const LONG: Duration = Duration::from_secs(20);

fn pool(server: &TestServer) -> PoolBuilder {
    let connector = Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .timeouts(Timeouts::uniform(LONG))
        .build()
        .unwrap();
    Pool::builder(connector)
}

/// In-memory connections, for the paused clock.
fn memory_pool(server: &Arc<TestServer>) -> PoolBuilder {
    let connector = Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .timeouts(Timeouts::uniform(LONG))
        .build()
        .unwrap();
    let server = Arc::clone(server);
    Pool::builder_with_connect_fn("in-memory", move || {
        let connector = connector.clone();
        let stream = server.connect_in_memory();
        async move { connector.connect_with(stream).await }
    })
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts).base_delay(Duration::from_millis(20)).max_delay(Duration::from_millis(100))
}

fn message(i: usize) -> Bytes {
    Bytes::from(format!("Subject: message {i}\r\n\r\nBody of message {i}\r\n"))
}

fn outgoing(n: usize, to: &[&str]) -> Vec<Outgoing> {
    let envelope = Envelope::parse("from@example.com", to).unwrap();
    (0..n).map(|i| Outgoing::new(envelope.clone(), message(i))).collect()
}

/// Committed messages per body: every value must be 1 for "never a duplicate".
fn deliveries(server: &TestServer) -> HashMap<Vec<u8>, usize> {
    let mut seen = HashMap::new();
    for m in server.messages() {
        *seen.entry(m.data).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn greylisted_messages_are_delivered_on_the_second_attempt_once() {
    let server = TestServer::builder().greylist(true).start().await.unwrap();
    let pool = pool(&server).max_connections(3).retry(quick_retries(3)).build();
    let outcomes =
        pool.send_all_with(outgoing(30, &["to@example.com"]), &BulkOptions::default(), |_| {}).await;
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.is_sent(), "message {i}: {:?}", o.error());
        assert_eq!(o.attempts, 2, "message {i}");
        assert_eq!(o.retries.len(), 1);
        assert_eq!(o.retries[0].reason, RetryReason::Greylisted { code: 451 });
        assert_eq!(o.retries[0].reply.as_ref().map(|r| r.code().0), Some(451));
    }
    // The server's record: each message refused once, then committed exactly once.
    let committed = deliveries(&server);
    assert_eq!(committed.len(), 30);
    assert!(committed.values().all(|&n| n == 1), "{committed:?}");
    assert_eq!(server.all_messages().len(), 60);
    pool.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_policy_greylisting_is_not_retried() {
    let server = TestServer::builder().greylist(true).start().await.unwrap();
    let pool = pool(&server).build();
    let outcome = pool.send(outgoing(1, &["to@example.com"]).remove(0)).await;
    assert!(!outcome.is_sent());
    assert_eq!(outcome.attempts, 1);
    assert!(server.messages().is_empty());
    pool.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_ambiguous_outcome_is_never_retried() {
    let server = TestServer::builder()
        .fault(FaultRule::new(Step::DataEnd, Fault::CommitThenClose).once())
        .start()
        .await
        .unwrap();
    let pool = pool(&server).retry(quick_retries(5)).build();
    let outcome = pool.send(outgoing(1, &["to@example.com"]).remove(0)).await;
    assert!(outcome.is_ambiguous(), "{:?}", outcome.error());
    assert_eq!(outcome.attempts, 1);
    assert!(outcome.retries.is_empty());
    // Delivered once (the server committed it), never a second time.
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.connection_count(), 1);
    pool.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_5xx_is_never_retried() {
    let server = TestServer::builder()
        .on(Step::DataEnd, Fault::Reply { code: 554, text: "5.7.1 no".into() })
        .start()
        .await
        .unwrap();
    let pool = pool(&server).retry(quick_retries(5)).build();
    let outcome = pool.send(outgoing(1, &["to@example.com"]).remove(0)).await;
    assert!(!outcome.is_sent());
    assert_eq!((outcome.attempts, outcome.retries.len()), (1, 0));
    assert_eq!(server.all_messages().len(), 1);
    pool.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn only_the_recipients_refused_with_4xx_go_again() {
    let server = TestServer::builder()
        .fault(
            FaultRule::new(Step::Rcpt(1), Fault::Reply { code: 450, text: "4.2.1 try later".into() }).once(),
        )
        .start()
        .await
        .unwrap();
    let pool = pool(&server).retry(quick_retries(3)).build();
    let to = ["a@example.com", "b@example.com", "c@example.com"];
    let outcome = pool.send(outgoing(1, &to).remove(0)).await;
    assert!(outcome.is_sent(), "{:?}", outcome.error());
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.retries[0].reason, RetryReason::Recipients { count: 1 });
    let mut accepted: Vec<String> = outcome.accepted().map(|r| r.address.to_string()).collect();
    accepted.sort();
    assert_eq!(accepted, to);
    assert_eq!(outcome.rejected().count(), 0);
    // Two transactions: a and c first, then b alone; nobody got it twice.
    let got: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let mut all: Vec<String> = got.concat();
    all.sort();
    assert_eq!(all, to);
    pool.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_add_up() {
    let server = TestServer::builder()
        .fault(FaultRule::new(Step::DataEnd, Fault::Reply { code: 554, text: "5.7.1 no".into() }).times(3))
        .fault(FaultRule::new(Step::Mail, Fault::Reply { code: 451, text: "4.3.0 later".into() }).times(2))
        .reject_recipient("nobody@example.com", 550, "5.1.1 no such user")
        .start()
        .await
        .unwrap();
    let registry = Arc::new(Registry::new());
    let pool = pool(&server).max_connections(2).metrics(registry.clone()).build();
    let mut messages = outgoing(20, &["to@example.com"]);
    messages.extend(outgoing(2, &["nobody@example.com"]));
    let summary = pool.send_each(messages, &BulkOptions::default().batch(4), |_, _| {}).await;
    let get = |c| registry.get(c);
    let rejected = get(Counter::MessagesRejectedTransient)
        + get(Counter::MessagesRejectedPermanent)
        + get(Counter::MessagesFailedOther);
    assert_eq!(get(Counter::MessagesSubmitted), 22);
    assert_eq!(get(Counter::MessagesSent) + rejected + get(Counter::MessagesAmbiguous), 22);
    assert_eq!(get(Counter::MessagesSent), summary.sent as u64);
    assert_eq!(get(Counter::MessagesRejectedPermanent), 5, "{}", registry.render_prometheus());
    assert_eq!(get(Counter::MessagesRejectedTransient), 2);
    assert_eq!(get(Counter::MessagesSent), 15);
    assert_eq!(get(Counter::RecipientsRefused), 2);
    let opened = get(Counter::ConnectionsOpened);
    assert!((1..=2).contains(&opened), "{opened}");
    pool.close().await;
    assert_eq!(get(Counter::ConnectionsDiscarded), opened);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pool_holds_its_rate_limit() {
    let server = Arc::new(TestServer::builder().start().await.unwrap());
    let limiter = Arc::new(LocalLimiter::per_second(50.0).unwrap());
    let pool = memory_pool(&server).max_connections(4).rate_limiter(limiter).build();
    let start = tokio::time::Instant::now();
    let outcomes = pool.send_all(outgoing(101, &["to@example.com"])).await;
    let elapsed = start.elapsed();
    assert!(outcomes.iter().all(|o| o.is_sent()));
    // 100 intervals of 20 ms after the first: never faster, but for the last slot's
    // millisecond of timer tolerance (time is tokio's paused clock, which only moves when
    // every task waits).
    assert!(elapsed >= Duration::from_millis(1999), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2100), "{elapsed:?}");
    pool.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_token_past_the_rate_wait_is_a_typed_error() {
    let server = Arc::new(TestServer::builder().start().await.unwrap());
    let limiter = Arc::new(LocalLimiter::per_second(1.0).unwrap());
    let pool = memory_pool(&server).rate_limiter(limiter).rate_wait(Duration::from_millis(1500)).build();
    let outcomes = pool.send_all(outgoing(3, &["to@example.com"])).await;
    assert!(outcomes[0].is_sent() && outcomes[1].is_sent());
    assert!(
        matches!(outcomes[2].error(), Some(PoolError::Rate(RateError::Deadline { .. }))),
        "{:?}",
        outcomes[2].error()
    );
    assert_eq!(server.messages().len(), 2);
    pool.close().await;
}

#[tokio::test]
async fn a_pool_stops_hammering_a_server_that_refuses_connections() {
    // A port nothing listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let connector = Client::builder("127.0.0.1").port(port).tls(TlsPolicy::Disabled).build().unwrap();
    let config = BreakerConfig::default()
        .threshold(3)
        .base_delay(Duration::from_millis(10))
        .cooldown(Duration::from_millis(300));
    let pool = Pool::builder(connector).breaker(config).build();
    for _ in 0..3 {
        let e = pool.get().await.unwrap_err();
        assert!(matches!(e, PoolError::Smtp(_)), "{e:?}");
    }
    // Open: refused at once, without a socket.
    for _ in 0..10 {
        let e = pool.get().await.unwrap_err();
        assert!(
            matches!(e, PoolError::Unavailable { retry_after } if retry_after <= Duration::from_millis(300)),
            "{e:?}"
        );
    }
    assert_eq!(pool.stats().connect_failures, 3);
    assert_eq!(pool.breaker_stats().opened, 1);
    assert_eq!(pool.breaker_stats().fast_failures, 10);
    // After cooling, one trial; it fails, so the breaker opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(pool.get().await.unwrap_err(), PoolError::Smtp(_)));
    assert!(matches!(pool.get().await.unwrap_err(), PoolError::Unavailable { .. }));
    assert_eq!(pool.stats().connect_failures, 4);
    assert_eq!(pool.breaker_stats().opened, 2);
}

#[tokio::test]
async fn recipients_refused_for_good_stay_in_the_outcome_when_others_are_retried() {
    // Every recipient refused on the first attempt: one for good (550), one for now (450).
    let server = TestServer::builder()
        .reject_recipient("gone@example.com", 550, "5.1.1 no such user")
        .fault(
            FaultRule::new(Step::Rcpt(1), Fault::Reply { code: 450, text: "4.2.1 try later".into() }).once(),
        )
        .start()
        .await
        .unwrap();
    let pool = pool(&server).retry(quick_retries(3)).build();
    let outcome = pool.send(outgoing(1, &["gone@example.com", "later@example.com"]).remove(0)).await;
    assert!(outcome.is_sent(), "{:?}", outcome.error());
    assert_eq!(outcome.attempts, 2);
    let accepted: Vec<String> = outcome.accepted().map(|r| r.address.to_string()).collect();
    assert_eq!(accepted, ["later@example.com"]);
    let refused: Vec<(String, u16)> =
        outcome.rejected().map(|r| (r.address.to_string(), r.reply.code().0)).collect();
    assert_eq!(refused, [("gone@example.com".to_string(), 550)]);
    // gone@ was never asked again.
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.messages()[0].rcpt_to, ["later@example.com"]);
    pool.close().await;
    server.shutdown().await;
}
