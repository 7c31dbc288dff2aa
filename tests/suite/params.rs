//! MAIL/RCPT parameters and long replies, end to end against the in-process server.

use std::time::Duration;

use smtpkit::testing::{Fault, Step, TestServer};
use smtpkit::{Client, Envelope, MessageOptions};

/// Issue 10 #6: an ORCPT in RFC 6533 UTF-8 form carries a quoted local part with spaces.
/// Unescaped, its SP split the parameter: `REQUIRETLS` arrived as a parameter of its own
/// (and the server refused the rest as malformed). RFC 6533 3 allows only QCHAR ("ASCII
/// printable characters except CTLs, SP, '\', '+', '='") unescaped, so SP goes as `\x{20}`
/// and the server sees one ORCPT parameter.
#[tokio::test]
async fn utf8_orcpt_cannot_inject_a_bare_keyword() {
    let server =
        TestServer::builder().dsn(true).smtputf8(true).extra_capability("REQUIRETLS").start().await.unwrap();
    let mut client = Client::from_url(&server.url()).unwrap().connect().await.unwrap();
    let rcpt = "\"x REQUIRETLS y\"@例え.jp";
    let envelope = Envelope::parse("a@example.com", &[rcpt]).unwrap();
    let options = MessageOptions { orcpt: true, ..MessageOptions::default() };
    let sent = client.send_with(&envelope, "Subject: x\r\n\r\nx\r\n", options).await;
    client.quit().await.unwrap();
    let wire = String::from_utf8(server.received_bytes()[0].clone()).unwrap();
    let line = wire.lines().find(|l| l.starts_with("RCPT TO:")).unwrap();
    assert_eq!(line, r#"RCPT TO:<"x REQUIRETLS y"@例え.jp> ORCPT=utf-8;"x\x{20}REQUIRETLS\x{20}y"@例え.jp"#);
    sent.unwrap();
    let messages = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(messages[0].rcpt_to, [rcpt]);
    assert_eq!(
        messages[0].rcpt_params,
        [vec![r#"ORCPT=utf-8;"x\x{20}REQUIRETLS\x{20}y"@例え.jp"#.to_owned()]]
    );
}

/// Issue 10 #6: "a long but legal reply (5 KB text) is accepted", on one line and over
/// many, at every step of a transaction. RFC 5321 4.5.3.1.5 sets 512 octets as the
/// minimum a client must take, not a maximum.
#[tokio::test]
async fn long_legal_replies_are_accepted() {
    let long = "x".repeat(5 * 1024);
    let many = (0..100).map(|i| format!("line {i} {}", "y".repeat(45))).collect::<Vec<_>>().join("\n");
    // 5 KiB of text in one-character lines: 2,560 lines, over the old cap of 512.
    let short_lines = vec!["z"; 2560].join("\n");
    for text in [long.clone(), many.clone(), short_lines] {
        for (step, code) in [
            (Step::Greeting, 220),
            (Step::Ehlo, 250),
            (Step::Mail, 250),
            (Step::RcptAny, 250),
            (Step::Data, 354),
            (Step::DataEnd, 250),
        ] {
            let ctx = format!("{step:?}, {} octets, {} lines", text.len(), text.lines().count());
            let server = TestServer::builder()
                .on(step, Fault::Reply { code, text: text.clone() })
                .start()
                .await
                .unwrap();
            let mut client = Client::from_url(&server.url()).unwrap().connect().await.expect(&ctx);
            let envelope = Envelope::parse("a@example.com", &["b@example.com"]).unwrap();
            let report = client.send(&envelope, "Subject: x\r\n\r\nx\r\n").await.expect(&ctx);
            if step == Step::DataEnd {
                assert_eq!(report.reply.text(), text, "{ctx}");
            }
            client.quit().await.expect(&ctx);
            assert_eq!(server.messages().len(), 1, "{ctx}");
        }
    }
}

/// A 5 KiB reply at every step at once (pipelined replies then span several reads), in
/// plaintext and after STARTTLS, refusals included.
#[tokio::test]
async fn long_replies_at_every_step_with_and_without_tls() {
    let long = "x".repeat(5 * 1024);
    for tls in [false, true] {
        let mut b = TestServer::builder().starttls(tls);
        for (step, code) in [
            (Step::Greeting, 220),
            (Step::Ehlo, 250),
            (Step::StartTls, 220),
            (Step::Mail, 250),
            (Step::Rcpt(0), 250),
            (Step::Rcpt(1), 550),
            (Step::Rcpt(2), 250),
            (Step::Data, 354),
            (Step::DataEnd, 250),
            (Step::Rset, 250),
            (Step::Noop, 250),
            (Step::Quit, 221),
        ] {
            if !(tls && step == Step::Ehlo) {
                b = b.on(step, Fault::Reply { code, text: long.clone() });
            }
        }
        let server = b.start().await.unwrap();
        let mut builder = Client::from_url(&server.url()).unwrap();
        if tls {
            builder = builder.add_root_pem(server.ca_pem().as_bytes()).unwrap();
        }
        let mut client = builder.connect().await.expect("connect");
        let to = ["b@example.com", "c@example.com", "d@example.com"];
        let envelope = Envelope::parse("a@example.com", &to).unwrap();
        let report = client.send(&envelope, "Subject: x\r\n\r\nx\r\n").await.expect("send");
        assert_eq!(report.accepted().count(), 2);
        assert_eq!(report.rejected().next().map(|r| r.reply.text()), Some(long.clone()));
        client.noop().await.expect("noop");
        client.rset().await.expect("rset");
        client.quit().await.expect("quit");
        assert_eq!(server.messages()[0].rcpt_to, ["b@example.com", "d@example.com"]);
    }
}
