//! TLS session resumption: connections from one `Connector` share one rustls store, so
//! every connection after the first resumes, against the in-process server and Postfix
//! (STARTTLS and implicit TLS). The connect times printed are informative, not asserted.

use std::time::{Duration, Instant};

use smtpkit::testing::TestServer;
use smtpkit::{Client, Connector, TlsPolicy};

use crate::support::interop;

/// Opens `n` connections in turn; returns which resumed and the mean connect time of
/// the first (full handshake) and of the resumed ones.
async fn run(connector: &Connector, n: usize) -> (Vec<bool>, Duration, Duration) {
    let mut resumed = Vec::new();
    let (mut full, mut again) = (Duration::ZERO, Duration::ZERO);
    for i in 0..n {
        let started = Instant::now();
        let client = connector.connect().await.unwrap();
        let took = started.elapsed();
        let r = client.tls_resumed().expect("TLS connection");
        if i == 0 {
            full += took
        } else if r {
            again += took
        }
        resumed.push(r);
        client.quit().await.unwrap();
    }
    let count = resumed.iter().filter(|r| **r).count().max(1) as u32;
    (resumed, full, again / count)
}

/// Prints the rate and checks the first is full and the second resumed; with
/// `every_time`, that all later ones resumed.
fn report(what: &str, resumed: &[bool], full: Duration, again: Duration, every_time: bool) {
    let rate = resumed.iter().skip(1).filter(|r| **r).count();
    eprintln!(
        "resumption {what}: {rate}/{} later connections resumed; connect {full:?} full, {again:?} resumed",
        resumed.len() - 1
    );
    assert!(!resumed[0], "{what}: the first handshake cannot resume");
    assert!(resumed[1], "{what}: the second connection did not resume: {resumed:?}");
    if every_time {
        assert!(resumed[1..].iter().all(|r| *r), "{what}: {resumed:?}");
    }
}

#[tokio::test]
async fn in_process_server_resumes_across_connections() {
    for implicit in [false, true] {
        let server = TestServer::builder().starttls(!implicit).implicit_tls(implicit).start().await.unwrap();
        let connector = Client::builder("localhost")
            .port(server.addr().port())
            .tls(if implicit { TlsPolicy::Implicit } else { TlsPolicy::Required })
            .without_native_roots()
            .add_root_pem(server.ca_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        let (resumed, full, again) = run(&connector, 6).await;
        report(
            if implicit { "in-process implicit" } else { "in-process starttls" },
            &resumed,
            full,
            again,
            true,
        );
    }
}

#[tokio::test]
async fn postfix_resumes_across_connections() {
    let Some(pf) = interop::postfix_or_skip("postfix_resumes_across_connections") else { return };
    for (addr, tls, what) in [
        (pf.starttls, TlsPolicy::Required, "postfix starttls"),
        (pf.implicit_tls, TlsPolicy::Implicit, "postfix implicit"),
    ] {
        let connector = Client::builder("localhost")
            .port(addr.port())
            .tls(tls)
            .without_native_roots()
            .add_root_pem_file(&pf.ca_pem_path)
            .unwrap()
            .build()
            .unwrap();
        let (resumed, full, again) = run(&connector, 6).await;
        // Postfix (OpenSSL) sends a TLS 1.3 ticket after a full handshake but none after a
        // resumed one, and rustls uses each ticket once: every other connection resumes.
        report(what, &resumed, full, again, false);
    }
}
