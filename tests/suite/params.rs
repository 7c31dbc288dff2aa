//! MAIL/RCPT parameters and long replies, end to end against the in-process server.

use std::time::Duration;

use smtpkit::testing::TestServer;
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
