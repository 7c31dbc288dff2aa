//! Faults and outcomes: drops before, during and after DATA, 421 and 4xx/5xx at every
//! step with RSET and reuse rules, greeting 554, mixed and refused recipients, 5xx after
//! the dot, and an early 550 from a server that stopped reading.

use std::time::Duration;

use smtpkit::testing::{Fault, FaultRule, Step, TestServer};
use smtpkit::{Envelope, Error, Phase};
use tokio::time::Instant;

use super::{assert_ambiguous, assert_rejected, connect, env, plain, received, start};

fn reply(code: u16) -> Fault {
    let text = match code / 100 {
        4 => "4.3.0 try again later",
        _ => "5.7.1 refused",
    };
    Fault::Reply { code, text: text.into() }
}

#[tokio::test(start_paused = true)]
async fn drop_after_mail_or_rcpt_is_not_sent_and_transient() {
    for (step, phase) in [(Step::Mail, Phase::Mail), (Step::RcptAny, Phase::Rcpt), (Step::Data, Phase::Data)]
    {
        let server = start(TestServer::builder().on(step, Fault::Close)).await;
        let mut client = connect(&server, plain()).await.unwrap();
        let err = client.send(&env(), "x").await.unwrap_err();
        assert!(matches!(err, Error::ConnectionClosed(p) if p == phase), "{step:?}: {err:?}");
        assert!(err.is_transient() && !err.is_ambiguous());
        assert!(!client.is_reusable());
        assert!(server.all_messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn drop_during_data_is_not_sent() {
    for budget in [0, 1, 1000, 100_000] {
        let server = start(TestServer::builder().on(Step::Data, Fault::CloseAfterBytes(budget))).await;
        let mut client = connect(&server, plain()).await.unwrap();
        // 2 MB: the end of data is still far from the output when the server hangs up.
        let err = client.send(&env(), ("d".repeat(98) + "\r\n").repeat(20_000)).await.unwrap_err();
        assert!(!err.is_ambiguous(), "{budget}: {err:?}");
        assert!(matches!(err, Error::ConnectionClosed(Phase::DataBlock) | Error::Io(_)), "{budget}: {err:?}");
        assert!(err.is_transient());
        assert!(server.all_messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn drop_after_the_dot_is_ambiguous() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Close)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_ambiguous(&err, |c| matches!(c, Error::ConnectionClosed(Phase::DataEnd)));
    assert!(server.messages().is_empty(), "this server did not commit");
    assert_eq!(server.all_messages().len(), 1, "but it did receive the whole message");

    let server = start(TestServer::builder().on(Step::DataEnd, Fault::CommitThenClose)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_ambiguous(&err, |c| matches!(c, Error::ConnectionClosed(Phase::DataEnd)));
    assert_eq!(server.messages().len(), 1, "this one did: hence ambiguous, never resent");
    assert_eq!(received(&server, 0).await.matches("MAIL FROM").count(), 1);
}

/// Every step of a transaction where a reply can be replaced, and the phase reported.
const TX_STEPS: [(Step, Phase); 4] = [
    (Step::Mail, Phase::Mail),
    (Step::RcptAny, Phase::Rcpt),
    (Step::Data, Phase::Data),
    (Step::DataEnd, Phase::DataEnd),
];

#[tokio::test(start_paused = true)]
async fn a_421_at_every_step_ends_the_session() {
    let mut cases = 0;
    for (step, phase) in [(Step::Greeting, Phase::Greeting), (Step::Ehlo, Phase::Ehlo)] {
        let server = start(TestServer::builder().on(step, reply(421))).await;
        let err = connect(&server, plain()).await.unwrap_err();
        assert_rejected(&err, phase, 421);
        assert!(err.is_transient());
        assert!(!received(&server, 0).await.contains("QUIT"), "{step:?}: the server is gone, no QUIT");
        cases += 1;
    }
    for (step, phase) in TX_STEPS {
        let server = start(TestServer::builder().on(step, reply(421))).await;
        let mut client = connect(&server, plain()).await.unwrap();
        let err = client.send(&env(), "x").await.unwrap_err();
        assert_rejected(&err, phase, 421);
        assert!(err.is_transient() && !err.is_ambiguous(), "{step:?}: {err:?}");
        assert!(!client.is_reusable(), "{step:?}");
        assert!(server.messages().is_empty(), "{step:?}");
        cases += 1;
    }
    for step in [Step::Noop, Step::Rset] {
        let server = start(TestServer::builder().on(step, reply(421))).await;
        let mut client = connect(&server, plain()).await.unwrap();
        let err = if step == Step::Noop { client.noop().await } else { client.rset().await }.unwrap_err();
        assert!(matches!(&err, Error::Rejected { reply, .. } if reply.code().0 == 421), "{step:?}: {err:?}");
        assert!(!client.is_reusable());
        cases += 1;
    }
    // AUTH (plaintext, explicitly allowed) and STARTTLS (see tls.rs) too.
    let server =
        start(TestServer::builder().user("u", "p").auth_requires_tls(false).on(Step::Auth, reply(421))).await;
    let builder = plain().allow_insecure_auth(true).credentials(smtpkit::Credentials::new("u", "p"));
    let err = connect(&server, builder).await.unwrap_err();
    assert_rejected(&err, Phase::Auth, 421);
    assert!(err.is_transient());
    cases += 1;
    assert_eq!(cases, 9);
}

#[tokio::test(start_paused = true)]
async fn four_and_five_hundreds_at_every_step_are_classified() {
    let mut cases = 0;
    for code in [450, 451, 452, 550, 552, 553, 554] {
        for (step, phase) in TX_STEPS {
            let server = start(TestServer::builder().fault(FaultRule::new(step, reply(code)).once())).await;
            let mut client = connect(&server, plain()).await.unwrap();
            let err = client.send(&env(), "x").await.unwrap_err();
            assert_eq!(err.is_transient(), code < 500, "{code} {step:?}: {err:?}");
            assert_eq!(err.is_permanent(), code >= 500, "{code} {step:?}: {err:?}");
            match step {
                Step::RcptAny => match &err {
                    Error::RecipientsRejected { recipients } => {
                        assert_eq!(recipients.len(), 1);
                        assert_eq!(recipients[0].reply.code().0, code);
                    }
                    other => panic!("{code}: {other:?}"),
                },
                _ => assert_rejected(&err, phase, code),
            }
            // A transaction the server had started is reset before reuse.
            let needs_rset = matches!(step, Step::RcptAny | Step::Data);
            client.noop().await.expect("the connection survives a refusal");
            assert!(client.is_reusable(), "{code} {step:?}");
            let wire = received(&server, 0).await;
            assert_eq!(wire.contains("RSET"), needs_rset, "{code} {step:?}: {wire}");
            if needs_rset {
                assert!(wire.find("RSET").unwrap() < wire.find("NOOP").unwrap());
            }
            client.send(&env(), "second").await.expect("reused after the refusal");
            let messages = server.messages();
            assert_eq!(messages.len(), 1, "{code} {step:?}");
            assert_eq!(messages[0].data, b"second\r\n");
            cases += 1;
        }
    }
    assert_eq!(cases, 28);
}

#[tokio::test(start_paused = true)]
async fn the_connection_is_reused_only_after_rset_succeeds() {
    for code in [450, 550, 500] {
        let server = start(
            TestServer::builder()
                .fault(FaultRule::new(Step::RcptAny, reply(550)).once())
                .on(Step::Rset, reply(code)),
        )
        .await;
        let mut client = connect(&server, plain()).await.unwrap();
        let err = client.send(&env(), "x").await.unwrap_err();
        assert!(matches!(err, Error::RecipientsRejected { .. }), "{err:?}");
        // The automatic RSET is refused: the session state is unknown, so it ends.
        let next = client.send(&env(), "y").await.unwrap_err();
        assert!(
            matches!(&next, Error::Rejected { phase: Phase::Rset, reply, .. } if reply.code().0 == code)
                || matches!(next, Error::SessionClosed),
            "{code}: {next:?}"
        );
        assert!(!client.is_reusable());
        assert!(server.messages().is_empty());
        // A MAIL may be pipelined behind the RSET (RFC 2920), but no data follows it.
        assert!(
            !received(&server, 0).await.contains("\r\ny\r\n.\r\n"),
            "{code}: no data after a failed RSET"
        );
        assert!(server.all_messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn greeting_554_and_450() {
    for code in [554, 450] {
        let server = start(TestServer::builder().on(Step::Greeting, reply(code))).await;
        let err = connect(&server, plain()).await.unwrap_err();
        assert_rejected(&err, Phase::Greeting, code);
        assert_eq!(err.is_permanent(), code == 554);
        assert_eq!(received(&server, 0).await, "QUIT\r\n", "RFC 5321 3.1: only QUIT after a refusal");
    }
}

#[tokio::test(start_paused = true)]
async fn mixed_recipients_get_their_own_outcomes() {
    let server =
        start(
            TestServer::builder()
                .reject_recipient("b@example.com", 450, "4.2.0 mailbox busy")
                .reject_recipient("c@example.com", 550, "5.1.1 no such user"),
        )
        .await;
    for pipelining in [true, false] {
        let mut client = connect(&server, plain().pipelining(pipelining)).await.unwrap();
        let envelope =
            Envelope::parse("s@example.com", &["a@example.com", "b@example.com", "c@example.com"]).unwrap();
        let report = client.send(&envelope, "x").await.expect("a got it");
        let codes: Vec<u16> = report.recipients.iter().map(|r| r.reply.code().0).collect();
        assert_eq!(codes, [250, 450, 550]);
        assert_eq!(report.accepted().count(), 1);
        assert_eq!(report.rejected().count(), 2);
        assert!(client.is_reusable());
    }
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.rcpt_to == ["a@example.com"]));
}

#[tokio::test(start_paused = true)]
async fn all_recipients_refused_sends_no_data_and_keeps_the_connection() {
    let server =
        start(TestServer::builder().reject_recipient("b@example.com", 450, "4.2.0 busy").reject_recipient(
            "c@example.com",
            550,
            "5.1.1 unknown",
        ))
        .await;
    for pipelining in [true, false] {
        let mut client = connect(&server, plain().pipelining(pipelining)).await.unwrap();
        let envelope = Envelope::parse("s@example.com", &["b@example.com", "c@example.com"]).unwrap();
        let err = client.send(&envelope, "SECRET BODY").await.unwrap_err();
        let Error::RecipientsRejected { recipients } = &err else { panic!("{err:?}") };
        assert_eq!(recipients.len(), 2);
        assert!(err.is_transient(), "b may succeed later");
        assert!(!err.is_permanent());
        client.noop().await.unwrap();
        assert!(client.is_reusable());
        let ok = Envelope::parse("s@example.com", &["a@example.com"]).unwrap();
        client.send(&ok, "fine").await.expect("reusable");
    }
    assert!(server.all_messages().iter().all(|m| m.data == b"fine\r\n"));
    assert!(!server.received_bytes().concat().windows(6).any(|w| w == b"SECRET"));
}

#[tokio::test(start_paused = true)]
async fn five_hundred_after_the_dot_is_permanent_for_all() {
    let server = start(TestServer::builder().on(Step::DataEnd, reply(554))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let envelope = Envelope::parse("s@example.com", &["a@example.com", "b@example.com"]).unwrap();
    let err = client.send(&envelope, "x").await.unwrap_err();
    assert_rejected(&err, Phase::DataEnd, 554);
    assert!(err.is_permanent() && !err.is_ambiguous());
    assert_eq!(err.recipients().len(), 2);
    assert!(server.messages().is_empty());
    assert!(client.is_reusable(), "the transaction ended with the dot; no RSET needed");
}

#[tokio::test(start_paused = true)]
async fn early_550_after_354_while_the_server_stops_reading() {
    let server = start(TestServer::builder().on(
        Step::Data,
        Fault::RawThenStopReading(b"354 go ahead\r\n550 5.7.1 rejected: you are spamming\r\n".to_vec()),
    ))
    .await;
    let mut client = connect(&server, plain()).await.unwrap();
    let body = ("s".repeat(70) + "\r\n").repeat(100_000); // 7.2 MB
    let t0 = Instant::now();
    let err = client.send(&env(), body).await.unwrap_err();
    assert_rejected(&err, Phase::DataBlock, 550);
    assert!(err.is_permanent());
    assert!(t0.elapsed() < Duration::from_secs(1), "reported at once, not at a deadline");
    assert!(!client.is_reusable());
}

fn batch(n: usize) -> Vec<(Envelope, bytes::Bytes, smtpkit::MessageOptions)> {
    (0..n).map(|i| (env(), bytes::Bytes::from(format!("m{i}\r\n")), Default::default())).collect()
}

#[tokio::test(start_paused = true)]
async fn pipelined_messages_after_a_lost_dot() {
    // Three messages pipelined; the link dies after the second dot (the server commits
    // it). The first is sent, the second ambiguous, the third failed without ambiguity:
    // its dot was never written.
    let server = start(
        TestServer::builder()
            .fault(FaultRule::new(Step::DataEnd, Fault::Delay(Duration::ZERO)).once())
            .on(Step::DataEnd, Fault::CommitThenClose),
    )
    .await;
    let mut client = connect(&server, plain()).await.unwrap();
    let results = client.send_many(batch(3)).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_ambiguous(results[1].as_ref().unwrap_err(), |c| matches!(c, Error::ConnectionClosed(_)));
    let third = results[2].as_ref().unwrap_err();
    assert!(!third.is_ambiguous() && third.is_transient(), "{third:?}");
    let committed: Vec<Vec<u8>> = server.messages().into_iter().map(|m| m.data).collect();
    assert_eq!(committed, [b"m0\r\n".to_vec(), b"m1\r\n".to_vec()]);
}

#[tokio::test(start_paused = true)]
async fn pipelined_messages_when_the_next_mail_is_dropped() {
    // Commands: EHLO(0) MAIL(1) RCPT(2) DATA(3), then the first dot and MAIL(4) of the
    // next message: the server answers the dot, then closes at that MAIL.
    let server = start(TestServer::builder().on(Step::Command(4), Fault::Close)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let results = client.send_many(batch(3)).await;
    assert!(results[0].is_ok(), "{results:?}");
    for r in &results[1..] {
        let e = r.as_ref().unwrap_err();
        assert!(!e.is_ambiguous() && e.is_transient(), "{e:?}");
    }
    assert_eq!(server.messages().len(), 1);
}
