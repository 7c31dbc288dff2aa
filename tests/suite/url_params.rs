//! URL parameters applied end to end by `Client::from_url`, against the in-process server.

use std::time::Duration;

use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope};

/// Issue 15 #1: CHUNKING is used by default when offered; `?chunking=off` (or `false`,
/// `no`) sends with DATA instead, `?chunking=on` (`true`, `yes`) keeps BDAT.
#[tokio::test]
async fn chunking_parameter_turns_bdat_off_and_on() {
    let server = TestServer::builder().chunking(true).start().await.unwrap();
    let envelope = Envelope::parse("a@example.com", &["b@example.org"]).unwrap();
    let cases = [("", true), ("&chunking=off", false), ("&chunking=no", false), ("&chunking=yes", true)];
    for (conn, (param, bdat)) in cases.into_iter().enumerate() {
        let url = format!("{}{param}", server.url());
        let mut client = Client::from_url(&url).unwrap().connect().await.unwrap();
        client.send(&envelope, "Subject: x\r\n\r\nx\r\n").await.unwrap();
        client.quit().await.unwrap();
        server.wait_for_messages(conn + 1, Duration::from_secs(5)).await;
        let wire = String::from_utf8_lossy(&server.received_bytes()[conn]).into_owned();
        assert_eq!(wire.lines().any(|l| l.starts_with("BDAT ")), bdat, "{param:?}: {wire}");
        assert_eq!(wire.lines().any(|l| l == "DATA"), !bdat, "{param:?}: {wire}");
    }
}
