//! The tokio driver over `tokio::io::duplex` with a scripted peer: exact bytes, the
//! paused tokio clock for deadlines, early replies during DATA, cancellation.

use std::time::Duration;

use smtpkit::{Client, Envelope, Error, Phase, Timeouts, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

/// One step of a scripted server.
enum Step {
    /// Write these bytes.
    Say(&'static str),
    /// Read until exactly these bytes have arrived, and assert them.
    Expect(&'static str),
    /// Write bytes one at a time with a pause between them.
    Trickle(&'static str, Duration),
    /// Wait (on the tokio clock).
    Sleep(Duration),
    /// Keep the connection open without reading or writing, for this long.
    Hang(Duration),
}

async fn serve(mut io: DuplexStream, steps: Vec<Step>) {
    for step in steps {
        match step {
            Step::Say(s) => {
                if io.write_all(s.as_bytes()).await.is_err() {
                    return;
                }
            }
            Step::Expect(s) => {
                let mut got = vec![0; s.len()];
                if io.read_exact(&mut got).await.is_err() {
                    panic!("peer closed; expected {s:?}");
                }
                assert_eq!(String::from_utf8_lossy(&got), s);
            }
            Step::Trickle(s, gap) => {
                for b in s.bytes() {
                    if io.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(gap).await;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Hang(d) => {
                tokio::time::sleep(d).await;
                return;
            }
        }
    }
    // Drain until the client closes, so its last writes do not fail.
    let mut sink = [0u8; 1024];
    while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
}

const HELLO: [Step; 3] = [
    Step::Say("220 mx.test ESMTP\r\n"),
    Step::Expect("EHLO localhost\r\n"),
    Step::Say("250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
];

fn plain() -> smtpkit::ClientBuilder {
    Client::builder("localhost").tls(TlsPolicy::Disabled)
}

async fn connect(steps: Vec<Step>, builder: smtpkit::ClientBuilder) -> Result<Client, Error> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(serve(server_io, steps));
    builder.build()?.connect_with(client_io).await
}

fn env() -> Envelope {
    Envelope::parse("a@example.com", &["b@example.com"]).unwrap()
}

#[tokio::test]
async fn pipelined_send_is_byte_exact() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
        Step::Expect("Subject: t\r\n\r\n..dot\r\n.\r\n"),
        Step::Say("250 2.0.0 Ok: queued as ABC123\r\n"),
        Step::Expect("QUIT\r\n"),
        Step::Say("221 bye\r\n"),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let report = client.send(&env(), "Subject: t\r\n\r\n.dot\r\n").await.unwrap();
    assert_eq!(report.queue_id().as_deref(), Some("ABC123"));
    assert_eq!(report.accepted().count(), 1);
    assert!(client.is_reusable());
    client.quit().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_greeting_times_out_at_the_greeting_deadline() {
    let start = Instant::now();
    let err = connect(vec![Step::Hang(Duration::from_secs(3600))], plain()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)), "{err:?}");
    let waited = start.elapsed();
    // RFC 5321 4.5.3.2.1: 5 minutes, and not a second more than 10% over it.
    assert!(waited >= Duration::from_secs(300) && waited <= Duration::from_secs(330), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn trickled_greeting_hits_the_whole_reply_deadline() {
    // One byte every 10 s: an idle timer would never fire; a whole-reply deadline does.
    let line = "220 mx.test ESMTP this greeting is long and arrives one byte at a time\r\n";
    let start = Instant::now();
    let err = connect(vec![Step::Trickle(line, Duration::from_secs(10))], plain()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)), "{err:?}");
    assert!(start.elapsed() <= Duration::from_secs(330), "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn nine_minute_final_reply_is_still_a_success() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("x\r\n.\r\n"),
        Step::Sleep(Duration::from_secs(9 * 60)),
        Step::Say("250 queued\r\n"),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    assert!(client.send(&env(), "x").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn silence_after_the_dot_is_ambiguous_after_ten_minutes() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("x\r\n.\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let start = Instant::now();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(!err.is_transient() && !err.is_permanent());
    let Error::Ambiguous { cause, recipients } = &err else { unreachable!() };
    assert!(matches!(**cause, Error::Timeout(Phase::DataEnd)), "{cause:?}");
    assert_eq!(recipients.len(), 1);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(600) && waited <= Duration::from_secs(660), "{waited:?}");
    assert!(!client.is_reusable());
}

#[tokio::test]
async fn close_after_the_dot_is_ambiguous_but_close_after_mail_is_not() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("x\r\n.\r\n"),
        Step::Hang(Duration::ZERO),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Ambiguous { cause, .. } if matches!(**cause, Error::ConnectionClosed(_))),
        "{err:?}"
    );

    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Hang(Duration::ZERO),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed(Phase::Mail)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn early_550_during_data_beats_the_broken_pipe() {
    // The server takes 354, reads a little, says 550 and stops reading. The client's
    // write blocks on a full pipe; it must report the 550, not a timeout or EPIPE.
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("xxxxxxxx"),
        Step::Say("550 5.3.4 message too big for me\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let body = "x".repeat(70) + "\r\n";
    let body = body.repeat(100_000); // 7.2 MB, far beyond the 64 KiB pipe
    let start = Instant::now();
    let err = client.send(&env(), body).await.unwrap_err();
    match &err {
        Error::Rejected { phase: Phase::DataBlock, reply, .. } => assert_eq!(reply.code().0, 550),
        other => panic!("{other:?}"),
    }
    assert!(err.is_permanent());
    assert!(start.elapsed() < Duration::from_secs(1), "reported promptly, not at a deadline");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_hits_the_data_block_deadline() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let start = Instant::now();
    let err = client.send(&env(), "y".repeat(500) + "\r\n").await;
    let body_err = match err {
        Err(e) => e,
        Ok(r) => panic!("{r:?}"),
    };
    // Small bodies fit in the pipe: the wait is then for the final reply (10 min).
    assert!(body_err.is_ambiguous() || matches!(body_err, Error::Timeout(_)), "{body_err:?}");
    assert!(start.elapsed() <= Duration::from_secs(660));

    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    let start = Instant::now();
    let err = client.send(&env(), ("z".repeat(98) + "\r\n").repeat(20_000)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::DataBlock)), "{err:?}");
    assert!(err.is_transient());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(180) && waited <= Duration::from_secs(198), "{waited:?}");
}

#[tokio::test]
async fn a_dropped_send_future_poisons_the_client() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")]);
    steps.push(Step::Hang(Duration::from_secs(3600)));
    let mut client = connect(steps, plain()).await.unwrap();
    let envelope = env();
    {
        let fut = client.send(&envelope, "x");
        let _ = tokio::time::timeout(Duration::from_millis(50), fut).await;
    }
    assert!(!client.is_reusable());
    assert!(matches!(client.send(&env(), "x").await, Err(Error::Cancelled)));
}

#[tokio::test]
async fn tls_required_without_starttls_sends_only_ehlo_and_quit() {
    let steps = vec![
        Step::Say("220 mx.test ESMTP\r\n"),
        Step::Expect("EHLO localhost\r\n"),
        Step::Say("250-mx.test\r\n250 AUTH PLAIN\r\n"),
        Step::Expect("QUIT\r\n"),
        Step::Say("221 bye\r\n"),
    ];
    let builder = Client::builder("localhost").credentials(smtpkit::Credentials::new("u", "pw"));
    let err = connect(steps, builder).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(smtpkit::Extension::StartTls)), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn trace_redacts_auth_and_summarises_data() {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let steps = vec![
        Step::Say("220 mx.test ESMTP\r\n"),
        Step::Expect("EHLO localhost\r\n"),
        Step::Say("250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
        Step::Expect("AUTH PLAIN AHUAc2VjcmV0cHc=\r\n"),
        Step::Say("235 2.7.0 ok\r\n"),
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("top secret body\r\n.\r\n"),
        Step::Say("250 queued\r\n"),
    ];
    let builder = plain()
        .credentials(smtpkit::Credentials::new("u", "secretpw"))
        .allow_insecure_auth(true)
        .trace(move |l| sink.lock().unwrap().push(l.to_string()));
    let mut client = connect(steps, builder).await.unwrap();
    client.send(&env(), "top secret body").await.unwrap();
    let all = lines.lock().unwrap().join("\n");
    assert!(all.contains("C: AUTH PLAIN [redacted]"), "{all}");
    assert!(
        !all.contains("AHUAc2VjcmV0cHc") && !all.contains("secretpw") && !all.contains("top secret"),
        "{all}"
    );
    assert!(all.contains("C: [message data: 15 octets]"), "{all}");
    assert!(all.contains("S: 250 queued"), "{all}");
}

#[tokio::test]
async fn timeouts_are_configurable() {
    tokio::time::pause();
    let builder = plain().timeouts(Timeouts { greeting: Duration::from_secs(7), ..Timeouts::default() });
    let start = Instant::now();
    let err = connect(vec![Step::Hang(Duration::from_secs(60))], builder).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)));
    assert!(start.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn lmtp_reports_one_final_reply_per_recipient() {
    let steps = vec![
        Step::Say("220 lmtp.test LMTP\r\n"),
        Step::Expect("LHLO localhost\r\n"),
        Step::Say("250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"),
        Step::Expect(
            "MAIL FROM:<a@example.com>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<y@example.com>\r\n\
             RCPT TO:<z@example.com>\r\nDATA\r\n",
        ),
        Step::Say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n"),
        Step::Expect("hi\r\n.\r\n"),
        Step::Say("250 2.0.0 x delivered\r\n452 4.2.2 z over quota\r\n"),
    ];
    let mut client = connect(steps, plain().lmtp(true)).await.unwrap();
    let env = Envelope::parse("a@example.com", &["x@example.com", "y@example.com", "z@example.com"]).unwrap();
    let report = client.send(&env, "hi").await.unwrap();
    let summary: Vec<(String, u16)> =
        report.recipients.iter().map(|r| (r.address.to_string(), r.reply.code().0)).collect();
    assert_eq!(
        summary,
        [("x@example.com".into(), 250), ("y@example.com".into(), 550), ("z@example.com".into(), 452)]
    );
    assert_eq!(report.accepted().count(), 1);
    assert!(client.is_reusable());
}

/// `submit` queues without waiting; outcomes that arrive while another operation drives
/// the connection are kept for `next_outcome`, in order, and nothing is reported twice.
#[tokio::test]
async fn submitted_outcomes_survive_other_operations() {
    use smtpkit::MessageOptions;
    use smtpkit::testing::TestServer;

    let server = TestServer::builder()
        .pipelining(true)
        .reject_recipient("nobody@example.com", 550, "5.1.1 No such user")
        .start()
        .await
        .unwrap();
    let mut client = plain().build().unwrap().connect_with(server.connect_in_memory()).await.unwrap();
    let refused = Envelope::parse("a@example.com", &["nobody@example.com"]).unwrap();
    let body = || bytes::Bytes::from_static(b"Subject: s\r\n\r\nHi.\r\n");

    assert!(client.next_outcome().await.is_none(), "nothing submitted yet");
    let first = client.submit(env(), body(), MessageOptions::default()).unwrap();
    let second = client.submit(refused, body(), MessageOptions::default()).unwrap();
    assert_eq!(client.in_flight(), 2);
    assert!(!client.is_reusable(), "outcomes are outstanding");
    // This send drives the connection past both submitted messages.
    client.send(&env(), body()).await.unwrap();
    assert_eq!(client.in_flight(), 2);

    let (id, result) = client.next_outcome().await.unwrap();
    assert_eq!(id, first);
    assert!(result.is_ok(), "{result:?}");
    let (id, result) = client.next_outcome().await.unwrap();
    assert_eq!(id, second);
    assert!(matches!(result, Err(Error::RecipientsRejected { .. })), "{result:?}");
    assert!(client.next_outcome().await.is_none());
    assert_eq!(client.in_flight(), 0);
    assert!(client.settle().await, "reusable once every outcome is taken");
    client.quit().await.unwrap();
    assert_eq!(server.messages().len(), 2);
}

/// A submitted message whose connection was poisoned by a dropped operation still gets
/// an outcome: not sent (its end of data was never written), never silence.
#[tokio::test]
async fn submitted_messages_get_an_outcome_after_a_dropped_operation() {
    use smtpkit::MessageOptions;
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.push(Step::Hang(Duration::from_secs(3600)));
    let mut client = connect(steps, plain()).await.unwrap();
    let submitted = client.submit(env(), bytes::Bytes::from_static(b"x"), MessageOptions::default()).unwrap();
    {
        let fut = client.noop();
        let _ = tokio::time::timeout(Duration::from_millis(50), fut).await;
    }
    let (id, result) = client.next_outcome().await.expect("an outcome, not None");
    assert_eq!(id, submitted);
    let e = result.expect_err("nothing was delivered");
    assert!(!e.is_ambiguous(), "{e:?}");
    assert!(client.next_outcome().await.is_none());
    assert!(!client.is_reusable());
}

/// RELIABILITY.md rule 15: a server that swallows QUIT holds the caller 10 s (the QUIT
/// deadline), not the 5-minute command deadline, and the outcome already reported stands.
#[tokio::test(start_paused = true)]
async fn a_swallowed_quit_waits_only_the_quit_deadline() {
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([
        Step::Expect("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"),
        Step::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        Step::Expect("x\r\n.\r\n"),
        Step::Say("250 queued\r\n"),
        Step::Expect("QUIT\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ]);
    let mut client = connect(steps, plain()).await.unwrap();
    client.send(&env(), "x").await.unwrap();
    let start = Instant::now();
    let err = client.quit().await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Quit)), "{err:?}");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(10) && waited <= Duration::from_secs(11), "{waited:?}");
    // Configurable.
    let mut steps: Vec<Step> = HELLO.into_iter().collect();
    steps.extend([Step::Expect("QUIT\r\n"), Step::Hang(Duration::from_secs(3600))]);
    let timeouts = Timeouts { quit: Duration::from_secs(2), ..Timeouts::default() };
    let client = connect(steps, plain().timeouts(timeouts)).await.unwrap();
    let start = Instant::now();
    assert!(client.quit().await.is_err());
    assert!(start.elapsed() <= Duration::from_secs(3), "{:?}", start.elapsed());
}

/// A connect that failed (STARTTLS stripped) writes its QUIT and returns at once: it does
/// not wait for a reply that may never come.
#[tokio::test(start_paused = true)]
async fn a_failed_connect_never_waits_for_the_quit_reply() {
    let steps = vec![
        Step::Say("220 mx.test ESMTP\r\n"),
        Step::Expect("EHLO localhost\r\n"),
        Step::Say("250-mx.test\r\n250 AUTH PLAIN\r\n"),
        Step::Expect("QUIT\r\n"),
        Step::Hang(Duration::from_secs(3600)),
    ];
    let start = Instant::now();
    let err = connect(steps, Client::builder("localhost")).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(smtpkit::Extension::StartTls)), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
}

/// The examples' output contract, shared by `examples/send` and `examples/compose`.
#[allow(dead_code)]
#[path = "../../examples/common/outcome.rs"]
mod outcome;

/// One exit status table (issue 10 #8): a refused greeting, a missing extension and a size
/// limit are not connection failures (4); every other code is unchanged.
#[test]
fn the_examples_exit_codes_follow_one_table() {
    use smtpkit::{Extension, Reply};
    let rejected =
        |phase, code| Error::Rejected { phase, reply: Reply::single(code, "no"), recipients: vec![] };
    let cases = [
        (rejected(Phase::Greeting, 554), 5),
        (rejected(Phase::Ehlo, 550), 5),
        (Error::ExtensionMissing(Extension::SmtpUtf8), 5),
        (Error::ExtensionMissing(Extension::EightBitMime), 5),
        (Error::MessageTooLarge { size: 10, max: 5 }, 5),
        (rejected(Phase::Mail, 550), 1),
        (rejected(Phase::DataEnd, 554), 1),
        (Error::RecipientsRejected { recipients: vec![] }, 1),
        (Error::Config("bad".into()), 2),
        (Error::Ambiguous { cause: Box::new(Error::Timeout(Phase::DataEnd)), recipients: vec![] }, 3),
        (Error::ExtensionMissing(Extension::StartTls), 4),
        (rejected(Phase::StartTls, 454), 4),
        (Error::AuthFailed(Reply::single(535, "no")), 4),
        (Error::InsecureAuth, 4),
        (Error::Timeout(Phase::Connect), 4),
        (Error::ConnectionClosed(Phase::Mail), 4),
    ];
    for (e, code) in cases {
        assert_eq!(outcome::exit_code_for(&e), code, "{e:?}");
    }
}
