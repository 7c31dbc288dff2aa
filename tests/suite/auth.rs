//! AUTH end to end against the in-process server: every mechanism after STARTTLS, the
//! strongest-first choice and forced mechanisms, OAuth token providers, failures, the SCRAM
//! server signature (an impostor is refused), the RFC 7677 vector replayed through the
//! sans-IO `Session`, redaction of the trace, and mutual TLS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::session::Transmit;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use smtpkit::proto::error::ProtocolError;
use smtpkit::proto::sasl::SaslError;
use smtpkit::proto::session::{Event, Session, SessionConfig, Want};
use smtpkit::testing::{Fault, FaultRule, Step, TestServer, TestServerBuilder};
use smtpkit::{Client, ClientBuilder, Credentials, Envelope, Error, Mechanism, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const USER: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "ya29.a0AfH6SMBx-token-for-alice";
const ALL_PASSWORD_MECHANISMS: [&str; 4] = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"];

/// A STARTTLS server with `USER`/`PASSWORD` and `USER`/`TOKEN`.
fn server_builder() -> TestServerBuilder {
    TestServer::builder().starttls(true).user(USER, PASSWORD).oauth_token(USER, TOKEN)
}

async fn start(builder: TestServerBuilder) -> TestServer {
    builder.start().await.expect("test server starts")
}

/// A client for `server`: STARTTLS required, trusting only the server's CA.
fn client(server: &TestServer) -> ClientBuilder {
    Client::builder("127.0.0.1")
        .port(server.addr().port())
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .expect("CA PEM parses")
}

fn password_client(server: &TestServer) -> ClientBuilder {
    client(server).credentials(Credentials::new(USER, PASSWORD))
}

fn oauth_client(server: &TestServer, token: &'static str) -> ClientBuilder {
    client(server).oauth(USER, move || Box::pin(async move { Ok(token.to_string()) }))
}

/// Collects the client's trace lines.
fn traced(builder: ClientBuilder) -> (ClientBuilder, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let builder = builder.trace(move |line| sink.lock().unwrap().push(line.to_string()));
    (builder, lines)
}

fn envelope() -> Envelope {
    Envelope::parse("alice@example.com", &["bob@example.org"]).unwrap()
}

/// Connects, sends one message, quits; returns the mechanism the server recorded with it.
async fn send_one(server: &TestServer, builder: ClientBuilder) -> String {
    let before = server.messages().len();
    let mut client = builder.connect().await.expect("connect and authenticate");
    assert!(client.is_tls());
    client.send(&envelope(), "Subject: auth\r\n\r\nHello\r\n").await.expect("send");
    client.quit().await.expect("quit");
    let messages = server.wait_for_messages(before + 1, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), before + 1);
    let last = messages.last().expect("a message arrived");
    assert!(last.tls);
    assert_eq!(last.authenticated_as.as_deref(), Some(USER));
    last.authenticated_with.clone().expect("authenticated")
}

/// The client lines of connection `conn` that belong to the AUTH exchange: the initial
/// response on the AUTH line, then every response up to the next command.
fn auth_payloads(server: &TestServer, conn: usize) -> Vec<String> {
    let bytes = String::from_utf8(server.received_bytes_with_secrets()[conn].clone()).unwrap();
    let mut lines = bytes.split("\r\n").skip_while(|l| !l.starts_with("AUTH "));
    let auth = lines.next().expect("an AUTH command");
    let mut payloads: Vec<String> = auth.split(' ').skip(2).map(str::to_owned).collect();
    payloads
        .extend(lines.take_while(|l| !l.starts_with("MAIL ") && !l.starts_with("QUIT")).map(str::to_owned));
    payloads.retain(|p| !p.is_empty());
    payloads
}

/// The texts of the server's `334` challenges on connection `conn`.
fn challenges(server: &TestServer, conn: usize) -> Vec<String> {
    let transcript = &server.transcripts()[conn];
    transcript
        .lines()
        .filter_map(|l| l.strip_prefix("S: 334 "))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The trace shows the AUTH command but none of the secret, its base64, the client's
/// AUTH payloads or the server's challenges.
fn assert_redacted(trace: &[String], mechanism: &str, secret: &str, server: &TestServer, conn: usize) {
    let joined = trace.join("\n");
    assert!(
        trace.iter().any(|l| l.starts_with(&format!("C: AUTH {mechanism}"))),
        "the trace must show the AUTH command:\n{joined}"
    );
    let mut forbidden = vec![secret.to_owned(), B64.encode(secret)];
    let payloads = auth_payloads(server, conn);
    assert!(!payloads.is_empty(), "{mechanism}: the client sent AUTH payloads");
    forbidden.extend(payloads);
    forbidden.extend(challenges(server, conn));
    for f in &forbidden {
        assert!(!joined.contains(f.as_str()), "{mechanism}: trace contains {f:?}:\n{joined}");
    }
}

#[tokio::test]
async fn every_password_mechanism_after_starttls_with_a_redacted_trace() {
    let server = start(server_builder().auth_mechanisms(&ALL_PASSWORD_MECHANISMS)).await;
    let mechanisms = [Mechanism::ScramSha256, Mechanism::CramMd5, Mechanism::Plain, Mechanism::Login];
    for (conn, mech) in mechanisms.into_iter().enumerate() {
        let (builder, trace) = traced(password_client(&server).mechanisms(&[mech]));
        assert_eq!(send_one(&server, builder).await, mech.name());
        assert_redacted(&trace.lock().unwrap(), mech.name(), PASSWORD, &server, conn);
    }
    let auths = server.authentications();
    assert_eq!(auths.len(), 4);
    for (conn, (auth, mech)) in auths.iter().zip(mechanisms).enumerate() {
        assert_eq!((auth.connection, auth.mechanism.as_str()), (conn, mech.name()));
        assert_eq!(auth.user.as_deref(), Some(USER));
        assert!(auth.succeeded);
    }
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn oauth_mechanisms_after_starttls_with_a_redacted_trace() {
    let server = start(server_builder()).await;
    for (conn, mech) in [Mechanism::OAuthBearer, Mechanism::XOAuth2].into_iter().enumerate() {
        let (builder, trace) = traced(oauth_client(&server, TOKEN).mechanisms(&[mech]));
        assert_eq!(send_one(&server, builder).await, mech.name());
        assert_redacted(&trace.lock().unwrap(), mech.name(), TOKEN, &server, conn);
    }
    // By default OAUTHBEARER, the standard, goes first.
    assert_eq!(send_one(&server, oauth_client(&server, TOKEN)).await, "OAUTHBEARER");
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn strongest_offered_mechanism_is_chosen() {
    for (offered, expected) in [
        (&["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"][..], "SCRAM-SHA-256"),
        (&["PLAIN", "LOGIN", "CRAM-MD5"], "CRAM-MD5"),
        (&["PLAIN", "LOGIN"], "PLAIN"),
        (&["LOGIN", "PLAIN"], "PLAIN"),
        (&["GSSAPI", "LOGIN", "XOAUTH2"], "LOGIN"),
    ] {
        let server = start(server_builder().auth_mechanisms(offered)).await;
        let ehlo = password_client(&server).connect().await.expect("authenticates");
        assert_eq!(ehlo.capabilities().auth_mechanisms(), offered);
        ehlo.quit().await.unwrap();
        let auths = server.authentications();
        assert_eq!(auths.len(), 1, "{offered:?}: exactly one AUTH exchange");
        assert_eq!(auths[0].mechanism, expected, "{offered:?}");
        assert!(auths[0].succeeded);
    }
}

#[tokio::test]
async fn forced_mechanism_by_builder_and_by_url() {
    let server = start(server_builder().auth_mechanisms(&ALL_PASSWORD_MECHANISMS)).await;
    let forced = password_client(&server).mechanisms(&[Mechanism::Login]);
    assert_eq!(send_one(&server, forced).await, "LOGIN");

    // url_with_password() carries the first user: smtp://alice%40example.com:...@127.0.0.1:port?tls=required
    let url = format!("{}&auth=login", server.url_with_password());
    let from_url = Client::from_url(&url)
        .unwrap()
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .unwrap();
    assert_eq!(send_one(&server, from_url).await, "LOGIN");

    // Forcing a mechanism the server does not offer fails before any AUTH is sent.
    let plain_only = start(server_builder().auth_mechanisms(&["PLAIN"])).await;
    let err = password_client(&plain_only).mechanisms(&[Mechanism::CramMd5]).connect().await.unwrap_err();
    assert!(matches!(&err, Error::NoAuthMechanism(offered) if offered == &["PLAIN"]), "{err:?}");
    assert!(plain_only.authentications().is_empty());
    assert!(!String::from_utf8_lossy(&plain_only.received_bytes()[0]).contains("AUTH"));
}

#[tokio::test]
async fn oauth_provider_is_called_once_per_connection_for_a_fresh_token() {
    let server = start(server_builder().oauth_token(USER, "token-1").oauth_token(USER, "token-2")).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let connector = client(&server)
        .oauth(USER, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(format!("token-{n}")) })
        })
        .build()
        .unwrap();
    // "token-0" is unknown to the server: the first connection fails, later ones succeed
    // only because each gets the provider's next token.
    let err = connector.connect().await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{err:?}");
    for expected in 2..=3 {
        let c = connector.connect().await.expect("fresh token accepted");
        assert_eq!(calls.load(Ordering::SeqCst), expected);
        c.quit().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let outcomes: Vec<bool> = server.authentications().iter().map(|a| a.succeeded).collect();
    assert_eq!(outcomes, [false, true, true]);
}

#[tokio::test]
async fn bad_token_is_auth_failed_after_the_error_challenge() {
    let server = start(server_builder()).await;
    for (conn, mech) in [Mechanism::OAuthBearer, Mechanism::XOAuth2].into_iter().enumerate() {
        let (builder, trace) = traced(oauth_client(&server, "expired-token").mechanisms(&[mech]));
        let err = builder.connect().await.unwrap_err();
        assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{mech:?}: {err:?}");
        // The 334 with the JSON status came first, and the client gave the dummy response
        // the mechanism expects (no violation recorded).
        let json = String::from_utf8(B64.decode(&challenges(&server, conn)[0]).unwrap()).unwrap();
        assert!(json.starts_with("{\"status\":"), "{json}");
        assert_redacted(&trace.lock().unwrap(), mech.name(), "expired-token", &server, conn);
    }
    assert_eq!(server.violations(), Vec::<String>::new());
    let auths = server.authentications();
    assert!(auths.iter().all(|a| !a.succeeded && a.user.as_deref() == Some(USER)), "{auths:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn scram_with_a_wrong_password_is_auth_failed() {
    let server = start(server_builder().auth_mechanisms(&["SCRAM-SHA-256"])).await;
    let err =
        client(&server).credentials(Credentials::new(USER, "wrong password")).connect().await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{err:?}");
    let unknown =
        client(&server).credentials(Credentials::new("mallory", PASSWORD)).connect().await.unwrap_err();
    assert!(matches!(&unknown, Error::AuthFailed(_)), "{unknown:?}");
    assert!(server.authentications().iter().all(|a| !a.succeeded));
}

/// A server that cannot prove it knows the password: a forged `v=`, or `235` without any
/// signature. The client must refuse it with a typed error, and send no mail.
#[tokio::test]
async fn scram_impostor_is_refused() {
    let forged = B64.encode(format!("v={}", B64.encode([0x5a_u8; 32])));
    for fault in [
        Fault::Reply { code: 334, text: forged },
        Fault::Reply { code: 235, text: "2.7.0 Authentication successful".into() },
    ] {
        let server = start(
            server_builder()
                .auth_mechanisms(&["SCRAM-SHA-256"])
                .fault(FaultRule::new(Step::AuthRound(1), fault.clone())),
        )
        .await;
        let err = password_client(&server).connect().await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtocolError::Sasl(SaslError::ServerNotVerified))),
            "{fault:?}: {err:?}"
        );
        assert_eq!(server.fired_faults().len(), 1);
        let bytes = String::from_utf8_lossy(&server.received_bytes()[0]).into_owned();
        assert!(!bytes.contains("MAIL FROM"), "{bytes}");
    }
}

const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc7677_session() -> Session {
    let config = SessionConfig {
        tls: TlsPolicy::Disabled,
        allow_insecure_auth: true,
        credentials: Some(Credentials::new("user", "pencil")),
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, std::time::Instant::now());
    session.set_sasl_nonce("rOprNGfwEbeRWgbNEkqO".into());
    session
}

/// Feed `input`, return what the session writes.
fn exchange(session: &mut Session, input: &str) -> String {
    session.handle_input(std::time::Instant::now(), input.as_bytes());
    let out = session.transmit(std::time::Instant::now()).unwrap_or_default();
    String::from_utf8(out.to_vec()).unwrap()
}

/// RFC 7677 3 at the `Session` level: the RFC's server messages in, the RFC's client
/// messages out, byte for byte.
#[test]
fn rfc7677_vector_through_the_session() {
    let mut s = rfc7677_session();
    assert_eq!(exchange(&mut s, "220 mx ESMTP\r\n"), "EHLO localhost\r\n");
    let auth = exchange(&mut s, "250-mx\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n");
    assert_eq!(auth, format!("AUTH SCRAM-SHA-256 {}\r\n", B64.encode(RFC7677_CLIENT_FIRST)));
    let fin = exchange(&mut s, &format!("334 {}\r\n", B64.encode(RFC7677_SERVER_FIRST)));
    assert_eq!(fin, format!("{}\r\n", B64.encode(RFC7677_CLIENT_FINAL)));
    assert_eq!(exchange(&mut s, &format!("334 {}\r\n", B64.encode(RFC7677_SERVER_FINAL))), "\r\n");
    assert_eq!(exchange(&mut s, "235 2.7.0 ok\r\n"), "");
    assert!(s.is_ready());
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, Event::Ready)), "{events:?}");

    // The same exchange with one bit of the server signature flipped: refused.
    let mut s = rfc7677_session();
    exchange(&mut s, "220 mx ESMTP\r\n");
    exchange(&mut s, "250-mx\r\n250 AUTH SCRAM-SHA-256\r\n");
    exchange(&mut s, &format!("334 {}\r\n", B64.encode(RFC7677_SERVER_FIRST)));
    let forged = RFC7677_SERVER_FINAL.replace("v=6", "v=7");
    exchange(&mut s, &format!("334 {}\r\n", B64.encode(forged)));
    assert!(s.is_closed());
    let closed = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
        Event::Closed(err) => Some(err),
        _ => None,
    });
    assert!(
        matches!(closed, Some(Some(Error::Protocol(ProtocolError::Sasl(SaslError::ServerNotVerified))))),
        "{closed:?}"
    );
}

/// Run `session` over `io` until it is ready, idle or closed; returns the events.
async fn pump(session: &mut Session, io: &mut DuplexStream) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    loop {
        events.extend(std::iter::from_fn(|| session.poll_event()));
        if events.iter().any(|e| matches!(e, Event::Ready | Event::Closed(_))) {
            return events;
        }
        if let Some(bytes) = session.transmit(std::time::Instant::now()) {
            io.write_all(&bytes).await.unwrap();
            continue;
        }
        match session.wants() {
            Want::Read => match tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => session.handle_eof(),
                Ok(Ok(n)) => session.handle_input(std::time::Instant::now(), &buf[..n]),
                Err(_) => panic!("the server went silent"),
            },
            _ => return events,
        }
    }
}

/// RFC 7677 3 end to end: the in-process server, fixed to the RFC's salt, iterations and
/// server nonce, verifies the RFC's client proof and sends the RFC's server signature.
#[tokio::test]
async fn rfc7677_vector_against_the_server() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let server = start(
        TestServer::builder()
            .user("user", "pencil")
            .auth_requires_tls(false)
            .auth_mechanisms(&["SCRAM-SHA-256"])
            .scram_fixed("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt, 4096),
    )
    .await;
    let mut io = server.connect_in_memory();
    let mut session = rfc7677_session();
    let events = pump(&mut session, &mut io).await;
    assert!(events.iter().any(|e| matches!(e, Event::Ready)), "{events:?}");
    let sent = String::from_utf8(server.received_bytes_with_secrets()[0].clone()).unwrap();
    let expected = format!(
        "AUTH SCRAM-SHA-256 {}\r\n{}\r\n\r\n",
        B64.encode(RFC7677_CLIENT_FIRST),
        B64.encode(RFC7677_CLIENT_FINAL)
    );
    assert!(sent.ends_with(&expected), "{sent}");
    assert_eq!(challenges(&server, 0), [B64.encode(RFC7677_SERVER_FIRST), B64.encode(RFC7677_SERVER_FINAL)]);
    let auths = server.authentications();
    assert_eq!((auths[0].mechanism.as_str(), auths[0].succeeded), ("SCRAM-SHA-256", true));
}

#[tokio::test]
async fn server_accepts_only_what_it_advertises() {
    let server = start(
        TestServer::builder()
            .user(USER, PASSWORD)
            .auth_requires_tls(false)
            .auth_mechanisms(&["SCRAM-SHA-256", "cram-md5"]),
    )
    .await;
    let mut io = server.connect_in_memory();
    let mut lines = String::new();
    let mut buf = vec![0; 4096];
    io.write_all(b"EHLO c\r\nAUTH LOGIN\r\nAUTH CRAM-MD5 dGlt\r\nAUTH GSSAPI\r\nQUIT\r\n").await.unwrap();
    while let Ok(n) = io.read(&mut buf).await {
        if n == 0 {
            break;
        }
        lines.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(lines.contains("250 AUTH SCRAM-SHA-256 CRAM-MD5\r\n"), "{lines}");
    let codes: Vec<&str> =
        lines.lines().filter(|l| l.as_bytes().get(3) == Some(&b' ')).map(|l| &l[..3]).collect();
    assert_eq!(codes, ["220", "250", "504", "501", "504", "221"], "{lines}");
}

#[tokio::test]
async fn mutual_tls_with_the_client_certificate_and_without() {
    let server = start(server_builder().require_client_cert(true)).await;
    let with_cert = password_client(&server)
        .client_certificate_pem(server.client_cert_pem().as_bytes(), server.client_key_pem().as_bytes())
        .unwrap();
    assert_eq!(send_one(&server, with_cert).await, "PLAIN");
    assert!(server.tls_client_certificates()[0].is_some());

    let err = password_client(&server).connect().await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "no client certificate: {err:?}");

    // A certificate from another CA is refused too.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let stranger = params.self_signed(&key).unwrap();
    let err = password_client(&server)
        .client_certificate_pem(stranger.pem().as_bytes(), key.serialize_pem().as_bytes())
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "foreign client certificate: {err:?}");

    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.tls_client_certificates().iter().filter(|c| c.is_some()).count(), 1);
    let transcripts = server.transcripts();
    assert!(transcripts[1..].iter().all(|t| t.contains("TLS handshake failed")), "{transcripts:?}");
}

/// `Debug` of a session holding an unsent AUTH line shows neither the line's bytes nor the
/// password.
#[test]
fn session_debug_hides_the_unsent_auth_line() {
    let config = SessionConfig {
        tls: TlsPolicy::Disabled,
        allow_insecure_auth: true,
        credentials: Some(Credentials::new(USER, PASSWORD)),
        mechanisms: vec![Mechanism::Plain],
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, std::time::Instant::now());
    exchange(&mut s, "220 mx ESMTP\r\n");
    s.handle_input(std::time::Instant::now(), b"250-mx\r\n250 AUTH PLAIN\r\n");
    let debug = format!("{s:?}");
    let out = s.transmit(std::time::Instant::now()).unwrap();
    let line = String::from_utf8(out.to_vec()).unwrap();
    let ir = line.strip_prefix("AUTH PLAIN ").unwrap().trim_end();
    let as_numbers = format!("{:?}", ir.as_bytes());
    let as_numbers = as_numbers.trim_start_matches('[').trim_end_matches(']');
    for leak in [ir, as_numbers, PASSWORD] {
        assert!(!debug.contains(leak), "Debug shows {leak:?}: {debug}");
    }
}

/// Credentials too long for the 512-octet AUTH line (RFC 4954 4) go after an empty `334`:
/// long OAuth tokens are common. Every mechanism with an initial response takes that path.
#[tokio::test]
async fn long_credentials_go_after_an_empty_challenge() {
    let user = format!("{}@example.com", "u".repeat(400));
    let token: Arc<str> = format!("ya29.{}", "t".repeat(1500)).into();
    let server = start(
        TestServer::builder()
            .starttls(true)
            .user(&user, PASSWORD)
            .oauth_token(&user, &*token)
            .auth_mechanisms(&["SCRAM-SHA-256", "PLAIN", "OAUTHBEARER", "XOAUTH2"]),
    )
    .await;
    let password = [Mechanism::ScramSha256, Mechanism::Plain].map(|m| (m, false));
    let oauth = [Mechanism::OAuthBearer, Mechanism::XOAuth2].map(|m| (m, true));
    for (conn, (mech, is_oauth)) in password.into_iter().chain(oauth).enumerate() {
        let builder = if is_oauth {
            let token = token.clone();
            client(&server).oauth(user.clone(), move || {
                let token = token.to_string();
                Box::pin(async move { Ok(token) })
            })
        } else {
            client(&server).credentials(Credentials::new(user.clone(), PASSWORD))
        };
        let c = builder.mechanisms(&[mech]).connect().await.unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        c.quit().await.unwrap();
        let bytes = String::from_utf8(server.received_bytes()[conn].clone()).unwrap();
        assert!(bytes.contains(&format!("AUTH {}\r\n", mech.name())), "{mech:?}: no initial response");
        assert!(server.transcripts()[conn].contains("S: 334 \n"), "{mech:?}: empty challenge");
    }
    let auths = server.authentications();
    assert_eq!(auths.len(), 4);
    assert!(auths.iter().all(|a| a.succeeded && a.user.as_deref() == Some(user.as_str())), "{auths:?}");
}
