//! STARTTLS and TLS: injection after the 220, STARTTLS missing or refused, EHLO refused,
//! plaintext AUTH, bad certificates for implicit TLS and STARTTLS, and EOF without
//! close_notify after 221.

use std::sync::Arc;

use smtpkit::testing::{CertKind, Fault, Step, TestServer};
use smtpkit::{Credentials, Error, Extension, Phase, ProtocolError, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use super::{assert_rejected, connect, env, plain, received, start, trusting};

#[tokio::test(start_paused = true)]
async fn starttls_upgrades_forgets_and_says_ehlo_again() {
    let server = start(TestServer::builder().starttls(true).user("u", "p")).await;
    let mut client =
        connect(&server, trusting(&server).credentials(Credentials::new("u", "p"))).await.expect("connects");
    assert!(client.is_tls());
    assert!(client.capabilities().auth_mechanisms().iter().any(|m| m == "PLAIN"));
    client.send(&env(), "x").await.unwrap();
    client.quit().await.unwrap();
    let wire = received(&server, 0).await;
    assert!(wire.starts_with("EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\nAUTH PLAIN "), "{wire}");
    let msg = &server.messages()[0];
    assert!(msg.tls && msg.authenticated_as.as_deref() == Some("u"));
}

#[tokio::test(start_paused = true)]
async fn plaintext_injected_after_the_starttls_220_is_fatal() {
    for extra in [&b"250-evil\r\n250 AUTH PLAIN\r\n"[..], b"2", b"\r\n", b"220 again\r\n"] {
        let server = start(
            TestServer::builder()
                .starttls(true)
                .on(Step::StartTls, Fault::ExtraAfterStartTls(extra.to_vec())),
        )
        .await;
        let err = connect(&server, trusting(&server)).await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtocolError::DataAfterStartTls(n)) if n == extra.len()),
            "{extra:?}: {err:?}"
        );
        // Nothing after STARTTLS: no plaintext command, no TLS.
        assert_eq!(received(&server, 0).await, "EHLO localhost\r\nSTARTTLS\r\n", "{extra:?}");
        assert!(server.messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn starttls_missing_with_tls_required_sends_only_ehlo_and_quit() {
    let server = start(TestServer::builder().user("u", "p").auth_requires_tls(false)).await;
    let err = connect(&server, trusting(&server).credentials(Credentials::new("u", "p"))).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(Extension::StartTls)), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(received(&server, 0).await, "EHLO localhost\r\nQUIT\r\n");
}

#[tokio::test(start_paused = true)]
async fn starttls_refused_is_a_typed_error_and_nothing_goes_in_plaintext() {
    for code in [454, 502, 501, 421, 554] {
        let server = start(
            TestServer::builder()
                .starttls(true)
                .user("u", "p")
                .on(Step::StartTls, Fault::Reply { code, text: "no TLS for you".into() }),
        )
        .await;
        let err =
            connect(&server, trusting(&server).credentials(Credentials::new("u", "p"))).await.unwrap_err();
        assert_rejected(&err, Phase::StartTls, code);
        assert_eq!(err.is_transient(), code < 500, "{code}");
        let expected = if code == 421 {
            "EHLO localhost\r\nSTARTTLS\r\n"
        } else {
            "EHLO localhost\r\nSTARTTLS\r\nQUIT\r\n"
        };
        assert_eq!(received(&server, 0).await, expected, "{code}");
    }
}

#[tokio::test(start_paused = true)]
async fn starttls_answered_with_250_is_a_protocol_error() {
    let server = start(
        TestServer::builder()
            .starttls(true)
            .on(Step::StartTls, Fault::Reply { code: 250, text: "sure".into() }),
    )
    .await;
    let err = connect(&server, trusting(&server)).await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::UnexpectedReply { phase: Phase::StartTls, .. })),
        "{err:?}"
    );
    assert_eq!(received(&server, 0).await, "EHLO localhost\r\nSTARTTLS\r\n");
}

#[tokio::test(start_paused = true)]
async fn ehlo_refused_with_tls_required_never_falls_back_to_helo() {
    for code in [500, 502, 550, 554, 451] {
        let server = start(
            TestServer::builder()
                .starttls(true)
                .on(Step::Ehlo, Fault::Reply { code, text: "go away".into() }),
        )
        .await;
        let err = connect(&server, trusting(&server)).await.unwrap_err();
        assert_rejected(&err, Phase::Ehlo, code);
        assert_eq!(received(&server, 0).await, "EHLO localhost\r\nQUIT\r\n", "{code}: no HELO");
    }
    // Without TLS, a 502 to EHLO falls back to HELO (RFC 5321 3.2) and mail flows.
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::Reply { code: 502, text: "EHLO?".into() })).await;
    let mut client = connect(&server, plain()).await.unwrap();
    client.send(&env(), "x").await.unwrap();
    assert!(received(&server, 0).await.starts_with("EHLO localhost\r\nHELO localhost\r\nMAIL FROM:"));
}

#[tokio::test(start_paused = true)]
async fn auth_in_plaintext_is_refused_unless_allowed() {
    let builder = || TestServer::builder().user("u", "p").auth_requires_tls(false);
    for policy in [TlsPolicy::Disabled, TlsPolicy::Opportunistic] {
        let server = start(builder()).await;
        let client =
            smtpkit::Client::builder("localhost").tls(policy).credentials(Credentials::new("u", "p"));
        let err = connect(&server, client).await.unwrap_err();
        assert!(matches!(err, Error::InsecureAuth), "{policy:?}: {err:?}");
        assert_eq!(received(&server, 0).await, "EHLO localhost\r\nQUIT\r\n", "{policy:?}: no AUTH");
    }
    let server = start(builder()).await;
    let client = connect(&server, plain().credentials(Credentials::new("u", "p")).allow_insecure_auth(true))
        .await
        .expect("explicitly allowed");
    client.quit().await.unwrap();
    assert!(received(&server, 0).await.contains("AUTH PLAIN"));
}

#[tokio::test(start_paused = true)]
async fn auth_over_unverified_tls_is_refused_unless_allowed() {
    let server = start(TestServer::builder().starttls(true).user("u", "p")).await;
    let builder = smtpkit::Client::builder("localhost")
        .without_native_roots()
        .danger_accept_invalid_certs(true)
        .credentials(Credentials::new("u", "p"));
    let err = connect(&server, builder.clone()).await.unwrap_err();
    assert!(matches!(err, Error::InsecureAuth), "{err:?}");
    received(&server, 0).await;
    assert!(server.transcripts()[0].contains("C: QUIT"));
    assert!(!server.transcripts()[0].contains("C: AUTH"));
    connect(&server, builder.allow_insecure_auth(true)).await.expect("allowed").quit().await.unwrap();
}

/// A client config that trusts the CA of a *different* server: an unknown CA.
async fn foreign_ca() -> String {
    start(TestServer::builder()).await.ca_pem()
}

#[tokio::test(start_paused = true)]
async fn bad_certificates_are_tls_errors_for_implicit_tls_and_starttls() {
    let other_ca = foreign_ca().await;
    let mut cases = 0;
    for implicit in [true, false] {
        for kind in [CertKind::Expired, CertKind::WrongName, CertKind::SelfSigned, CertKind::Valid] {
            let server = start(
                TestServer::builder()
                    .implicit_tls(implicit)
                    .starttls(!implicit)
                    .certificate(kind)
                    .user("u", "p"),
            )
            .await;
            // Valid certificate, unknown CA: trust another server's CA instead.
            let ca = if kind == CertKind::Valid { other_ca.clone() } else { server.ca_pem() };
            let policy = if implicit { TlsPolicy::Implicit } else { TlsPolicy::Required };
            let builder = smtpkit::Client::builder("localhost")
                .tls(policy)
                .without_native_roots()
                .add_root_pem(ca.as_bytes())
                .unwrap()
                .credentials(Credentials::new("u", "p"));
            let err = connect(&server, builder).await.unwrap_err();
            assert!(matches!(err, Error::Tls(_)), "{implicit} {kind:?}: {err:?}");
            assert!(err.is_permanent());
            let expected = if implicit { "" } else { "EHLO localhost\r\nSTARTTLS\r\n" };
            assert_eq!(
                received(&server, 0).await,
                expected,
                "{implicit} {kind:?}: no plaintext beyond STARTTLS"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 8);
}

#[tokio::test(start_paused = true)]
async fn the_configured_host_is_the_verified_name() {
    // The certificate covers localhost and 127.0.0.1: connecting as another name fails
    // verification even though the CA is trusted (the name checked is the configured host).
    let server = start(TestServer::builder().implicit_tls(true)).await;
    let builder = smtpkit::Client::builder("mx.example.com")
        .tls(TlsPolicy::Implicit)
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .unwrap();
    let err = connect(&server, builder).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    let ok = smtpkit::Client::builder("localhost")
        .tls(TlsPolicy::Implicit)
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .unwrap();
    connect(&server, ok).await.expect("right name").quit().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn tls_eof_without_close_notify_after_221_is_success() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(server_io).await.expect("handshake");
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        let mut buf = vec![0u8; 1024];
        tls.write_all(b"220 mx ESMTP\r\n").await.unwrap();
        let mut seen = Vec::new();
        for reply in [&b"250 mx\r\n"[..], b"221 bye\r\n"] {
            let n = tls.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            tls.write_all(reply).await.unwrap();
        }
        tls.flush().await.unwrap();
        // Drop the TCP-level stream without close_notify.
        let (io, _) = tls.into_inner();
        drop(io);
        (seen, sni)
    });
    let builder = smtpkit::Client::builder("mx.example.test")
        .tls(TlsPolicy::Implicit)
        .danger_accept_invalid_certs(true);
    let client = builder.build().unwrap().connect_with(client_io).await.expect("connects");
    assert!(client.is_tls());
    client.quit().await.expect("221 then EOF without close_notify is a clean end");
    let (seen, sni) = server.await.unwrap();
    assert_eq!(seen, b"EHLO localhost\r\nQUIT\r\n");
    assert_eq!(sni.as_deref(), Some("mx.example.test"), "SNI is the configured host");
}

#[tokio::test(start_paused = true)]
async fn capabilities_learned_before_tls_are_forgotten() {
    // The plaintext EHLO (a man in the middle could write it) offers AUTH LOGIN, a 1-octet
    // SIZE and an extension; after TLS the real EHLO offers none of these.
    let plaintext = b"250-mx\r\n250-STARTTLS\r\n250-AUTH LOGIN\r\n250-SIZE 1\r\n250 X-PLAINTEXT-ONLY\r\n";
    let server = start(
        TestServer::builder()
            .starttls(true)
            .fault(smtpkit::testing::FaultRule::new(Step::Ehlo, Fault::Raw(plaintext.to_vec())).once()),
    )
    .await;
    let mut client = connect(&server, trusting(&server)).await.expect("connects");
    let caps = client.capabilities();
    assert!(!caps.has("X-PLAINTEXT-ONLY") && caps.auth_mechanisms().is_empty() && caps.size().is_none());
    client.send(&env(), "more than one octet").await.expect("SIZE 1 from plaintext does not apply");
    assert_eq!(received(&server, 0).await.matches("EHLO localhost").count(), 2);
}
