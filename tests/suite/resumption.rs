//! TLS session resumption: connections from one `Connector` share one rustls store, so
//! every connection after the first resumes, against the in-process server and Postfix
//! (STARTTLS and implicit TLS). The connect times printed are informative, not asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smtpkit::metrics::{Counter, Registry, connect_observed};
use smtpkit::pool::Pool;
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

/// The pool counts resumed handshakes in its metrics: of two connections opened over
/// STARTTLS, the first is a full handshake and the second resumes, so the Prometheus text
/// shows two opened and one resumed.
#[tokio::test]
async fn pool_metrics_count_the_second_connection_as_resumed() {
    let server = TestServer::builder().starttls(true).start().await.unwrap();
    let connector = Client::builder("localhost")
        .port(server.addr().port())
        .tls(TlsPolicy::Required)
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let registry = Arc::new(Registry::new());
    let pool = Pool::builder(connector.clone()).max_connections(2).metrics(registry.clone()).build();
    // Both held at once, so the pool opens two connections.
    let first = pool.get().await.unwrap();
    assert_eq!(registry.get(Counter::TlsResumed), 0, "a first handshake cannot resume");
    let second = pool.get().await.unwrap();
    drop((first, second));
    let text = registry.render_prometheus();
    assert_eq!(registry.get(Counter::ConnectionsOpened), 2, "{text}");
    assert!(text.contains("smtpkit_tls_resumed_total 1\n"), "{text}");
    pool.close().await;
    // A bare client counted by `connect_observed` resumes from the same store too.
    let bare = Registry::new();
    let client = connect_observed(&connector, &bare).await.unwrap();
    assert_eq!((bare.get(Counter::ConnectionsOpened), bare.get(Counter::TlsResumed)), (1, 1));
    client.quit().await.unwrap();
    server.shutdown().await;
}
