//! A port spoken in the other TLS mode is reported within seconds, as a typed hint,
//! against the in-process server and real Postfix: TLS records where a greeting was
//! expected, a plaintext reply during the TLS handshake, a silent implicit-TLS port
//! (found by a ClientHello probe on a second connection), and the port number alone.

use std::time::{Duration, Instant};

use smtpkit::connect::{ConnectError, Evidence, TlsModeHint};
use smtpkit::testing::TestServer;
use smtpkit::{Client, ClientBuilder, Error, Timeouts, TlsPolicy};
use tokio::io::AsyncWriteExt;

use crate::support::interop;

/// Greeting and handshake deadlines far beyond the hints' few seconds.
fn slow_deadlines(b: ClientBuilder) -> ClientBuilder {
    b.timeouts(Timeouts { connect: Duration::from_secs(10), ..Timeouts::uniform(Duration::from_secs(120)) })
}

async fn mixed_up(b: ClientBuilder) -> (TlsModeHint, Evidence, Duration) {
    let started = Instant::now();
    let err = slow_deadlines(b).connect().await.unwrap_err();
    let elapsed = started.elapsed();
    let Error::Connect(ConnectError::WrongTlsMode(w)) = &err else {
        panic!("expected a TLS-mode hint: {err:?}")
    };
    assert!(elapsed < Duration::from_secs(20), "hint took {elapsed:?}: {err}");
    (w.hint, w.evidence, elapsed)
}

#[tokio::test]
async fn plain_client_at_a_silent_implicit_tls_port() {
    let server = TestServer::builder().implicit_tls(true).start().await.unwrap();
    let b = Client::builder("localhost").port(server.addr().port()).tls(TlsPolicy::Required);
    let (hint, evidence, elapsed) = mixed_up(b).await;
    assert_eq!((hint, evidence), (TlsModeHint::UseImplicitTls, Evidence::TlsProbe));
    eprintln!("silent implicit-TLS port recognised in {elapsed:?}");
}

#[tokio::test]
async fn implicit_tls_client_at_a_plain_port() {
    let server = TestServer::builder().starttls(true).start().await.unwrap();
    let b = Client::builder("localhost").port(server.addr().port()).tls(TlsPolicy::Implicit);
    let (hint, evidence, _) = mixed_up(b).await;
    assert_eq!((hint, evidence), (TlsModeHint::UseStartTls, Evidence::PlainReply));
}

#[tokio::test]
async fn tls_records_where_the_greeting_was_expected() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // A TLS 1.2 fatal alert record (unexpected_message), as some TLS servers send
        // to a peer that does not start with a ClientHello.
        let _ = tcp.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a]).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let b = Client::builder("localhost").port(port).tls(TlsPolicy::Opportunistic);
    let (hint, evidence, _) = mixed_up(b).await;
    assert_eq!((hint, evidence), (TlsModeHint::UseImplicitTls, Evidence::TlsRecords));
}

#[tokio::test]
async fn well_known_ports_carry_the_hint_before_any_reply() {
    // Nothing listens on these loopback ports: the connect is refused, and the error
    // says which mode the port number suggests, with the refusal as its cause.
    for (url, hint, port) in [
        ("smtp://127.0.0.1:465?tls=required", TlsModeHint::UseImplicitTls, 465),
        ("smtps://127.0.0.1:587", TlsModeHint::UseStartTls, 587),
    ] {
        let err = Client::from_url(url).unwrap().connect().await.unwrap_err();
        let Error::Connect(ConnectError::WrongTlsMode(w)) = &err else { panic!("{url}: {err:?}") };
        assert_eq!((w.hint, w.evidence), (hint, Evidence::WellKnownPort(port)), "{url}");
        assert!(matches!(w.cause.as_deref(), Some(Error::Connect(ConnectError::Unreachable(_)))), "{err:?}");
        assert!(err.to_string().contains(&hint.to_string()), "{err}");
    }
}

#[tokio::test]
async fn postfix_ports_in_the_wrong_mode() {
    let Some(pf) = interop::postfix_or_skip("postfix_ports_in_the_wrong_mode") else { return };
    let b = Client::builder("localhost").port(pf.implicit_tls.port()).tls(TlsPolicy::Required);
    let (hint, evidence, elapsed) = mixed_up(b).await;
    assert_eq!((hint, evidence), (TlsModeHint::UseImplicitTls, Evidence::TlsProbe));
    eprintln!("postfix implicit-TLS port recognised in {elapsed:?}");
    let b = Client::builder("localhost").port(pf.starttls.port()).tls(TlsPolicy::Implicit);
    let (hint, evidence, _) = mixed_up(b).await;
    assert_eq!((hint, evidence), (TlsModeHint::UseStartTls, Evidence::PlainReply));
}

#[tokio::test]
async fn blocking_client_gets_the_same_hints_from_postfix() {
    let Some(pf) = interop::postfix_or_skip("blocking_client_gets_the_same_hints_from_postfix") else {
        return;
    };
    for (port, tls, want) in [
        (pf.implicit_tls.port(), TlsPolicy::Required, (TlsModeHint::UseImplicitTls, Evidence::TlsProbe)),
        (pf.starttls.port(), TlsPolicy::Implicit, (TlsModeHint::UseStartTls, Evidence::PlainReply)),
    ] {
        let b = slow_deadlines(Client::builder("localhost").port(port).tls(tls));
        let started = Instant::now();
        let err = tokio::task::spawn_blocking(move || b.connect_blocking().unwrap_err()).await.unwrap();
        let Error::Connect(ConnectError::WrongTlsMode(w)) = &err else {
            panic!("expected a TLS-mode hint: {err:?}")
        };
        assert_eq!((w.hint, w.evidence), want, "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}
