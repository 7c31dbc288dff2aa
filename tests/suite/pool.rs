//! `smtpkit::Pool` and bulk sending against the in-process `TestServer`: real loopback
//! sockets, except where the paused tokio clock is used (then in-memory connections).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smtpkit::pool::{BulkOptions, Outgoing, Pool, PoolBuilder, PoolError, Progress};
use smtpkit::testing::{Fault, FaultRule, Step, TestServer};
use smtpkit::{Client, Connector, Envelope, Error, Timeouts, TlsPolicy};

/// Upper bound for anything that should finish at once on loopback; a failure here is a
/// hang, not a slow machine.
const LONG: Duration = Duration::from_secs(20);

fn connector(server: &TestServer, timeouts: Timeouts) -> Connector {
    Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .timeouts(timeouts)
        .build()
        .unwrap()
}

fn tcp_pool(server: &TestServer) -> PoolBuilder {
    Pool::builder(connector(server, Timeouts::uniform(LONG)))
}

/// A pool whose connections are in-memory pipes to `server`, for the paused clock.
fn memory_pool(server: &Arc<TestServer>, timeouts: Timeouts) -> PoolBuilder {
    let connector = connector(server, timeouts);
    let server = Arc::clone(server);
    Pool::builder_with_connect_fn("in-memory", move || {
        let connector = connector.clone();
        let stream = server.connect_in_memory();
        async move { connector.connect_with(stream).await }
    })
}

async fn stop(server: Arc<TestServer>) {
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown().await,
        Err(_) => panic!("the test server is still shared"),
    }
}

fn envelope(to: &[&str]) -> Envelope {
    Envelope::parse("from@example.com", to).unwrap()
}

fn message(i: usize) -> Bytes {
    Bytes::from(format!("Subject: message {i}\r\n\r\nBody of message {i}\r\n.dot line\r\n"))
}

/// Waits (bounded) until the server has seen `needle` on connection `conn`.
async fn wait_transcript(server: &TestServer, conn: usize, needle: &str) -> bool {
    for _ in 0..200 {
        if server.transcripts().get(conn).is_some_and(|t| t.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn noops(server: &TestServer) -> usize {
    server.transcripts().iter().map(|t| t.matches("C: NOOP").count()).sum()
}

#[tokio::test(start_paused = true)]
async fn connection_closed_by_server_while_idle_is_replaced() {
    let server =
        Arc::new(TestServer::builder().idle_timeout(Some(Duration::from_secs(30))).start().await.unwrap());
    let pool = memory_pool(&server, Timeouts::default()).probe_after(None).idle_timeout(None).build();
    let env = envelope(&["a@example.com"]);
    pool.get().await.unwrap().send(&env, message(0)).await.unwrap();
    // The server says 421 and closes after 30 s of silence; the pool notices at checkout.
    tokio::time::sleep(Duration::from_secs(31)).await;
    pool.get().await.unwrap().send(&env, message(1)).await.unwrap();

    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused, stats.discarded, stats.probes), (2, 0, 1, 0));
    assert_eq!((stats.messages, stats.failures, stats.idle, stats.in_use), (2, 0, 1, 0));
    let got = server.messages();
    assert_eq!(got.iter().map(|m| m.connection).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(got[1].data, message(1));
    drop(pool);
    stop(server).await;
}

#[tokio::test(start_paused = true)]
async fn unsolicited_421_marks_the_connection_dead() {
    let rule = FaultRule::new(Step::DataEnd, Fault::Unsolicited421 { idle: Duration::from_secs(1) })
        .on_connection(0)
        .once();
    let server = Arc::new(TestServer::builder().fault(rule).start().await.unwrap());
    let pool = memory_pool(&server, Timeouts::default()).build();
    let env = envelope(&["a@example.com"]);
    pool.get().await.unwrap().send(&env, message(0)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = pool.get().await.unwrap();
    conn.send(&env, message(1)).await.unwrap();
    drop(conn);

    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused, stats.discarded), (2, 0, 1));
    assert_eq!(server.fault_uses(), [1]);
    // Detected by reading what was pending, not by probing.
    assert_eq!(noops(&server), 0);
    assert_eq!(server.messages().iter().map(|m| m.connection).collect::<Vec<_>>(), [0, 1]);
    drop(pool);
    stop(server).await;
}

#[tokio::test(start_paused = true)]
async fn probe_only_after_the_idle_threshold_and_limits_on_age() {
    let server = Arc::new(TestServer::builder().start().await.unwrap());
    let pool = memory_pool(&server, Timeouts::default())
        .probe_after(Some(Duration::from_secs(5)))
        .idle_timeout(Some(Duration::from_secs(60)))
        .max_lifetime(Some(Duration::from_secs(100)))
        .build();
    let env = envelope(&["a@example.com"]);
    for i in 0..3 {
        pool.get().await.unwrap().send(&env, message(i)).await.unwrap();
    }
    assert_eq!(noops(&server), 0, "no NOOP between messages sent back to back");

    tokio::time::sleep(Duration::from_secs(6)).await;
    pool.get().await.unwrap().send(&env, message(3)).await.unwrap();
    assert_eq!(noops(&server), 1, "one NOOP after 6 s idle");

    // Idle past the idle timeout: closed, a new connection is opened.
    tokio::time::sleep(Duration::from_secs(61)).await;
    pool.get().await.unwrap().send(&env, message(4)).await.unwrap();
    // Kept busy, but past its lifetime: retired when returned.
    for i in 5..8 {
        tokio::time::sleep(Duration::from_secs(40)).await;
        pool.get().await.unwrap().send(&env, message(i)).await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.probes, 3, "{stats:?}");
    assert_eq!((stats.opened, stats.reused, stats.discarded, stats.messages), (3, 5, 2, 8), "{stats:?}");
    let conns: Vec<usize> = server.messages().iter().map(|m| m.connection).collect();
    assert_eq!(conns, [0, 0, 0, 0, 1, 1, 1, 2]);
    // Both retired connections (idle too long, then too old) said goodbye.
    assert!(wait_transcript(&server, 0, "C: QUIT").await);
    assert!(wait_transcript(&server, 1, "C: QUIT").await);
    drop(pool);
    stop(server).await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_connection_never_comes_back() {
    let rule = FaultRule::new(Step::DataEnd, Fault::Silence).on_connection(0);
    let server = Arc::new(TestServer::builder().fault(rule).start().await.unwrap());
    let timeouts = Timeouts { data_end: Duration::from_secs(5), ..Timeouts::default() };
    let pool = memory_pool(&server, timeouts).build();
    let env = envelope(&["a@example.com"]);
    let err = pool.get().await.unwrap().send(&env, message(0)).await.unwrap_err();
    assert!(matches!(&err, Error::Ambiguous { cause, .. } if matches!(**cause, Error::Timeout(_))), "{err}");
    pool.get().await.unwrap().send(&env, message(1)).await.unwrap();
    let stats = pool.stats();
    assert_eq!(
        (stats.opened, stats.reused, stats.discarded, stats.messages, stats.failures),
        (2, 0, 1, 1, 1)
    );
    drop(pool);
    stop(server).await;
}

#[tokio::test]
async fn waits_for_a_slot_are_bounded_and_typed() {
    let server = TestServer::builder().start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(1).wait_timeout(Duration::from_millis(200)).build();
    let held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout(d) if d == Duration::from_millis(200)), "{err}");
    assert!(err.is_transient());
    drop(held);
    // The slot is free again, and the connection is reused.
    pool.get().await.unwrap().send(&envelope(&["a@example.com"]), message(0)).await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused), (1, 1));
    server.shutdown().await;
}

#[tokio::test]
async fn more_concurrent_senders_than_connections() {
    let server = TestServer::builder().start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(2).wait_timeout(LONG).build();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut conn = pool.get().await?;
            assert!(pool.stats().in_use <= 2);
            conn.send(&envelope(&["a@example.com"]), message(i)).await.map_err(PoolError::from)
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert!(server.connection_count() <= 2, "{} connections", server.connection_count());
    let stats = pool.stats();
    assert_eq!(stats.opened as usize, server.connection_count());
    assert_eq!(stats.opened + stats.reused, 12);
    assert_eq!((stats.messages, stats.failures, stats.in_use), (12, 0, 0));
    let mut got: Vec<Vec<u8>> = server.messages().into_iter().map(|m| m.data).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..12).map(|i| message(i).to_vec()).collect();
    want.sort();
    assert_eq!(got, want);
    server.shutdown().await;
}

#[tokio::test]
async fn a_hung_connection_does_not_block_the_others() {
    let rule = FaultRule::new(Step::DataEnd, Fault::Silence).on_connection(0);
    let server = TestServer::builder().fault(rule).start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(2).wait_timeout(LONG).build();
    let env = envelope(&["a@example.com"]);
    let mut hung = pool.get().await.unwrap();
    let stuck = {
        let env = env.clone();
        tokio::spawn(async move { hung.send(&env, message(0)).await })
    };
    // Wait (bounded) until the server has gone silent on it.
    for _ in 0..500 {
        if server.fault_uses() == [1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.fault_uses(), [1]);
    // The other slot still works, repeatedly.
    for i in 1..4 {
        tokio::time::timeout(LONG, pool.get().await.unwrap().send(&env, message(i))).await.unwrap().unwrap();
    }
    assert!(!stuck.is_finished());
    // Cancelling the hung send: its connection is closed, never pooled.
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    pool.get().await.unwrap().send(&env, message(4)).await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused, stats.discarded, stats.messages), (2, 3, 1, 4), "{stats:?}");
    assert_eq!(server.messages().iter().map(|m| m.connection).collect::<Vec<_>>(), [1, 1, 1, 1]);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_wakes_waiters_and_quits_idle_connections() {
    let server = TestServer::builder().start().await.unwrap();
    let env = envelope(&["a@example.com"]);

    // A caller waiting for the only slot is woken with a typed error.
    let pool = tcp_pool(&server).max_connections(1).wait_timeout(LONG).build();
    let mut held = pool.get().await.unwrap();
    held.send(&env, message(0)).await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(LONG, pool.close()).await.unwrap();
    assert!(pool.is_closed());
    let err = tokio::time::timeout(LONG, waiter).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, PoolError::Closed), "{err}");
    assert!(matches!(pool.get().await.unwrap_err(), PoolError::Closed));
    // In use at shutdown: QUIT when it comes back, never parked again.
    drop(held);
    assert!(wait_transcript(&server, 0, "C: QUIT").await);
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.discarded, stats.idle, stats.in_use), (1, 1, 0, 0), "{stats:?}");

    // Idle connections get QUIT during close.
    let pool = tcp_pool(&server).max_connections(2).build();
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    a.send(&env, message(1)).await.unwrap();
    b.send(&env, message(2)).await.unwrap();
    drop((a, b));
    assert_eq!(pool.stats().idle, 2);
    tokio::time::timeout(LONG, pool.close()).await.unwrap();
    for conn in 1..3 {
        assert!(wait_transcript(&server, conn, "C: QUIT").await, "no QUIT on connection {conn}");
    }
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.discarded, stats.idle, stats.in_use), (2, 2, 0, 0), "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn max_messages_per_connection_and_exact_counters() {
    let server =
        TestServer::builder().reject_recipient("bad@example.com", 550, "5.1.1 no").start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(1).max_messages(Some(2)).build();
    let mut outgoing: Vec<Outgoing> =
        (0..5).map(|i| Outgoing::new(envelope(&["a@example.com"]), message(i))).collect();
    outgoing.push(Outgoing::new(envelope(&["bad@example.com"]), message(5)));
    let outcomes = pool.send_all_with(outgoing, &BulkOptions::default().batch(10), |_| {}).await;
    assert!(outcomes[..5].iter().all(|o| o.is_sent()));
    let err = outcomes[5].error().and_then(PoolError::smtp).unwrap();
    assert!(matches!(err, Error::RecipientsRejected { .. }), "{err}");
    let conns: Vec<usize> = server.messages().iter().map(|m| m.connection).collect();
    assert_eq!(conns, [0, 0, 1, 1, 2]);
    let stats = pool.stats();
    // Connections 0, 1 and 2 each retired after 2 transactions.
    assert_eq!((stats.opened, stats.discarded), (3, 3), "{stats:?}");
    assert_eq!((stats.messages, stats.failures, stats.idle), (5, 1, 0), "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn bulk_results_come_back_in_input_order_with_progress() {
    let server =
        TestServer::builder().reject_recipient("r7@example.com", 550, "5.1.1 no").start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(3).build();
    let outgoing: Vec<(Envelope, Bytes)> =
        (0..40).map(|i| (envelope(&[&format!("r{i}@example.com")]), message(i))).collect();
    let mut seen: Vec<Progress> = Vec::new();
    let outcomes = pool.send_all_with(outgoing, &BulkOptions::default().batch(4), |p| seen.push(*p)).await;
    assert_eq!(outcomes.len(), 40);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.is_sent(), i != 7, "message {i}: {:?}", o.error());
        if i != 7 {
            assert_eq!(o.accepted().next().unwrap().address.as_str(), format!("r{i}@example.com"));
        }
    }
    assert_eq!(seen.len(), 40);
    assert_eq!((seen[39].completed, seen[39].failed), (40, 1));
    let mut indexes: Vec<usize> = seen.iter().map(|p| p.index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..40).collect::<Vec<_>>());
    // Byte-exact, each once, to the right recipient.
    let got = server.messages();
    assert_eq!(got.len(), 39);
    for m in got {
        let i: usize = m.rcpt_to[0].trim_start_matches('r').trim_end_matches("@example.com").parse().unwrap();
        assert_eq!(m.data, message(i));
    }
    assert!(server.connection_count() <= 3);
    // The refused message left its connection clean (after RSET): nothing was discarded.
    assert_eq!(pool.stats().discarded, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn more_than_100_recipients_are_split() {
    let server = TestServer::builder().start().await.unwrap();
    let pool = tcp_pool(&server).build();
    let to: Vec<String> = (0..250).map(|i| format!("user{i}@example.com")).collect();
    let to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let outcomes = pool.send_all([Outgoing::new(envelope(&to_refs), message(0))]).await;
    assert_eq!(outcomes.len(), 1);
    let o = &outcomes[0];
    assert!(o.is_sent());
    assert_eq!(o.transactions.len(), 3);
    assert_eq!(o.accepted().count(), 250);
    let got = server.messages();
    assert_eq!(got.iter().map(|m| m.rcpt_to.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let all: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(all, to);
    assert!(got.iter().all(|m| m.data == message(0)));
    server.shutdown().await;
}

#[tokio::test]
async fn recipients_deferred_with_452_go_in_a_new_transaction() {
    let server = TestServer::builder().max_recipients(3).start().await.unwrap();
    let pool = tcp_pool(&server).build();
    let to: Vec<String> = (0..8).map(|i| format!("user{i}@example.com")).collect();
    let to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let outcomes = pool
        .send_all([
            Outgoing::new(envelope(&to_refs), message(0)),
            Outgoing::new(envelope(&["solo@example.com"]), message(1)),
        ])
        .await;
    let o = &outcomes[0];
    assert!(o.is_sent(), "{:?}", o.error());
    assert_eq!(o.transactions.len(), 3);
    assert_eq!(o.rejected().count(), 0, "deferred recipients are reported once, where they went");
    let accepted: Vec<String> = o.accepted().map(|r| r.address.to_string()).collect();
    assert_eq!(accepted, to);
    assert!(outcomes[1].is_sent());
    let mut got: Vec<(Vec<String>, Vec<u8>)> =
        server.messages().into_iter().map(|m| (m.rcpt_to, m.data)).collect();
    got.sort();
    let mut want = vec![
        (to[0..3].to_vec(), message(0).to_vec()),
        (to[3..6].to_vec(), message(0).to_vec()),
        (to[6..8].to_vec(), message(0).to_vec()),
        (vec!["solo@example.com".to_string()], message(1).to_vec()),
    ];
    want.sort();
    assert_eq!(got, want);
    server.shutdown().await;
}

#[tokio::test]
async fn a_transaction_lost_before_its_data_is_retried_once_elsewhere() {
    // The first connection drops right after MAIL: nothing was committed, so the batch
    // goes again on a new connection; each message arrives exactly once.
    let rule = FaultRule::new(Step::Mail, Fault::Close).on_connection(0);
    let server = TestServer::builder().fault(rule).start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(1).build();
    let outgoing = (0..6).map(|i| Outgoing::new(envelope(&["a@example.com"]), message(i)));
    let outcomes = pool.send_all(outgoing).await;
    assert!(outcomes.iter().all(|o| o.is_sent()));
    let mut got: Vec<Vec<u8>> = server.messages().into_iter().map(|m| m.data).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..6).map(|i| message(i).to_vec()).collect();
    want.sort();
    assert_eq!(got, want);
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.discarded, stats.messages), (2, 1, 6), "{stats:?}");
    // The messages queued on the dropped connection failed once each (how many depends
    // on how the batch was cut), then went through.
    assert!((1..=6).contains(&stats.failures), "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_ambiguous_end_of_data_is_never_resent() {
    let rule = FaultRule::new(Step::DataEnd, Fault::CommitThenClose).once();
    let server = TestServer::builder().fault(rule).start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(1).build();
    let outcomes = pool.send_all([Outgoing::new(envelope(&["a@example.com"]), message(0))]).await;
    let err = outcomes[0].error().unwrap();
    assert!(err.is_ambiguous(), "{err}");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.connection_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn send_each_hands_over_every_outcome_once() {
    let server =
        TestServer::builder().reject_recipient("r3@example.com", 550, "5.1.1 no").start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(2).build();
    let outgoing = (0..25).map(|i| Outgoing::new(envelope(&[&format!("r{i}@example.com")]), message(i)));
    let mut seen = vec![0usize; 25];
    let summary = pool
        .send_each(outgoing, &BulkOptions::default().batch(4), |index, outcome| {
            seen[index] += 1;
            assert_eq!(outcome.is_sent(), index != 3, "message {index}");
        })
        .await;
    assert_eq!(seen, vec![1; 25]);
    assert_eq!((summary.sent, summary.failed), (24, 1));
    assert_eq!(server.messages().len(), 24);
    server.shutdown().await;
}

/// RFC 5321 4.1.1.9: NOOP is answered "250 OK". A probe answered otherwise (here `221`,
/// a server saying goodbye) fails: the connection is closed, never handed out.
#[tokio::test(start_paused = true)]
async fn the_idle_probe_accepts_only_250() {
    let rule = FaultRule::new(Step::Noop, Fault::Reply { code: 221, text: "2.0.0 closing".into() });
    let server = Arc::new(TestServer::builder().fault(rule).start().await.unwrap());
    let pool = memory_pool(&server, Timeouts::default()).probe_after(Some(Duration::from_secs(5))).build();
    let env = envelope(&["a@example.com"]);
    pool.get().await.unwrap().send(&env, message(0)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    pool.get().await.unwrap().send(&env, message(1)).await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.probes, stats.discarded), (2, 1, 1), "{stats:?}");
    assert_eq!(server.messages().iter().map(|m| m.connection).collect::<Vec<_>>(), [0, 1]);
    drop(pool);
    stop(server).await;
}

/// `PoolError` answers the same questions as `Error` (issue 11 #3), and `Error` names its
/// phase and whether a deadline passed.
#[tokio::test]
async fn pool_errors_offer_the_predicates_of_errors() {
    use smtpkit::{Fault as Blame, Phase};
    let server =
        TestServer::builder().reject_recipient("bad@example.com", 550, "5.1.1 no").start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(1).wait_timeout(Duration::from_millis(100)).build();
    let err = PoolError::from(
        pool.get().await.unwrap().send(&envelope(&["bad@example.com"]), message(0)).await.unwrap_err(),
    );
    assert!(err.is_permanent() && !err.is_transient() && !err.is_ambiguous() && !err.is_timeout(), "{err}");
    assert_eq!((err.fault(), err.phase()), (Blame::Server, Some(Phase::Rcpt)));
    assert_eq!(err.recipients().len(), 1);
    let held = pool.get().await.unwrap();
    let busy = pool.get().await.unwrap_err();
    assert!(busy.is_timeout() && busy.is_transient() && !busy.is_permanent(), "{busy}");
    assert_eq!((busy.fault(), busy.phase()), (Blame::Network, None));
    drop(held);
    let timeout = Error::Ambiguous { cause: Box::new(Error::Timeout(Phase::DataEnd)), recipients: vec![] };
    assert!(timeout.is_timeout());
    assert_eq!(timeout.phase(), Some(Phase::DataEnd));
    pool.close().await;
    assert!(pool.get().await.unwrap_err().is_permanent());
    server.shutdown().await;
}

/// Issue 11 #4: a bulk worker keeps its connection for every message, so counting only
/// checkouts served from idle read `reused == 0` after thousands of messages. Every message
/// after the first on a connection now counts as a reuse.
#[tokio::test]
async fn bulk_sending_counts_every_further_message_on_a_connection_as_reused() {
    let server = TestServer::builder().start().await.unwrap();
    let pool = tcp_pool(&server).max_connections(2).build();
    let outgoing: Vec<Outgoing> =
        (0..200).map(|i| Outgoing::new(envelope(&["a@example.com"]), message(i))).collect();
    let outcomes = pool.send_all_with(outgoing, &BulkOptions::default().batch(10), |_| {}).await;
    assert!(outcomes.iter().all(|o| o.is_sent()));
    let stats = pool.stats();
    assert_eq!((stats.messages, stats.failures), (200, 0), "{stats:?}");
    assert!(stats.opened <= 2, "{stats:?}");
    // Each message but the first on each connection went over a reused connection.
    assert!(stats.reused >= 200 - stats.opened, "{stats:?}");
    server.shutdown().await;
}
