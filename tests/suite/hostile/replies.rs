//! Hostile replies: trickled and split multi-line replies, mismatched and malformed codes,
//! minimal lines, replies over the limits, endless continuations, non-UTF-8 and control
//! bytes, garbage then close, and AUTH servers that never stop challenging.

use std::time::Duration;

use smtpkit::proto::reply::ReplyError;
use smtpkit::proto::sasl::SaslError;
use smtpkit::testing::{Fault, Step, TestServer, TestServerBuilder};
use smtpkit::{Credentials, Error, Mechanism, Phase, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{assert_rejected, connect, env, plain, received, start};

fn twenty_line_ehlo() -> TestServerBuilder {
    // 4 default lines (name, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES) + 16 more.
    (0..16).fold(TestServer::builder(), |b, i| b.extra_capability(format!("X-CAP-{i:02} some value {i}")))
}

#[tokio::test(start_paused = true)]
async fn one_byte_per_read_twenty_line_ehlo() {
    let server = start(twenty_line_ehlo().on(Step::Ehlo, Fault::Trickle(Duration::from_millis(5)))).await;
    let mut client = connect(&server, plain()).await.expect("a trickled reply within the deadline is fine");
    assert!(client.capabilities().pipelining());
    assert!(server.transcripts()[0].matches("S: 250").count() >= 20);
    client.send(&env(), "x").await.unwrap();
}

/// Serves `greeting`, then answers each client line with the next reply, writing every
/// reply in pieces of the given sizes (cycled) with a short pause between pieces.
async fn split_server(mut io: DuplexStream, replies: Vec<Vec<u8>>, pieces: Vec<usize>) {
    let mut sizes = pieces.into_iter().cycle();
    let mut buf = vec![0u8; 4096];
    let mut pending = Vec::new();
    for (i, reply) in replies.into_iter().enumerate() {
        if i > 0 {
            // Wait for one command line.
            while !pending.contains(&b'\n') {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
            let nl = pending.iter().position(|&b| b == b'\n').unwrap_or(0);
            pending.drain(..=nl);
        }
        let mut rest = &reply[..];
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
            if io.write_all(&rest[..n]).await.is_err() {
                return;
            }
            rest = &rest[n..];
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[tokio::test(start_paused = true)]
async fn random_splits_of_a_twenty_line_ehlo() {
    let mut ehlo = String::new();
    for i in 0..19 {
        ehlo.push_str(&format!("250-CAP{i} value {i}\r\n"));
    }
    ehlo.push_str("250 PIPELINING\r\n");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..50 {
        let pieces: Vec<usize> = (0..7)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 23) as usize + 1
            })
            .collect();
        let replies = vec![
            b"220 mx ESMTP\r\n".to_vec(),
            ehlo.clone().into_bytes(),
            b"250 ok\r\n250 ok\r\n354 go\r\n".to_vec(),
            b"250 queued\r\n".to_vec(),
        ];
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(split_server(server_io, replies, pieces.clone()));
        let mut client = plain().build().unwrap().connect_with(client_io).await.expect("connects");
        assert!(client.capabilities().pipelining(), "round {round} {pieces:?}");
        client.send(&env(), "x").await.unwrap_or_else(|e| panic!("round {round} {pieces:?}: {e:?}"));
    }
}

/// Connects to a server that answers `step` with `raw` bytes; returns the error.
async fn raw_at(step: Step, raw: &[u8], builder: smtpkit::ClientBuilder) -> (Error, TestServer) {
    let server = start(TestServer::builder().on(step, Fault::Raw(raw.to_vec()))).await;
    let err = match connect(&server, builder).await {
        Err(e) => e,
        Ok(mut client) => {
            let err = client.send(&env(), "x").await.unwrap_err();
            assert!(!client.is_reusable(), "{raw:?}: a bad reply must kill the connection");
            err
        }
    };
    (err, server)
}

#[tokio::test(start_paused = true)]
async fn mismatched_codes_across_lines() {
    for step in [Step::Greeting, Step::Ehlo, Step::Mail] {
        let (err, _) = raw_at(step, b"250-first\r\n251-second\r\n250 last\r\n", plain()).await;
        assert!(
            matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::CodeMismatch { .. }))),
            "{step:?}: {err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn minimal_valid_lines() {
    let server = start(
        TestServer::builder()
            .on(Step::Greeting, Fault::Raw(b"220\r\n".to_vec()))
            .on(Step::Ehlo, Fault::Raw(b"250\r\n".to_vec()))
            .on(Step::Mail, Fault::Raw(b"250\n".to_vec()))
            .on(Step::DataEnd, Fault::Raw(b"250\r\n".to_vec())),
    )
    .await;
    let mut client = connect(&server, plain()).await.expect("220 alone is a greeting");
    assert!(!client.capabilities().pipelining(), "a bare 250 advertises nothing");
    let report = client.send(&env(), "x").await.expect("minimal replies are fine");
    assert_eq!(report.reply.code().0, 250);
    assert!(client.is_reusable());
}

#[tokio::test(start_paused = true)]
async fn malformed_codes_are_protocol_errors() {
    let mut cases = 0;
    for step in [Step::Greeting, Step::Ehlo, Step::Mail, Step::DataEnd] {
        for raw in
            [&b"850 x\r\n"[..], b"25\r\n", b"2500 x\r\n", b"25O x\r\n", b"250x\r\n", b"\r\n", b"-250 x\r\n"]
        {
            let (err, _) = raw_at(step, raw, plain()).await;
            let bad =
                |e: &Error| matches!(e, Error::Protocol(ProtocolError::Reply(ReplyError::Malformed(_))));
            if step == Step::DataEnd {
                // The reply to the dot is unreadable: the message may have been taken.
                super::assert_ambiguous(&err, bad);
            } else {
                assert!(bad(&err), "{step:?} {raw:?}: {err:?}");
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 28);
}

#[tokio::test(start_paused = true)]
async fn replies_over_the_limits() {
    let long_line = [b"250 ".to_vec(), vec![b'x'; 9000], b"\r\n".to_vec()].concat();
    let (err, _) = raw_at(Step::Ehlo, &long_line, plain()).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::LineTooLong(8192)))), "{err:?}");

    let no_ending = [b"250 ".to_vec(), vec![b'y'; 9000]].concat();
    let (err, _) = raw_at(Step::Ehlo, &no_ending, plain()).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::LineTooLong(8192)))), "{err:?}");

    let big: Vec<u8> =
        (0..10).flat_map(|_| [b"250-".to_vec(), vec![b'z'; 7000], b"\r\n".to_vec()].concat()).collect();
    let (err, _) = raw_at(Step::Ehlo, &big, plain()).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::TooLarge(65536)))), "{err:?}");

    // Limits are configurable: a 1 KiB line cap refuses a 2 KiB line.
    let line = [b"250 ".to_vec(), vec![b'w'; 2048], b"\r\n".to_vec()].concat();
    let limits = smtpkit::proto::reply::ReplyLimits { max_line: 1024, ..Default::default() };
    let (err, _) = raw_at(Step::Ehlo, &line, plain().reply_limits(limits)).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::LineTooLong(1024)))), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn endless_continuation_lines() {
    let endless = b"250-more\r\n".repeat(100_000);
    let (err, _) = raw_at(Step::Ehlo, &endless, plain()).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::TooManyLines(4096)))), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn non_utf8_and_control_bytes_in_reply_text_are_kept_but_sanitised() {
    let server = start(
        TestServer::builder()
            .on(Step::Ehlo, Fault::Raw(b"250-mx \xff\xfe\x1b[31m\r\n250 PIPELINING\r\n".to_vec()))
            .on(Step::Mail, Fault::Raw(b"550 5.7.1 \xc3\x28 no \x1b]0;pwned\x07 \x00 \x7f go\r\n".to_vec())),
    )
    .await;
    let mut client = connect(&server, plain()).await.expect("odd text in EHLO is harmless");
    assert!(client.capabilities().pipelining());
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_rejected(&err, Phase::Mail, 550);
    let reply = err.reply().unwrap();
    // The raw octets are kept ...
    assert!(reply.lines().next().unwrap().windows(2).any(|w| w == b"\x1b]"));
    // ... and everything printable is sanitised.
    for shown in [err.to_string(), reply.text(), format!("{err:?}")] {
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
    }
    assert!(client.is_reusable(), "a well-formed 550 to MAIL leaves the connection usable");
}

#[tokio::test(start_paused = true)]
async fn garbage_then_close() {
    for (garbage, expect_closed) in [
        (&b"\x16\x03\x01\x02\x00garbage"[..], true),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", false),
        (b"", true),
    ] {
        let (client_io, mut server_io) = tokio::io::duplex(1024);
        let garbage = garbage.to_vec();
        tokio::spawn(async move {
            let _ = server_io.write_all(&garbage).await;
        });
        let err = plain().build().unwrap().connect_with(client_io).await.unwrap_err();
        if expect_closed {
            assert!(matches!(err, Error::ConnectionClosed(Phase::Greeting)), "{err:?}");
        } else {
            assert!(
                matches!(err, Error::Protocol(ProtocolError::Reply(ReplyError::Malformed(_)))),
                "{err:?}"
            );
        }
    }
}

fn auth_server(fault: Fault) -> TestServerBuilder {
    TestServer::builder().user("u", "p").auth_requires_tls(false).on(Step::Auth, fault)
}

fn auth_client(mechanism: Mechanism) -> smtpkit::ClientBuilder {
    plain().allow_insecure_auth(true).credentials(Credentials::new("u", "p")).mechanisms(&[mechanism])
}

#[tokio::test(start_paused = true)]
async fn auth_334_forever_stops_after_ten_challenges() {
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let server = start(auth_server(Fault::Reply { code: 334, text: "VXNlcm5hbWU6".into() })).await;
        let err = connect(&server, auth_client(mechanism)).await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtocolError::Sasl(SaslError::TooManyChallenges(_)))),
            "{mechanism:?}: {err:?}"
        );
        // At most 10 responses were written after the AUTH line.
        let lines = received(&server, 0).lines().count();
        assert!(lines <= 1 + 1 + 10, "{mechanism:?}: {lines} lines");
        assert!(!received(&server, 0).contains("MAIL"));
    }
}

#[tokio::test(start_paused = true)]
async fn auth_non_base64_challenges() {
    for text in ["!!!not base64!!!", "VXNlcm5hbWU6=x", "\u{e9}t\u{e9}"] {
        let server = start(auth_server(Fault::Reply { code: 334, text: text.into() })).await;
        let err = connect(&server, auth_client(Mechanism::Login)).await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtocolError::Sasl(SaslError::BadChallenge))),
            "{text}: {err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn auth_refused_and_odd_auth_replies() {
    let server = start(TestServer::builder().user("u", "right").auth_requires_tls(false)).await;
    let builder = plain().allow_insecure_auth(true).credentials(Credentials::new("u", "wrong"));
    let err = connect(&server, builder).await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{err:?}");
    assert!(err.is_permanent());
    assert!(received(&server, 0).ends_with("QUIT\r\n"));

    let server = start(auth_server(Fault::Reply { code: 354, text: "go ahead".into() })).await;
    let err = connect(&server, auth_client(Mechanism::Plain)).await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::UnexpectedReply { phase: Phase::Auth, .. })),
        "{err:?}"
    );

    let server = start(auth_server(Fault::Reply { code: 454, text: "4.7.0 try later".into() })).await;
    let err = connect(&server, auth_client(Mechanism::Plain)).await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 454) && err.is_transient(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn unsolicited_reply_after_ehlo_kills_the_connection() {
    let server = start(
        TestServer::builder()
            .on(Step::Ehlo, Fault::Raw(b"250-mx\r\n250 PIPELINING\r\n250 surprise\r\n".to_vec())),
    )
    .await;
    match connect(&server, plain()).await {
        Err(err) => assert!(matches!(err, Error::Protocol(ProtocolError::Unsolicited(_))), "{err:?}"),
        Ok(mut client) => {
            assert!(!client.is_reusable(), "the stray line marks the connection dead");
            assert!(matches!(client.send(&env(), "x").await, Err(Error::SessionClosed)));
        }
    }
    assert!(!received(&server, 0).contains("MAIL"));
}

#[tokio::test(start_paused = true)]
async fn unsolicited_421_while_idle_is_reported_on_next_use() {
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::Unsolicited421 { idle: Duration::from_secs(30) }))
            .await;
    let mut client = connect(&server, plain()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let err = client.send(&env(), "x").await.unwrap_err();
    match &err {
        Error::Rejected { reply, .. } => assert_eq!(reply.code().0, 421),
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert!(!client.is_reusable());
    assert!(server.messages().is_empty());
}
