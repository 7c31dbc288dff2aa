//! STARTTLS, implicit TLS, certificates, AUTH, URLs and what the record shows of secrets.

use super::*;

#[tokio::test]
async fn starttls_forgets_state_and_offers_auth() {
    let server = start(TestServer::builder().starttls(true).user("alice", "s3cret").require_auth(true)).await;
    assert!(server.url_with_password().starts_with("smtp://alice:s3cret@127.0.0.1:"));
    assert!(server.url_with_password().ends_with("?tls=required"));
    assert_eq!(server.url(), format!("smtp://{}?tls=required", server.addr()));
    let mut c = greeted(&server).await;
    let ehlo = c.cmd("EHLO c.example").await;
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(code(&c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").await), "538");
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "530 5.7.0 Authentication required");
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS");
    let mut c = c.start_tls(&server).await.expect("handshake");
    // RFC 3207: EHLO must be sent again.
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example>").await), "503");
    let ehlo = c.cmd("EHLO c.example").await;
    assert!(!ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(code(&c.cmd("STARTTLS").await), "503");
    assert_eq!(c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").await, "235 2.7.0 Authentication successful");
    c.cmd("MAIL FROM:<a@x.example> AUTH=<>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    assert_eq!(code(&c.cmd("secure\r\n.").await), "250");
    c.cmd("QUIT").await;
    let msgs = server.wait_for_messages(1, WAIT).await;
    assert!(msgs[0].tls);
    assert_eq!(msgs[0].authenticated_as.as_deref(), Some("alice"));
    // The decrypted bytes are recorded after the plaintext ones.
    let bytes = String::from_utf8(server.received_bytes()[0].clone()).unwrap();
    assert!(bytes.contains("STARTTLS\r\nMAIL FROM:<a@x.example>\r\nEHLO c.example\r\n"), "{bytes}");
    assert!(server.transcripts()[0].contains("* TLS handshake complete"));
    assert_eq!(server.tls_server_names(), [Some("localhost".to_owned())]);
}

#[tokio::test]
async fn implicit_tls() {
    let server = start(TestServer::builder().implicit_tls(true)).await;
    assert!(server.url().starts_with("smtps://127.0.0.1:"));
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut c = Client::new(tls_connect(&server, tcp).await.expect("handshake"));
    assert_eq!(code(&c.reply().await), "220");
    let ehlo = c.cmd("EHLO c.example").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    c.cmd("x\r\n.").await;
    assert!(server.wait_for_messages(1, WAIT).await[0].tls);
}

#[tokio::test]
async fn bad_certificates_fail_verification() {
    for kind in [CertKind::Expired, CertKind::WrongName, CertKind::SelfSigned] {
        let server = start(TestServer::builder().implicit_tls(true).certificate(kind)).await;
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let err = tls_connect(&server, tcp).await.expect_err("must not verify");
        let cert_err = match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(e)) => e.clone(),
            other => panic!("{kind:?}: not a certificate error: {other:?} ({err})"),
        };
        let ok = match kind {
            CertKind::Expired => {
                matches!(cert_err, CertificateError::Expired | CertificateError::ExpiredContext { .. })
            }
            CertKind::WrongName => matches!(
                cert_err,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ),
            _ => matches!(cert_err, CertificateError::UnknownIssuer),
        };
        assert!(ok, "{kind:?}: {cert_err:?}");
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn auth_plain_and_login() {
    let server = start(TestServer::builder().user("alice", "s3cret").user("bob", "pw")).await;
    let mut c = greeted(&server).await;
    // PLAIN, continuation form, wrong password.
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 ");
    assert_eq!(c.cmd(&b64("\0alice\0wrong")).await, "535 5.7.8 Authentication credentials invalid");
    // Cancelled exchange.
    assert_eq!(code(&c.cmd("AUTH LOGIN").await), "334");
    assert_eq!(c.cmd("*").await, "501 5.0.0 Authentication cancelled");
    // Undecodable response.
    assert_eq!(code(&c.cmd("AUTH PLAIN !!!").await), "501");
    assert_eq!(code(&c.cmd("AUTH CRAM-MD5").await), "504");
    // LOGIN, good.
    assert_eq!(c.cmd("AUTH LOGIN").await, format!("334 {}", b64("Username:")));
    assert_eq!(c.cmd(&b64("bob")).await, format!("334 {}", b64("Password:")));
    assert_eq!(code(&c.cmd(&b64("pw")).await), "235");
    assert_eq!(code(&c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").await), "503");

    // PLAIN with initial response, and the continuation form, on fresh connections.
    let mut c = greeted(&server).await;
    assert_eq!(code(&c.cmd(&format!("AUTH PLAIN {}", b64("alice\0alice\0s3cret"))).await), "235");
    let mut c = greeted(&server).await;
    c.cmd("AUTH PLAIN").await;
    assert_eq!(code(&c.cmd(&b64("\0bob\0pw")).await), "235");
    let mut c = greeted(&server).await;
    c.cmd("AUTH LOGIN").await;
    c.cmd(&b64("bob")).await;
    assert_eq!(code(&c.cmd(&b64("nope")).await), "535");
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let server = start(TestServer::builder().starttls(true)).await;
    let mut c = greeted(&server).await;
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n").await;
    assert_eq!(code(&c.reply().await), "220");
    let mut c = c.start_tls(&server).await.expect("handshake");
    assert_eq!(code(&c.cmd("EHLO c.example").await), "250");
    assert!(server.transcripts()[0].contains("plaintext bytes after STARTTLS discarded"));
}

#[tokio::test]
async fn url_forms() {
    let plain = start(TestServer::builder().user("a b", "p@ss")).await;
    assert_eq!(plain.url_with_password(), format!("smtp://a%20b:p%40ss@{}?tls=none", plain.addr()));
    // Issue 10 #7: the plain URL is safe to print.
    assert_eq!(plain.url(), format!("smtp://{}?tls=none", plain.addr()));
    assert!(!format!("{plain:?}").contains("p%40ss"), "{plain:?}");
    let anonymous = start(TestServer::builder().implicit_tls(true)).await;
    assert_eq!(anonymous.url_with_password(), anonymous.url());
    assert!(plain.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn require_tls_refuses_plaintext_mail() {
    let server = start(TestServer::builder().starttls(true).require_tls(true)).await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "530 5.7.0 Must issue a STARTTLS command first");
    c.cmd("STARTTLS").await;
    let mut c = c.start_tls(&server).await.expect("handshake");
    c.cmd("EHLO c.example").await;
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example>").await), "250");
}

/// The builder's `Debug` names users but never prints their passwords or tokens.
#[test]
fn builder_debug_never_shows_credentials() {
    let builder =
        TestServer::builder().user("alice", "hunter2-secret").oauth_token("bob", "ya29.token-secret");
    let shown = format!("{builder:?}");
    assert!(shown.contains("alice") && shown.contains("bob"), "{shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("token-secret"), "{shown}");
}

/// Issue 10 #7: what a test prints of the server never shows an AUTH payload, unless it
/// asks for the raw bytes by name.
#[tokio::test]
async fn auth_payloads_are_redacted_unless_asked_for() {
    let server = start(TestServer::builder().auth_requires_tls(false).user("alice", "s3cret")).await;
    let plain = "AGFsaWNlAHMzY3JldA==";
    let mut c = greeted(&server).await;
    assert_eq!(code(&c.cmd(&format!("AUTH PLAIN {plain}")).await), "235");
    c.cmd("QUIT").await;
    let (user, password) = ("YWxpY2U=", "czNjcmV0");
    let mut c = greeted(&server).await;
    assert_eq!(code(&c.cmd("AUTH LOGIN").await), "334");
    assert_eq!(code(&c.cmd(user).await), "334");
    assert_eq!(code(&c.cmd(password).await), "235");
    c.cmd("NOOP").await;
    c.cmd("QUIT").await;
    assert!(eventually(|| server.transcripts()[1].contains("C: QUIT")).await);

    let bytes: Vec<String> =
        server.received_bytes().iter().map(|b| String::from_utf8_lossy(b).into()).collect();
    let transcripts = server.transcripts();
    for secret in [plain, user, password] {
        assert!(!bytes.concat().contains(secret), "{secret} in {bytes:?}");
        assert!(!transcripts.concat().contains(secret), "{secret} in {transcripts:?}");
    }
    assert!(bytes[0].contains("EHLO client.example\r\nAUTH PLAIN [redacted]\r\nQUIT\r\n"), "{}", bytes[0]);
    assert!(bytes[1].contains("AUTH LOGIN\r\n[redacted]\r\n[redacted]\r\nNOOP\r\n"), "{}", bytes[1]);
    assert!(transcripts[0].contains("C: AUTH PLAIN [redacted]\n"), "{}", transcripts[0]);
    assert!(
        transcripts[1].contains("C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: [redacted]\n"),
        "{}",
        transcripts[1]
    );

    let raw = server.received_bytes_with_secrets();
    assert!(String::from_utf8_lossy(&raw[0]).contains(&format!("AUTH PLAIN {plain}\r\nQUIT\r\n")));
    assert!(String::from_utf8_lossy(&raw[1]).contains(&format!("AUTH LOGIN\r\n{user}\r\n{password}\r\n")));
    let raw = server.transcripts_with_secrets();
    assert!(raw[0].contains(&format!("C: AUTH PLAIN {plain}\n")), "{}", raw[0]);
    assert!(raw[1].contains(&format!("C: {user}\nS: 334 UGFzc3dvcmQ6\nC: {password}\n")), "{}", raw[1]);
}

/// An AUTH payload too long for the server (over 12,288 octets, RFC 4954 4) is refused,
/// and redacted like any other, whether it came in one read or many.
#[tokio::test]
async fn over_long_auth_payloads_are_redacted_too() {
    let server = start(TestServer::builder().auth_requires_tls(false).user("alice", "s3cret")).await;
    let secret = "S".repeat(20_000);
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd(&format!("AUTH PLAIN {secret}")).await, "500 5.5.2 Line too long");
    assert_eq!(code(&c.cmd("AUTH LOGIN").await), "334");
    // In pieces, so the server sees the line grow past its limit over several reads.
    for piece in secret.as_bytes().chunks(4096) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.cmd("").await, "500 5.5.2 Line too long");
    c.cmd("QUIT").await;
    assert!(eventually(|| server.transcripts()[0].contains("C: QUIT")).await);
    let bytes = String::from_utf8(server.received_bytes()[0].clone()).unwrap();
    assert!(!bytes.contains("SSSS"), "{}", &bytes[..200.min(bytes.len())]);
    assert!(
        bytes.contains("EHLO client.example\r\n[redacted]\r\nAUTH LOGIN\r\n[redacted]\r\nQUIT\r\n"),
        "{bytes}"
    );
    let raw = String::from_utf8(server.received_bytes_with_secrets()[0].clone()).unwrap();
    assert!(raw.contains(&format!("AUTH PLAIN {secret}\r\nAUTH LOGIN\r\n{secret}\r\nQUIT")));
}
