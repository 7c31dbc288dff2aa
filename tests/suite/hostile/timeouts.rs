//! Deadlines on the paused clock: no greeting, slow-loris, stalled multi-line replies, a
//! server that stops reading, a slow but legitimate final reply, every phase at its own
//! value, and cancellation at every await point.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use smtpkit::testing::{Fault, Step, TestServer};
use smtpkit::{Error, Phase, Timeouts, TlsPolicy};
use tokio::time::Instant;

use super::{assert_ambiguous, connect, env, plain, start, within};

const MIN: Duration = Duration::from_secs(60);

/// Distinct values so a phase firing at another phase's deadline shows.
fn distinct() -> Timeouts {
    let s = Duration::from_secs;
    Timeouts {
        connect: s(7),
        tls_handshake: s(9),
        greeting: s(11),
        command: s(13),
        mail: s(17),
        rcpt: s(19),
        data_init: s(23),
        data_block: s(29),
        data_end: s(31),
        quit: s(37),
    }
}

/// Asserts the wait was at least `limit` and at most `limit` + 10%.
#[track_caller]
fn assert_waited(start: Instant, limit: Duration) {
    let waited = start.elapsed();
    assert!(waited >= limit && waited <= limit + limit / 10, "waited {waited:?}, limit {limit:?}");
}

#[tokio::test(start_paused = true)]
async fn no_greeting_times_out_at_five_minutes() {
    let server = start(TestServer::builder().on(Step::Greeting, Fault::Silence)).await;
    let t0 = Instant::now();
    let err = connect(&server, plain()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)), "{err:?}");
    assert!(err.is_transient());
    assert_waited(t0, 5 * MIN);
}

#[tokio::test(start_paused = true)]
async fn slow_loris_replies_hit_the_whole_reply_deadline() {
    // About 40 octets at 10 s each: 400 s, over the 5-minute greeting deadline.
    let server =
        start(TestServer::builder().on(Step::Greeting, Fault::Trickle(Duration::from_secs(10)))).await;
    let t0 = Instant::now();
    let err = connect(&server, plain()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)), "{err:?}");
    assert_waited(t0, 5 * MIN);

    // The same at MAIL, with the default 5-minute MAIL deadline.
    let server = start(TestServer::builder().on(Step::Mail, Fault::Trickle(Duration::from_secs(20)))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let t0 = Instant::now();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Mail)), "{err:?}");
    assert_waited(t0, 5 * MIN);
    assert!(!client.is_reusable());
}

#[tokio::test(start_paused = true)]
async fn a_multiline_reply_that_stalls_half_way() {
    let server = start(
        TestServer::builder().on(Step::Ehlo, Fault::Raw(b"250-mx\r\n250-PIPELINING\r\n250-8BI".to_vec())),
    )
    .await;
    let t0 = Instant::now();
    let err = connect(&server, plain().timeouts(distinct())).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Ehlo)), "{err:?}");
    assert_waited(t0, distinct().command);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_during_data() {
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let body = ("z".repeat(98) + "\r\n").repeat(40_000); // 4 MB, far beyond the pipe
    let t0 = Instant::now();
    let err = client.send(&env(), body).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::DataBlock)), "{err:?}");
    assert!(!err.is_ambiguous() && err.is_transient());
    assert_waited(t0, 3 * MIN);
    assert!(server.all_messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_nine_minute_final_reply_is_a_success() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Delay(9 * MIN))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let t0 = Instant::now();
    let report = client.send(&env(), "x").await.expect("9 minutes is within RFC 5321's 10");
    assert_eq!(report.reply.code().0, 250);
    assert!(t0.elapsed() >= 9 * MIN);
    assert!(client.is_reusable());
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn silence_after_the_dot_is_ambiguous_at_ten_minutes() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Silence)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let t0 = Instant::now();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_ambiguous(&err, |c| matches!(c, Error::Timeout(Phase::DataEnd)));
    assert_eq!(err.recipients().len(), 1);
    assert_waited(t0, 10 * MIN);
    assert!(!client.is_reusable());
}

/// The step where the server goes silent, the phase expected, and its deadline.
fn silent_cases() -> Vec<(Step, Phase, Duration)> {
    let t = distinct();
    vec![
        (Step::Greeting, Phase::Greeting, t.greeting),
        (Step::Ehlo, Phase::Ehlo, t.command),
        (Step::Mail, Phase::Mail, t.mail),
        (Step::RcptAny, Phase::Rcpt, t.rcpt),
        (Step::Data, Phase::Data, t.data_init),
        (Step::DataEnd, Phase::DataEnd, t.data_end),
        (Step::Noop, Phase::Noop, t.command),
        (Step::Rset, Phase::Rset, t.command),
        (Step::Quit, Phase::Quit, t.quit),
    ]
}

#[tokio::test(start_paused = true)]
async fn each_phase_times_out_at_its_own_value() {
    for (step, phase, limit) in silent_cases() {
        let server = start(TestServer::builder().on(step, Fault::Silence)).await;
        let t0 = Instant::now();
        let connected = connect(&server, plain().timeouts(distinct())).await;
        let err = match (step, connected) {
            (Step::Greeting | Step::Ehlo, Err(e)) => e,
            (_, Ok(mut client)) => {
                let t0 = Instant::now();
                let err = match step {
                    Step::Noop => client.noop().await.unwrap_err(),
                    Step::Rset => client.rset().await.unwrap_err(),
                    Step::Quit => client.quit().await.unwrap_err(),
                    _ => client.send(&env(), "x").await.unwrap_err(),
                };
                assert_waited(t0, limit);
                err
            }
            (_, Err(e)) => panic!("{step:?}: {e:?}"),
        };
        if matches!(step, Step::Greeting | Step::Ehlo) {
            assert_waited(t0, limit);
        }
        if step == Step::DataEnd {
            assert_ambiguous(&err, |c| matches!(c, Error::Timeout(Phase::DataEnd)));
        } else {
            assert!(matches!(err, Error::Timeout(p) if p == phase), "{step:?}: {err:?}");
            assert!(err.is_transient());
        }
    }

    // Data block: the server stops reading; the write deadline fires.
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let mut client = connect(&server, plain().timeouts(distinct())).await.unwrap();
    let t0 = Instant::now();
    let err = client.send(&env(), ("q".repeat(98) + "\r\n").repeat(40_000)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::DataBlock)), "{err:?}");
    assert_waited(t0, distinct().data_block);

    // AUTH and STARTTLS use the command deadline.
    let server =
        start(TestServer::builder().user("u", "p").auth_requires_tls(false).on(Step::Auth, Fault::Silence))
            .await;
    let builder = plain()
        .timeouts(distinct())
        .allow_insecure_auth(true)
        .credentials(smtpkit::Credentials::new("u", "p"));
    let err = within(distinct().greeting + distinct().command, connect(&server, builder)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Auth)), "{err:?}");

    let server = start(TestServer::builder().starttls(true).on(Step::StartTls, Fault::Silence)).await;
    let builder = super::trusting(&server).timeouts(distinct());
    let err =
        within(distinct().command + Duration::from_secs(1), connect(&server, builder)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::StartTls)), "{err:?}");

    // TLS handshake: implicit TLS against a peer that never answers the ClientHello.
    let (client_io, _server_io) = tokio::io::duplex(64 * 1024);
    let builder = smtpkit::Client::builder("localhost")
        .tls(TlsPolicy::Implicit)
        .danger_accept_invalid_certs(true)
        .timeouts(distinct());
    let t0 = Instant::now();
    let err = builder.build().unwrap().connect_with(client_io).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::TlsHandshake)), "{err:?}");
    assert_waited(t0, distinct().tls_handshake);
}

/// Polls `fut` at most `k` times; `None` if it was still pending (it is then dropped).
async fn poll_at_most<F: Future>(fut: F, k: usize) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut polls = 0;
    poll_fn(|cx| {
        if polls == k {
            return Poll::Ready(None);
        }
        polls += 1;
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn cancellation_at_every_await_point_poisons_the_client() {
    // A slow server so that every step awaits: each reply comes after 1 s.
    for (name, step) in [("send", Step::Command(1)), ("send+delay", Step::DataEnd), ("noop", Step::Noop)] {
        let server = start(TestServer::builder().on(step, Fault::Delay(Duration::from_secs(1)))).await;
        let mut cancelled = 0;
        let mut completed = false;
        for k in 1..200 {
            let mut client = connect(&server, plain()).await.unwrap();
            let envelope = env();
            let outcome = if name == "noop" {
                poll_at_most(client.noop(), k).await.map(|r| r.map(|_| ()))
            } else {
                poll_at_most(client.send(&envelope, "hello\r\n"), k).await.map(|r| r.map(|_| ()))
            };
            match outcome {
                None => {
                    cancelled += 1;
                    assert!(!client.is_reusable(), "{name}: cancelled after {k} polls");
                    assert!(matches!(client.send(&env(), "again").await, Err(Error::Cancelled)));
                    assert!(matches!(client.noop().await, Err(Error::Cancelled)));
                }
                Some(result) => {
                    result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    assert!(client.is_reusable());
                    completed = true;
                    break;
                }
            }
        }
        assert!(completed, "{name}: finished within 200 polls");
        let least = if name == "noop" { 1 } else { 2 };
        assert!(cancelled >= least, "{name}: only {cancelled} await points");
        // Nothing was ever delivered twice, and nothing was resent.
        let messages = server.messages();
        assert!(messages.iter().all(|m| m.text() == "hello\r\n"));
        assert!(messages.len() <= server.connection_count());
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_loris_final_reply_succeeds_in_time_and_is_ambiguous_past_ten_minutes() {
    // The 250 to the dot ("250 2.0.0 Ok: queued", about 40 octets) one octet every 10 s:
    // about 400 s, inside the 10-minute final-reply deadline.
    let server =
        start(TestServer::builder().on(Step::DataEnd, Fault::Trickle(Duration::from_secs(10)))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let report = client.send(&env(), "x").await.expect("slow but in time");
    assert_eq!(report.reply.code().0, 250);
    assert!(client.is_reusable());

    // One octet every 30 s: the whole-reply deadline fires at 10 minutes, although octets
    // keep coming; the server had committed, so the outcome is ambiguous.
    let server =
        start(TestServer::builder().on(Step::DataEnd, Fault::Trickle(Duration::from_secs(30)))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let t0 = Instant::now();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_ambiguous(&err, |c| matches!(c, Error::Timeout(Phase::DataEnd)));
    assert_waited(t0, 10 * MIN);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_hung_up_while_idle_fails_the_next_send_cleanly() {
    let server = start(TestServer::builder().on(Step::Ehlo, Fault::CloseAfterBytes(0))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    tokio::time::sleep(MIN).await;
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed(Phase::Mail) | Error::Io(_)), "{err:?}");
    assert!(err.is_transient() && !err.is_ambiguous());
    assert!(!client.is_reusable());
    assert!(server.all_messages().is_empty());
}
