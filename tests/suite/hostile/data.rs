//! Message data end to end: smuggling bodies, bare line endings, NUL, dots, terminators,
//! long lines, 8-bit data and SIZE, as the server receives them.

use smtpkit::proto::dot_stuff::BodyError;
use smtpkit::testing::TestServer;
use smtpkit::{Envelope, Error, Extension, InputError};

use super::{connect, env, plain, received, start};

/// The nine SEC Consult end-of-data variants plus the bare-LF terminator.
const SMUGGLE: [&[u8]; 10] = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\r",
    b"\r.\n",
    b"\n.\r",
    b"\r\n\x00.\r\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\n.\nMAIL FROM:<x@y>",
];

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Sends `body` over a fresh connection; returns the result and the server.
async fn send_one(body: Vec<u8>) -> (Result<smtpkit::SendReport, Error>, TestServer) {
    let server = start(TestServer::builder()).await;
    let mut client = connect(&server, plain()).await.expect("connects");
    let result = client.send(&env(), body).await;
    if client.is_reusable() {
        client.quit().await.expect("quit");
    }
    (result, server)
}

#[tokio::test(start_paused = true)]
async fn smuggling_bodies_carry_exactly_one_end_of_data() {
    for variant in SMUGGLE {
        let mut body = b"Subject: smuggle\r\n\r\nA".to_vec();
        body.extend_from_slice(variant);
        body.extend_from_slice(b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\n");
        body.extend_from_slice(b"DATA\r\nFrom: ceo@example.com\r\n\r\nwire money\r\n.\r\nQUIT\r\n");
        let (result, server) = send_one(body.clone()).await;
        let wire = server.received_bytes().concat();
        if variant.contains(&0) {
            assert!(
                matches!(result, Err(Error::Input(InputError::Body(BodyError::Nul { .. })))),
                "{variant:?}: {result:?}"
            );
            assert_eq!(
                received(&server, 0).await,
                "EHLO localhost\r\nQUIT\r\n",
                "{variant:?}: nothing else written"
            );
            assert!(server.all_messages().is_empty());
            continue;
        }
        result.unwrap_or_else(|e| panic!("{variant:?}: {e:?}"));
        assert_eq!(count(&wire, b"\r\n.\r\n"), 1, "{variant:?}: {}", String::from_utf8_lossy(&wire));
        let transcript = &server.transcripts()[0];
        assert_eq!(
            transcript.matches("C: MAIL FROM").count(),
            1,
            "{variant:?}: one transaction\n{transcript}"
        );
        assert_eq!(transcript.matches("C: DATA").count(), 1, "{variant:?}: one DATA\n{transcript}");
        assert_eq!(server.all_messages().len(), 1, "{variant:?}");
        // No bare CR or LF anywhere in what the client wrote.
        for (i, &b) in wire.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "{variant:?}: bare CR at {i}"),
                b'\n' => assert_eq!(wire.get(i.wrapping_sub(1)), Some(&b'\r'), "{variant:?}: bare LF at {i}"),
                _ => {}
            }
        }
        let messages = server.messages();
        assert_eq!(messages.len(), 1, "{variant:?}");
        assert_eq!(messages[0].rcpt_to, ["b@example.com"], "{variant:?}");
        assert!(messages[0].text().contains("MAIL FROM:<evil@attacker.example>"), "{variant:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn bare_cr_and_lf_are_normalised_on_the_wire() {
    let (result, server) = send_one(b"Subject: x\n\na\rb\nc\r\n".to_vec()).await;
    result.expect("sent");
    assert_eq!(server.messages()[0].data, b"Subject: x\r\n\r\na\r\nb\r\nc\r\n");
}

#[tokio::test(start_paused = true)]
async fn nul_in_body_is_refused_before_mail() {
    let (result, server) = send_one(b"Subject: x\r\n\r\na\0b\r\n".to_vec()).await;
    assert!(
        matches!(result, Err(Error::Input(InputError::Body(BodyError::Nul { offset: 15 })))),
        "{result:?}"
    );
    assert!(!received(&server, 0).await.contains("MAIL"));
}

#[tokio::test(start_paused = true)]
async fn leading_dots_are_stuffed_and_restored() {
    for (body, wire_part, stored) in [
        (&b"."[..], &b"..\r\n.\r\n"[..], &b".\r\n"[..]),
        (b".hidden\r\n", b"..hidden\r\n.\r\n", b".hidden\r\n"),
        (b"a\r\n\r\n.\r\nb", b"a\r\n\r\n..\r\nb\r\n.\r\n", b"a\r\n\r\n.\r\nb\r\n"),
        (b"x\r\n", b"x\r\n.\r\n", b"x\r\n"),
        (b"no trailing line ending", b"no trailing line ending\r\n.\r\n", b"no trailing line ending\r\n"),
    ] {
        let (result, server) = send_one(body.to_vec()).await;
        result.expect("sent");
        let wire = server.received_bytes().concat();
        assert_eq!(count(&wire, wire_part), 1, "{body:?} -> {}", String::from_utf8_lossy(&wire));
        assert_eq!(server.messages()[0].data, stored, "{body:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_line_over_998_octets_is_refused_before_mail() {
    let mut body = vec![b'x'; 999];
    body.extend_from_slice(b"\r\n");
    let (result, server) = send_one(body).await;
    assert!(
        matches!(result, Err(Error::Input(InputError::Body(BodyError::LineTooLong { line: 1, len: 999 })))),
        "{result:?}"
    );
    assert!(!received(&server, 0).await.contains("MAIL"));
    // 998 is fine.
    let (result, _) = send_one(vec![b'y'; 998]).await;
    result.expect("998 octets are allowed");
}

#[tokio::test(start_paused = true)]
async fn eight_bit_body_without_8bitmime_is_refused_before_mail() {
    let server = start(TestServer::builder().eight_bit_mime(false)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "Subject: caf\u{e9}\r\n\r\n").await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(Extension::EightBitMime)), "{err:?}");
    assert!(client.is_reusable(), "nothing was sent, the connection is fine");
    client.send(&env(), "ascii\r\n").await.expect("the next message goes through");
    assert_eq!(received(&server, 0).await.matches("MAIL FROM").count(), 1);

    // A UTF-8 header field needs SMTPUTF8 too (RFC 6531 section 3.4, issue 16 #5): refused
    // before MAIL by a server with 8BITMIME only, sent with both parameters otherwise.
    let server = start(TestServer::builder()).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "Subject: caf\u{e9}\r\n\r\n").await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(Extension::SmtpUtf8Headers)), "{err:?}");
    client
        .send(&env(), "Subject: cafe\r\n\r\ncaf\u{e9}\r\n")
        .await
        .expect("an 8-bit body alone needs only 8BITMIME");
    assert_eq!(server.messages()[0].mail_params, ["BODY=8BITMIME"]);
    let server = start(TestServer::builder().smtputf8(true)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    client.send(&env(), "Subject: caf\u{e9}\r\n\r\n").await.expect("sent with 8BITMIME and SMTPUTF8");
    assert_eq!(server.messages()[0].mail_params, ["BODY=8BITMIME", "SMTPUTF8"]);
}

#[tokio::test(start_paused = true)]
async fn utf8_address_without_smtputf8_is_refused_before_mail() {
    let server = start(TestServer::builder()).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let envelope = Envelope::parse("a@example.com", &["j\u{f6}rg@example.com"]).unwrap();
    let err = client.send(&envelope, "x").await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(Extension::SmtpUtf8)), "{err:?}");
    assert!(!received(&server, 0).await.contains("MAIL"));

    let server = start(TestServer::builder().smtputf8(true)).await;
    let mut client = connect(&server, plain()).await.unwrap();
    client.send(&envelope, "x").await.expect("sent with SMTPUTF8");
    assert!(server.messages()[0].mail_params.iter().any(|p| p == "SMTPUTF8"));
}

#[tokio::test(start_paused = true)]
async fn message_over_size_is_refused_before_mail_and_size_is_declared() {
    let server = start(TestServer::builder().size(Some(100))).await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "z".repeat(101)).await.unwrap_err();
    // RFC 1870: the size counts the CRLF that DATA adds after a last line without one.
    assert!(matches!(err, Error::MessageTooLarge { size: 103, max: 100 }), "{err:?}");
    assert!(!received(&server, 0).await.contains("MAIL"));
    assert!(client.is_reusable());
    client.send(&env(), "a\nb").await.expect("small message");
    // Declared size is the normalised size plus the CRLF DATA adds.
    assert_eq!(server.messages()[0].mail_params, ["SIZE=6"]);
}
