//! Outcomes that tell the truth on the paths the ordinary tests do not walk (issue 10):
//! LMTP partial delivery before a 421, a 221 that is no answer, the phase of a second
//! pipelined message, BDAT after a refused chunk, Debug without bodies, STARTTLS under
//! implicit TLS, and a transcript that shows only what was written.

use std::time::Instant;

use bytes::Bytes;
use smtpkit::proto::session::{Event, Session, SessionConfig, TlsPolicy};
use smtpkit::{EhloName, Envelope, Error, MessageOptions, Phase, ProtocolError};

use crate::session::Transmit;

fn config() -> SessionConfig {
    SessionConfig {
        ehlo_name: EhloName::new("client.test").unwrap(),
        tls: TlsPolicy::Disabled,
        ..SessionConfig::default()
    }
}

/// A session past EHLO with `extensions` (one per line), with everything written.
fn ready(config: SessionConfig, extensions: &[&str]) -> (Session, Instant) {
    let now = Instant::now();
    let mut s = Session::new(config, now);
    s.handle_input(now, b"220 mx.test ESMTP\r\n");
    drain(&mut s, now);
    let mut ehlo = String::from("250-mx.test\r\n");
    for (i, ext) in extensions.iter().enumerate() {
        let sep = if i + 1 == extensions.len() { ' ' } else { '-' };
        ehlo.push_str(&format!("250{sep}{ext}\r\n"));
    }
    if extensions.is_empty() {
        ehlo = "250 mx.test\r\n".into();
    }
    s.handle_input(now, ehlo.as_bytes());
    assert!(s.is_ready(), "{s:?}");
    (s, now)
}

fn drain(s: &mut Session, now: Instant) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(b) = s.transmit(now) {
        wire.extend_from_slice(&b);
    }
    wire
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn send(s: &mut Session, to: &[&str], body: &'static [u8]) {
    let envelope = Envelope::parse("a@src.test", to).unwrap();
    s.send_message(envelope, Bytes::from_static(body), MessageOptions::default()).unwrap();
}

fn outcomes(events: &[Event]) -> Vec<&Result<smtpkit::proto::session::SendReport, Error>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

#[test]
fn lmtp_recipients_delivered_before_a_421_stay_delivered() {
    let (mut s, now) = ready(SessionConfig { lmtp: true, ..config() }, &["PIPELINING"]);
    send(&mut s, &["a@dst.test", "b@dst.test", "c@dst.test"], b"Subject: x\r\n\r\nhi\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"250 2.0.0 delivered to a\r\n421 4.3.0 shutting down\r\n");
    let seen = events(&mut s);
    match outcomes(&seen)[..] {
        [Ok(report)] => {
            let accepted: Vec<_> = report.accepted().map(|r| r.address.to_string()).collect();
            assert_eq!(accepted, ["a@dst.test"], "a got its final 250");
            let rejected: Vec<_> = report.rejected().map(|r| r.reply.code().0).collect();
            assert_eq!(rejected, [421, 421], "only b and c failed, transiently");
        }
        ref other => panic!("{other:?}"),
    }
    assert!(s.is_closed());
}

#[test]
fn a_221_to_anything_but_quit_ends_the_session() {
    let (mut s, now) = ready(config(), &["PIPELINING"]);
    let noop = s.noop().unwrap();
    drain(&mut s, now);
    s.handle_input(now, b"221 2.0.0 bye\r\n");
    let seen = events(&mut s);
    let result = seen.iter().find_map(|e| match e {
        Event::Command { id, result } if *id == noop => Some(result),
        _ => None,
    });
    assert!(
        matches!(
            result,
            Some(Err(Error::Protocol(ProtocolError::UnexpectedReply { phase: Phase::Noop, .. })))
        ),
        "{result:?}"
    );
    assert!(s.is_closed());
    assert!(drain(&mut s, now).is_empty(), "nothing written after the 221");

    // A 221 to the final dot is no acceptance: the dot was written, so it is ambiguous.
    let (mut s, now) = ready(config(), &["PIPELINING"]);
    send(&mut s, &["b@dst.test"], b"Subject: x\r\n\r\nhi\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"250 ok\r\n250 ok\r\n354 go\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"221 bye\r\n");
    let seen = events(&mut s);
    match outcomes(&seen)[..] {
        [Err(e)] => assert!(e.is_ambiguous(), "{e:?}"),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_pipelined_message_after_a_421_to_the_first_dot_keeps_its_phase() {
    let (mut s, now) = ready(config(), &["PIPELINING"]);
    send(&mut s, &["b@dst.test"], b"Subject: one\r\n\r\nhi\r\n");
    send(&mut s, &["b@dst.test"], b"Subject: two\r\n\r\nhi\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"250 ok\r\n250 ok\r\n354 go\r\n");
    let flight = drain(&mut s, now);
    assert!(flight.ends_with(b".\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n"));
    s.handle_input(now, b"421 4.3.2 going down\r\n");
    let seen = events(&mut s);
    match outcomes(&seen)[..] {
        [
            Err(Error::Rejected { phase: Phase::DataEnd, reply: first, .. }),
            Err(Error::Rejected { phase: Phase::Mail, reply: second, .. }),
        ] => {
            assert_eq!((first.code().0, second.code().0), (421, 421));
        }
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn with_pipelining_no_bdat_chunk_follows_a_refused_one() {
    let config = SessionConfig { chunking: true, bdat_chunk_size: 64 * 1024, ..config() };
    let (mut s, now) = ready(config, &["PIPELINING", "CHUNKING"]);
    let line = format!("{}\r\n", "x".repeat(78));
    let body = line.repeat(13_000); // about 1 MB: 16 chunks, more than one flight
    let envelope = Envelope::parse("a@src.test", &["b@dst.test"]).unwrap();
    s.send_message(envelope, Bytes::from(body), MessageOptions::default()).unwrap();
    let first = s.transmit(now).expect("a first flight");
    let chunks = first.windows(5).filter(|w| w == b"BDAT ").count();
    assert!((2..16).contains(&chunks), "{chunks} chunks in the first flight");
    s.handle_input(now, b"250 ok\r\n250 ok\r\n554 5.3.4 chunk refused\r\n");
    let more = drain(&mut s, now);
    assert!(!more.windows(5).any(|w| w == b"BDAT "), "a chunk after the refused one: {}", more.len());
    // The chunks already out are answered; then the transaction fails and resets.
    for _ in 1..chunks {
        s.handle_input(now, b"503 5.5.1 no\r\n");
    }
    assert_eq!(drain(&mut s, now), b"RSET\r\n");
    let seen = events(&mut s);
    match outcomes(&seen)[..] {
        [Err(Error::Rejected { phase: Phase::DataEnd, reply, .. })] => assert_eq!(reply.code().0, 554),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn debug_of_a_session_never_prints_a_body() {
    let (mut s, now) = ready(SessionConfig { trace: true, ..config() }, &["PIPELINING"]);
    let line = b"TOPSECRETBODY line of text\r\n".repeat(10_000);
    let envelope = Envelope::parse("a@src.test", &["b@dst.test"]).unwrap();
    s.send_message(envelope, Bytes::from(line), MessageOptions::default()).unwrap();
    assert!(!format!("{s:?}").contains("TOPSECRET"), "queued");
    drain(&mut s, now);
    s.handle_input(now, b"250 ok\r\n250 ok\r\n354 go\r\n");
    // Mid-body: pieces are in the output and the encoder is running.
    let _piece = s.poll_transmit();
    assert!(!format!("{s:?}").contains("TOPSECRET"), "streaming");
}

#[test]
fn starttls_advertised_on_an_implicit_tls_session_is_ignored() {
    let now = Instant::now();
    let mut s = Session::new(SessionConfig { tls: TlsPolicy::Implicit, ..config() }, now);
    s.tls_established(true);
    s.handle_input(now, b"220 mx.test ESMTP\r\n");
    drain(&mut s, now);
    s.handle_input(now, b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    assert!(s.is_ready());
    assert!(drain(&mut s, now).is_empty(), "no STARTTLS inside TLS");
}

#[test]
fn the_trace_shows_no_command_that_was_never_written() {
    let (mut s, now) = ready(SessionConfig { trace: true, ..config() }, &["PIPELINING"]);
    while s.poll_trace().is_some() {}
    send(&mut s, &["b@dst.test"], b"Subject: x\r\n\r\nhi\r\n");
    drain(&mut s, now);
    // Every recipient refused: the transaction fails and an RSET is queued, but the link
    // drops before it is written.
    s.handle_input(now, b"250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n");
    s.handle_eof();
    let trace: Vec<String> = std::iter::from_fn(|| s.poll_trace()).map(|l| l.to_string()).collect();
    assert!(trace.iter().any(|l| l == "C: MAIL FROM:<a@src.test>"), "{trace:?}");
    assert!(!trace.iter().any(|l| l.contains("RSET")), "an RSET never written: {trace:?}");
}
