//! AUTH fallback end to end against the in-process server: a mechanism the server refuses
//! as unsupported or unavailable (504, 534, 538) makes the client try the next advertised
//! one; bad credentials (535) stop it at once, with no second AUTH on the wire; every
//! mechanism refused gives `Error::AuthMechanismsRefused` listing what was tried; the SCRAM
//! nonce survives a refusal of an earlier mechanism.

use std::time::Duration;

use smtpkit::testing::{Fault, FaultRule, Step, TestServer, TestServerBuilder};
use smtpkit::{Client, ClientBuilder, Credentials, Envelope, Error, Mechanism};

const USER: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// Every password mechanism, in the server's (not the client's) order.
const OFFERED: [&str; 4] = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"];

fn server_builder() -> TestServerBuilder {
    TestServer::builder().starttls(true).user(USER, PASSWORD).auth_mechanisms(&OFFERED)
}

fn client(server: &TestServer, password: &str) -> ClientBuilder {
    Client::builder("127.0.0.1")
        .port(server.addr().port())
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .expect("CA PEM parses")
        .credentials(Credentials::new(USER, password))
}

/// `code` answers the first AUTH command of the server's life, once.
fn refuse_first(code: u16, text: &str) -> FaultRule {
    FaultRule::new(Step::AuthRound(0), Fault::Reply { code, text: text.into() }).once()
}

/// The mechanisms named by the AUTH commands the client wrote on connection `conn`.
fn auth_commands(server: &TestServer, conn: usize) -> Vec<String> {
    server.transcripts()[conn]
        .lines()
        .filter_map(|l| l.strip_prefix("C: AUTH "))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

/// True once connection `conn` has sent QUIT (the client may return its error before the
/// server has read the QUIT behind it): polled for at most five seconds.
async fn quit_arrives(server: &TestServer, conn: usize) -> bool {
    for _ in 0..100 {
        if server.transcripts()[conn].lines().any(|l| l == "C: QUIT") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Connects with the right password, sends one message and quits; returns the mechanism
/// the server says the message was authenticated with.
async fn delivered_with(server: &TestServer) -> String {
    let mut c = client(server, PASSWORD).connect().await.expect("authenticates after the fallback");
    let envelope = Envelope::parse(USER, &["bob@example.org"]).unwrap();
    c.send(&envelope, "Subject: fallback\r\n\r\nhi\r\n").await.expect("send");
    c.quit().await.expect("quit");
    let messages = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].authenticated_as.as_deref(), Some(USER));
    messages[0].authenticated_with.clone().expect("authenticated")
}

async fn falls_back_after(code: u16, text: &str) {
    let server = server_builder().fault(refuse_first(code, text)).start().await.unwrap();
    assert_eq!(delivered_with(&server).await, "CRAM-MD5", "{code}");
    // Strongest first: SCRAM-SHA-256 refused, then CRAM-MD5, and nothing else.
    assert_eq!(auth_commands(&server, 0), ["SCRAM-SHA-256", "CRAM-MD5"], "{code}");
    assert_eq!(server.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_504_to_the_first_mechanism_falls_back_to_the_next() {
    falls_back_after(504, "5.5.4 Unrecognized authentication type").await;
}

#[tokio::test]
async fn a_534_to_the_first_mechanism_falls_back_to_the_next() {
    falls_back_after(534, "5.7.9 Authentication mechanism is too weak").await;
}

#[tokio::test]
async fn a_538_to_the_first_mechanism_falls_back_to_the_next() {
    falls_back_after(538, "5.7.11 Encryption required for requested authentication mechanism").await;
}

#[tokio::test]
async fn a_535_stops_at_once_without_a_second_auth() {
    let server = server_builder().start().await.unwrap();
    let err = client(&server, "wrong password").connect().await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{err:?}");
    assert_eq!(auth_commands(&server, 0), ["SCRAM-SHA-256"]);
    assert!(quit_arrives(&server, 0).await, "{}", server.transcripts()[0]);
}

#[tokio::test]
async fn a_535_after_a_fallback_stops_there() {
    let server = server_builder().fault(refuse_first(504, "5.5.4 not here")).start().await.unwrap();
    let err = client(&server, "wrong password").connect().await.unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(r) if r.code().0 == 535), "{err:?}");
    // PLAIN and LOGIN are advertised too, but bad credentials are never tried again.
    assert_eq!(auth_commands(&server, 0), ["SCRAM-SHA-256", "CRAM-MD5"]);
}

#[tokio::test]
async fn every_mechanism_refused_is_a_typed_error_listing_them() {
    let server = server_builder()
        .fault(refuse_first(504, "5.5.4 no SCRAM here"))
        .fault(refuse_first(534, "5.7.9 too weak"))
        .fault(refuse_first(538, "5.7.11 encryption required"))
        .on(Step::AuthRound(0), Fault::Reply { code: 504, text: "5.5.4 no".into() })
        .start()
        .await
        .unwrap();
    let err = client(&server, PASSWORD).connect().await.unwrap_err();
    let Error::AuthMechanismsRefused(tried) = &err else { panic!("{err:?}") };
    let tried: Vec<(Mechanism, u16)> = tried.iter().map(|t| (t.mechanism, t.reply.code().0)).collect();
    assert_eq!(
        tried,
        [
            (Mechanism::ScramSha256, 504),
            (Mechanism::CramMd5, 534),
            (Mechanism::Plain, 538),
            (Mechanism::Login, 504)
        ]
    );
    assert!(err.is_permanent() && !err.is_transient(), "{err:?}");
    assert_eq!(err.phase(), Some(smtpkit::Phase::Auth));
    let shown = err.to_string();
    for name in ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"] {
        assert!(shown.contains(name), "{shown}");
    }
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert_eq!(auth_commands(&server, 0), ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"]);
    assert!(quit_arrives(&server, 0).await, "{}", server.transcripts()[0]);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn only_allowed_mechanisms_are_tried_in_the_configured_order() {
    let server = server_builder()
        .on(Step::AuthRound(0), Fault::Reply { code: 504, text: "5.5.4 no".into() })
        .start()
        .await
        .unwrap();
    let err = client(&server, PASSWORD)
        .mechanisms(&[Mechanism::Login, Mechanism::Plain])
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::AuthMechanismsRefused(t) if t.len() == 2), "{err:?}");
    assert_eq!(auth_commands(&server, 0), ["LOGIN", "PLAIN"]);
}

/// The driver's SCRAM nonce is single-use: a mechanism refused before SCRAM must not have
/// consumed it, or SCRAM would be skipped as "no nonce".
#[tokio::test]
async fn scram_after_a_refused_mechanism_still_has_its_nonce() {
    let server = server_builder().fault(refuse_first(504, "5.5.4 no PLAIN")).start().await.unwrap();
    let c = client(&server, PASSWORD)
        .mechanisms(&[Mechanism::Plain, Mechanism::ScramSha256])
        .connect()
        .await
        .expect("SCRAM-SHA-256 after PLAIN was refused");
    c.quit().await.unwrap();
    assert_eq!(auth_commands(&server, 0), ["PLAIN", "SCRAM-SHA-256"]);
    let auths = server.authentications();
    assert!(auths.iter().any(|a| a.mechanism == "SCRAM-SHA-256" && a.succeeded), "{auths:?}");
}
