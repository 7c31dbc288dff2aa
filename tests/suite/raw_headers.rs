//! Issue 16 #5: a raw message whose header section holds non-ASCII octets needs SMTPUTF8
//! (RFC 6531 section 3.4, RFC 6532). Without the extension the send is a typed error
//! before `MAIL`; with it, `MAIL FROM` carries `SMTPUTF8`. Raw UTF-8 headers never reach a
//! server that did not agree to them.

use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, Error, Extension};

const RAW: &str = "From: Zoë <zoe@example.com>\r\nSubject: Grüße\r\n\r\nGrüße\r\n";

fn envelope() -> Envelope {
    Envelope::parse("zoe@example.com", &["bob@example.com"]).unwrap()
}

#[tokio::test]
async fn utf8_headers_to_a_server_without_smtputf8_fail_before_mail() {
    let server = TestServer::builder().eight_bit_mime(true).smtputf8(false).start().await.unwrap();
    let mut client = Client::from_url(&server.url()).unwrap().connect().await.unwrap();
    let err = client.send(&envelope(), RAW).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(Extension::SmtpUtf8Headers)), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("RFC 6532") && shown.contains("RFC 2047"), "{shown}");
    // An 8-bit body alone still goes with 8BITMIME: only the header section counts.
    client.send(&envelope(), "Subject: plain\r\n\r\nGrüße\r\n").await.unwrap();
    client.quit().await.unwrap();
    let wire = String::from_utf8_lossy(&server.received_bytes()[0]).into_owned();
    let mails: Vec<&str> = wire.lines().filter(|l| l.starts_with("MAIL FROM")).collect();
    assert_eq!(mails, ["MAIL FROM:<zoe@example.com> BODY=8BITMIME"], "{wire}");
    assert!(!wire.contains("Subject: Grüße"), "the UTF-8 header reached the server");
    server.shutdown().await;
}

#[tokio::test]
async fn utf8_headers_are_declared_to_a_server_with_smtputf8() {
    let server = TestServer::builder().eight_bit_mime(true).smtputf8(true).start().await.unwrap();
    let mut client = Client::from_url(&server.url()).unwrap().connect().await.unwrap();
    client.send(&envelope(), RAW).await.unwrap();
    client.quit().await.unwrap();
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].mail_params.iter().any(|p| p == "SMTPUTF8"), "{:?}", got[0].mail_params);
    assert_eq!(got[0].data, RAW.as_bytes());
    server.shutdown().await;
}
