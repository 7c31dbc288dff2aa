//! The in-process test server, driven with raw TCP and a tokio-rustls client.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::time::Duration;

use smtpkit::testing::{CertKind, Fault, FaultRule, Step, TestServer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

/// A minimal line-level SMTP client for poking at the server.
struct Client<S> {
    stream: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    async fn connect(server: &TestServer) -> Self {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        Client { stream, buf: Vec::new() }
    }

    /// Upgrade to TLS, trusting the server's CA. The read buffer must be empty.
    async fn start_tls(
        self,
        server: &TestServer,
    ) -> std::io::Result<Client<impl AsyncRead + AsyncWrite + Unpin>> {
        assert!(self.buf.is_empty(), "bytes buffered before the handshake: {:?}", self.buf);
        let tls = tls_connect(server, self.stream).await?;
        Ok(Client { stream: tls, buf: Vec::new() })
    }
}

async fn tls_connect(
    server: &TestServer,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).expect("CA PEM")).expect("add CA");
    let config =
        ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .expect("handshake hung")
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client { stream, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes)).await.expect("write hung").expect("write");
    }

    /// Read one complete reply; its lines joined with `\n`, CRLFs removed.
    async fn reply(&mut self) -> String {
        self.try_reply().await.expect("reply")
    }

    /// One reply, or `None` at EOF. Panics if nothing arrives within the wait.
    async fn try_reply(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let done = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if done {
                return Some(lines.join("\n"));
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return Some(String::from_utf8(line).expect("UTF-8 reply"));
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("read hung")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// True if the server closes (EOF or reset) within the wait with nothing more to say.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => self.buf.is_empty(),
            _ => false,
        }
    }

    /// True if nothing at all arrives for `d` (and the connection stays open).
    async fn quiet_for(&mut self, d: Duration) -> bool {
        let mut chunk = [0u8; 64];
        tokio::time::timeout(d, self.stream.read(&mut chunk)).await.is_err() && self.buf.is_empty()
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

async fn greeted(server: &TestServer) -> Client<TcpStream> {
    ehlo(Client::connect(server).await).await
}

/// An in-memory connection past EHLO: deterministic under a paused clock.
async fn greeted_in_memory(server: &TestServer) -> Client<tokio::io::DuplexStream> {
    ehlo(Client::new(server.connect_in_memory())).await
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(mut c: Client<S>) -> Client<S> {
    assert_eq!(code(&c.reply().await), "220");
    assert_eq!(code(&c.cmd("EHLO client.example").await), "250");
    c
}

/// Poll `check` until it holds, for at most the standard wait.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn start(builder: smtpkit::testing::TestServerBuilder) -> TestServer {
    builder.start().await.expect("server starts")
}

#[tokio::test]
async fn greeting_and_default_capabilities() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "220 localhost ESMTP smtpkit-testing");
    let ehlo = c.cmd("EHLO client.example").await;
    assert_eq!(ehlo, "250-localhost greets you\n250-PIPELINING\n250-8BITMIME\n250 ENHANCEDSTATUSCODES");
    assert_eq!(c.cmd("HELO client.example").await, "250 localhost");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 localhost closing connection");
    assert!(c.closed().await);
}

#[tokio::test]
async fn configured_capabilities() {
    let server = start(
        TestServer::builder()
            .hostname("mx.test")
            .pipelining(false)
            .chunking(true)
            .size(Some(1000))
            .eight_bit_mime(false)
            .smtputf8(true)
            .dsn(true)
            .enhanced_status_codes(false)
            .extra_capability("X-FOO bar"),
    )
    .await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "220 mx.test ESMTP smtpkit-testing");
    let ehlo = c.cmd("ehlo client.example").await;
    assert_eq!(
        ehlo,
        "250-mx.test greets you\n250-SIZE 1000\n250-SMTPUTF8\n250-DSN\n250-CHUNKING\n250 X-FOO bar"
    );
    // Without ENHANCEDSTATUSCODES replies carry no x.y.z.
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    // Parameters follow what was advertised.
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> BODY=8BITMIME").await), "555");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> SIZE=1001").await), "552");
    assert_eq!(code(&c.cmd("MAIL FROM:<ü@x.example> SIZE=10 RET=HDRS X-FOO=1 SMTPUTF8").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example> NOTIFY=NEVER").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<c@x.example> FOO=1").await), "555");
}

#[tokio::test]
async fn pipelined_transaction_in_one_write_with_exact_bytes() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    let commands = b"EHLO c.example\r\nMAIL FROM:<a@x.example> BODY=8BITMIME\r\nRCPT TO:<b@x.example>\r\n\
RCPT TO:<c@x.example>\r\nDATA\r\n";
    c.send(commands).await;
    let replies: Vec<String> = [(); 5].iter().map(|_| String::new()).collect();
    let mut got = Vec::new();
    for _ in replies {
        got.push(c.reply().await);
    }
    assert_eq!(code(&got[0]), "250");
    assert_eq!(got[1], "250 2.1.0 Sender OK");
    assert_eq!(got[2], "250 2.1.5 Recipient OK");
    assert_eq!(got[3], "250 2.1.5 Recipient OK");
    assert_eq!(got[4], "354 Start mail input; end with <CRLF>.<CRLF>");
    let body = b"Subject: dots\r\n\r\n..one\r\n...two\r\n.\r\r\nend\r\n.\r\n";
    c.send(body).await;
    assert_eq!(code(&c.reply().await), "250");
    c.send(b"QUIT\r\n").await;
    assert_eq!(code(&c.reply().await), "221");

    let msgs = server.wait_for_messages(1, WAIT).await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.mail_from, "a@x.example");
    assert_eq!(m.mail_params, ["BODY=8BITMIME"]);
    assert_eq!(m.rcpt_to, ["b@x.example", "c@x.example"]);
    assert_eq!(m.data, b"Subject: dots\r\n\r\n.one\r\n..two\r\n\r\r\nend\r\n");
    assert!(!m.tls && !m.via_bdat && m.committed);
    assert_eq!(m.connection, 0);

    let mut expected = commands.to_vec();
    expected.extend_from_slice(body);
    expected.extend_from_slice(b"QUIT\r\n");
    assert_eq!(server.received_bytes(), vec![expected]);
    let transcript = &server.transcripts()[0];
    assert!(transcript.contains("C: RCPT TO:<c@x.example>\nS: 250 2.1.5 Recipient OK\n"), "{transcript}");
    // `\r\r\n` in the body holds a bare CR.
    assert_eq!(server.violations(), ["connection 0: bare CR in message data"]);
}

#[tokio::test]
async fn pipelined_replies_come_as_one_group() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::new(server.connect_in_memory());
    c.reply().await;
    c.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, c.stream.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.ends_with("250 2.1.5 Recipient OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"),
        "{text}"
    );
    assert!(server.violations().is_empty());
}

#[tokio::test]
async fn data_before_354_is_a_violation() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\nx\r\n.\r\n").await;
    for expected in ["250", "250", "354", "250"] {
        assert_eq!(code(&c.reply().await), expected);
    }
    assert_eq!(server.violations(), ["connection 0: message data sent before the 354 reply"]);
}

#[tokio::test]
async fn smuggled_terminators_stay_in_the_data() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n").await;
    for _ in 0..3 {
        c.reply().await;
    }
    let body = b"A\n.\nMAIL FROM:<evil@x.example>\r\nB\r.\r\nC\r\n.\r\n";
    c.send(body).await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].data, b"A\n.\nMAIL FROM:<evil@x.example>\r\nB\r.\r\nC\r\n");
    assert_eq!(
        server.violations(),
        ["connection 0: bare LF in message data", "connection 0: bare CR in message data"]
    );
}

#[tokio::test]
async fn empty_message_and_long_lines() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    for _ in 0..2 {
        c.cmd("MAIL FROM:<>").await;
        c.cmd("RCPT TO:<postmaster>").await;
        assert_eq!(code(&c.cmd("DATA").await), "354");
        if server.messages().is_empty() {
            assert_eq!(code(&c.cmd(".").await), "250");
        } else {
            let long = format!("{}\r\n.", "x".repeat(999));
            assert_eq!(c.cmd(&long).await, "500 5.5.2 Line too long");
        }
    }
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.messages()[0].data, b"");
    let all = server.all_messages();
    assert_eq!(all.len(), 2);
    assert!(!all[1].committed);
}

#[tokio::test]
async fn over_long_command_line_is_refused() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    let line = format!("NOOP {}", "x".repeat(20_000));
    assert_eq!(c.cmd(&line).await, "500 5.5.2 Line too long");
    assert_eq!(code(&c.cmd("NOOP").await), "250");
}

#[tokio::test]
async fn bdat_chunks_and_zero_last() {
    let server = start(TestServer::builder().chunking(true)).await;
    let mut c = greeted(&server).await;
    // Pipelined: MAIL, RCPT and two chunks in one write.
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 7\r\nHello\r\nBDAT 3\r\n.\r\n").await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(c.reply().await, "250 2.0.0 7 octets received");
    assert_eq!(c.reply().await, "250 2.0.0 10 octets received");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 DATA not allowed after BDAT");
    assert_eq!(code(&c.cmd("BDAT 0 LAST").await), "250");
    // A single chunk with LAST, binary content untouched.
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 4 LAST\r\n\0\r\n.").await;
    assert_eq!(code(&c.reply().await), "250");
    // BDAT without a transaction: the chunk is still consumed.
    c.send(b"BDAT 6 LAST\r\nNOOP\r\n").await;
    assert_eq!(code(&c.reply().await), "503");
    assert_eq!(code(&c.cmd("NOOP").await), "250");

    let msgs = server.wait_for_messages(2, WAIT).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].data, b"Hello\r\n.\r\n");
    assert!(msgs[0].via_bdat);
    assert_eq!(msgs[1].data, b"\0\r\n.");
}

#[tokio::test]
async fn bdat_without_chunking_is_not_implemented() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("BDAT 0 LAST").await, "502 5.5.1 Command not implemented");
}

#[tokio::test]
async fn sequencing_errors() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "503 5.5.1 Send EHLO/HELO first");
    c.cmd("EHLO c.example").await;
    assert_eq!(c.cmd("RCPT TO:<b@x.example>").await, "503 5.5.1 Need MAIL before RCPT");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need MAIL before DATA");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example>").await), "250");
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "503 5.5.1 Nested MAIL command");
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 No valid recipients");
    assert_eq!(code(&c.cmd("RSET").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example>").await), "503");
    assert_eq!(code(&c.cmd("VRFY someone").await), "252");
    assert_eq!(code(&c.cmd("EXPN list").await), "502");
    assert_eq!(code(&c.cmd("FROB").await), "500");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> SIZE=10").await), "555");
    assert_eq!(code(&c.cmd("STARTTLS").await), "502");
    assert_eq!(code(&c.cmd("AUTH PLAIN").await), "502");
    assert_eq!(code(&c.cmd("MAIL FROM:<ü@x.example>").await), "553");
}

#[tokio::test]
async fn rejected_recipient_and_sender() {
    let server = start(
        TestServer::builder()
            .reject_recipient("bad@x.example", 550, "5.1.1 no such user")
            .reject_sender("spam@x.example", 553, "5.7.1 go away")
            .max_recipients(2),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("MAIL FROM:<SPAM@x.example>").await, "553 5.7.1 go away");
    c.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&c.cmd("RCPT TO:<good@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<Bad@X.example>").await, "550 5.1.1 no such user");
    assert_eq!(code(&c.cmd("RCPT TO:<other@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<third@x.example>").await, "452 4.5.3 Too many recipients");
    c.cmd("DATA").await;
    c.cmd("hi\r\n.").await;
    let msgs = server.wait_for_messages(1, WAIT).await;
    assert_eq!(msgs[0].rcpt_to, ["good@x.example", "other@x.example"]);
}

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
async fn fault_reply_multiline_and_raw() {
    let server = start(
        TestServer::builder()
            .on(Step::Rcpt(1), Fault::Reply { code: 450, text: "4.2.0 try later\nreally".into() })
            .on(Step::Noop, Fault::Raw(b"25O bad code\r\n".to_vec()))
            .on(Step::Mail, Fault::Reply { code: 250, text: String::new() }),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "250 ");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<c@x.example>").await, "450-4.2.0 try later\n450 really");
    assert_eq!(code(&c.cmd("RCPT TO:<d@x.example>").await), "250");
    assert_eq!(c.cmd("NOOP").await, "25O bad code");
    c.cmd("DATA").await;
    c.cmd(".").await;
    assert_eq!(server.wait_for_messages(1, WAIT).await[0].rcpt_to, ["b@x.example", "d@x.example"]);
    assert_eq!(server.fault_uses(), [1, 1, 1]);
}

#[tokio::test]
async fn fault_close_at_rcpt_and_once_per_connection() {
    let server = start(
        TestServer::builder().fault(FaultRule::new(Step::RcptAny, Fault::Close).on_connection(1).once()),
    )
    .await;
    let mut first = greeted(&server).await;
    first.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&first.cmd("RCPT TO:<b@x.example>").await), "250");
    let mut second = greeted(&server).await;
    second.cmd("MAIL FROM:<a@x.example>").await;
    second.send(b"RCPT TO:<b@x.example>\r\n").await;
    assert!(second.closed().await);
    let mut third = greeted(&server).await;
    third.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&third.cmd("RCPT TO:<b@x.example>").await), "250");
    assert_eq!(server.connection_count(), 3);
    let fired = server.fired_faults();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].connection, fired[0].rule, fired[0].step), (1, 0, Step::RcptAny));
    assert_eq!(fired[0].fault, Fault::Close);
}

#[tokio::test]
async fn fault_close_after_bytes_mid_data() {
    let server = start(TestServer::builder().on(Step::Data, Fault::CloseAfterBytes(10))).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    let _ = c.stream.write_all(b"0123456789abcdef\r\n.\r\n").await;
    assert!(c.closed().await);
    assert!(server.all_messages().is_empty());
    assert!(server.received_bytes()[0].ends_with(b"DATA\r\n0123456789"));
}

#[tokio::test]
async fn fault_commit_then_close_versus_close() {
    let server = start(
        TestServer::builder()
            .fault(FaultRule::new(Step::DataEnd, Fault::CommitThenClose).on_connection(0))
            .fault(FaultRule::new(Step::DataEnd, Fault::Close).on_connection(1)),
    )
    .await;
    for _ in 0..2 {
        let mut c = greeted(&server).await;
        c.cmd("MAIL FROM:<a@x.example>").await;
        c.cmd("RCPT TO:<b@x.example>").await;
        c.cmd("DATA").await;
        c.send(b"body\r\n.\r\n").await;
        assert!(c.closed().await);
    }
    let committed = server.messages();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].connection, 0);
    let all = server.all_messages();
    assert_eq!(all.len(), 2);
    assert!(!all[1].committed);
    assert_eq!(all[1].connection, 1);
}

#[tokio::test]
async fn fault_bdat_last_commit_then_close() {
    let server = start(TestServer::builder().chunking(true).on(Step::BdatLast, Fault::CommitThenClose)).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 2\r\nabBDAT 1 LAST\r\nc").await;
    for _ in 0..3 {
        assert_eq!(code(&c.reply().await), "250");
    }
    assert!(c.closed().await);
    let msgs = server.messages();
    assert_eq!(msgs[0].data, b"abc");
}

#[tokio::test]
async fn fault_bdat_close_after_bytes_mid_chunk() {
    let server =
        start(TestServer::builder().chunking(true).on(Step::Bdat(0), Fault::CloseAfterBytes(3))).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    let _ = c.stream.write_all(b"BDAT 10 LAST\r\n0123456789").await;
    assert!(c.closed().await);
    assert!(server.received_bytes()[0].ends_with(b"LAST\r\n012"));
    assert!(server.all_messages().is_empty());
}

#[tokio::test]
async fn fault_greeting_554_then_only_quit() {
    let server = start(
        TestServer::builder().on(Step::Greeting, Fault::Reply { code: 554, text: "5.7.1 no service".into() }),
    )
    .await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "554 5.7.1 no service");
    assert_eq!(code(&c.cmd("EHLO c.example").await), "503");
    assert_eq!(code(&c.cmd("QUIT").await), "221");
    assert!(c.closed().await);
}

#[tokio::test]
async fn fault_421_closes() {
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::Reply { code: 421, text: "4.3.2 bye".into() }))
            .await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    assert_eq!(c.cmd("EHLO c.example").await, "421 4.3.2 bye");
    assert!(c.closed().await);
}

#[tokio::test(start_paused = true)]
async fn fault_delay_and_trickle_with_paused_clock() {
    let server = start(
        TestServer::builder()
            .on(Step::Greeting, Fault::Delay(Duration::from_secs(300)))
            .on(Step::Noop, Fault::Trickle(Duration::from_secs(1))),
    )
    .await;
    let mut c = Client::new(server.connect_in_memory());
    let t0 = tokio::time::Instant::now();
    let mut greeting = [0u8; 4];
    c.stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 ");
    assert!(t0.elapsed() >= Duration::from_secs(300));
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n") {
        rest.push(c.stream.read_u8().await.unwrap());
    }
    c.cmd("EHLO c.example").await;
    let t1 = tokio::time::Instant::now();
    let reply = c.cmd("NOOP").await;
    assert_eq!(reply, "250 2.0.0 OK");
    // "250 2.0.0 OK\r\n" is 14 bytes: 13 pauses.
    assert_eq!(t1.elapsed().as_secs(), 13);
}

#[tokio::test]
async fn fault_trickle_is_one_byte_per_read() {
    let server =
        start(TestServer::builder().on(Step::Greeting, Fault::Trickle(Duration::from_millis(5)))).await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while !got.ends_with(b"\r\n") {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n >= 1);
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, b"220 localhost ESMTP smtpkit-testing\r\n");
    assert!(reads > 10, "{reads} reads");
}

#[tokio::test]
async fn fault_silence_keeps_the_connection_open() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Silence)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    c.send(b"x\r\n.\r\nNOOP\r\n").await;
    assert!(c.quiet_for(Duration::from_millis(200)).await);
    assert!(server.messages().is_empty());
    assert_eq!(server.all_messages().len(), 1);
    // It keeps recording what arrives.
    c.send(b"QUIT\r\n").await;
    assert!(eventually(|| server.received_bytes()[0].ends_with(b"NOOP\r\nQUIT\r\n")).await);
}

#[tokio::test]
async fn fault_extra_bytes_after_starttls() {
    let server = start(
        TestServer::builder()
            .starttls(true)
            .on(Step::StartTls, Fault::ExtraAfterStartTls(b"250-evil\r\n".to_vec())),
    )
    .await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut c = Client::new(&mut tcp);
    c.reply().await;
    c.cmd("EHLO c.example").await;
    c.send(b"STARTTLS\r\n").await;
    // Both arrive; a correct client treats the extra line as an injection.
    assert_eq!(c.reply().await, "220 2.0.0 Ready to start TLS");
    assert_eq!(c.line().await.as_deref(), Some("250-evil"));
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

#[tokio::test(start_paused = true)]
async fn fault_unsolicited_421_immediate_and_idle() {
    let server = start(
        TestServer::builder()
            .fault(
                FaultRule::new(Step::Command(1), Fault::Unsolicited421 { idle: Duration::ZERO })
                    .on_connection(0),
            )
            .fault(
                FaultRule::new(Step::Ehlo, Fault::Unsolicited421 { idle: Duration::from_millis(300) })
                    .on_connection(1),
            ),
    )
    .await;
    let mut c = greeted_in_memory(&server).await;
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert!(c.reply().await.starts_with("421 4.4.2 "));
    assert!(c.closed().await);

    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2 "));
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    assert!(c.closed().await);
}

#[tokio::test(start_paused = true)]
async fn unsolicited_421_idle_is_cancelled_by_input() {
    let server = start(
        TestServer::builder().on(Step::Ehlo, Fault::Unsolicited421 { idle: Duration::from_millis(300) }),
    )
    .await;
    let mut c = greeted_in_memory(&server).await;
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert!(c.quiet_for(Duration::from_secs(600)).await);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout() {
    let server = start(TestServer::builder().idle_timeout(Some(Duration::from_secs(3)))).await;
    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2 localhost Idle too long"));
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert!(c.closed().await);
}

#[tokio::test]
async fn fault_stop_reading_during_data() {
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    // Writing eventually blocks: the server reads nothing more.
    let chunk = vec![b'x'; 64 * 1024];
    let mut blocked = false;
    for _ in 0..1024 {
        if tokio::time::timeout(Duration::from_millis(200), c.stream.write_all(&chunk)).await.is_err() {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "the server kept reading");
    assert!(server.received_bytes()[0].ends_with(b"DATA\r\n"));
}

#[tokio::test]
async fn fault_raw_then_stop_reading() {
    let server = start(
        TestServer::builder()
            .on(Step::Data, Fault::RawThenStopReading(b"354 go ahead\r\n550 5.7.1 rejected\r\n".to_vec())),
    )
    .await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    assert_eq!(c.reply().await, "550 5.7.1 rejected");
}

#[tokio::test]
async fn fault_auth_334_forever() {
    let server = start(
        TestServer::builder()
            .user("alice", "s3cret")
            .on(Step::Auth, Fault::Reply { code: 334, text: "Zm9v".into() }),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 Zm9v");
    for _ in 0..5 {
        assert_eq!(c.cmd("AAAA").await, "334 Zm9v");
    }
    assert_eq!(code(&c.cmd("*").await), "334");
}

#[tokio::test]
async fn fault_positive_reply_changes_state() {
    // A fault that says 250 to a refused recipient makes it accepted, and 2xx at the final
    // dot commits even an over-long line.
    let server = start(
        TestServer::builder()
            .reject_recipient("bad@x.example", 550, "5.1.1 no")
            .on(Step::RcptAny, Fault::Reply { code: 250, text: "fine".into() })
            .on(Step::DataEnd, Fault::Reply { code: 250, text: "taken".into() }),
    )
    .await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(c.cmd("RCPT TO:<bad@x.example>").await, "250 fine");
    c.cmd("DATA").await;
    let long = format!("{}\r\n.", "y".repeat(2000));
    assert_eq!(c.cmd(&long).await, "250 taken");
    assert_eq!(server.messages()[0].rcpt_to, ["bad@x.example"]);
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let addr = server.addr();
    let mut idle = greeted(&server).await;
    let mut stuck = greeted(&server).await;
    stuck.cmd("MAIL FROM:<a@x.example>").await;
    stuck.cmd("RCPT TO:<b@x.example>").await;
    stuck.cmd("DATA").await;
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown hung");
    assert!(idle.closed().await);
    assert!(stuck.closed().await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drop_closes_open_connections() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    drop(server);
    assert!(c.closed().await);
}

#[tokio::test]
async fn wait_for_messages_returns_at_the_deadline() {
    let server = start(TestServer::builder()).await;
    let t0 = std::time::Instant::now();
    assert!(server.wait_for_messages(1, Duration::from_millis(100)).await.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn concurrent_connections() {
    let server = Arc::new(start(TestServer::builder()).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let server = Arc::clone(&server);
        tasks.spawn(async move {
            let mut c = greeted(&server).await;
            c.cmd(&format!("MAIL FROM:<s{i}@x.example>")).await;
            c.cmd("RCPT TO:<b@x.example>").await;
            c.cmd("DATA").await;
            assert_eq!(code(&c.cmd(&format!("message {i}\r\n.")).await), "250");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(server.wait_for_messages(20, WAIT).await.len(), 20);
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
async fn size_limit_after_data_and_bdat() {
    let server = start(TestServer::builder().size(Some(10)).chunking(true)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example> SIZE=5").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    let reply = c.cmd("0123456789abcdef\r\n.").await;
    assert_eq!(reply, "552 5.3.4 Message size exceeds fixed maximum message size");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 11 LAST\r\n0123456789a").await;
    assert_eq!(code(&c.reply().await), "552");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 10 LAST\r\n0123456789").await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(server.all_messages().iter().map(|m| m.committed).collect::<Vec<_>>(), [false, false, true]);
}

#[tokio::test]
async fn long_lines_allowed_when_configured_and_helo_has_no_extensions() {
    let server = start(TestServer::builder().max_data_line(None)).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    c.cmd("HELO c.example").await;
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> BODY=8BITMIME").await), "555");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    let long = format!("{}\r\n.", "z".repeat(5000));
    assert_eq!(code(&c.cmd(&long).await), "250");
    assert_eq!(server.messages()[0].data.len(), 5002);
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

#[tokio::test]
async fn fault_times_limits_uses() {
    let server =
        start(TestServer::builder().fault(
            FaultRule::new(Step::Noop, Fault::Reply { code: 421, text: "4.3.0 busy".into() }).times(2),
        ))
        .await;
    for expected in ["421", "421", "250"] {
        let mut c = greeted(&server).await;
        assert_eq!(code(&c.cmd("NOOP").await), expected);
    }
    assert_eq!(server.fault_uses(), [2]);
}

#[tokio::test]
async fn fault_reply_then_drop_skips_close_notify() {
    let server = start(
        TestServer::builder()
            .implicit_tls(true)
            .fault(FaultRule::new(Step::Quit, Fault::ReplyThenDrop).on_connection(1)),
    )
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let mut c = Client::new(tls_connect(&server, tcp).await.expect("handshake"));
        c.reply().await;
        assert_eq!(code(&c.cmd("QUIT").await), "221");
        let mut rest = [0u8; 16];
        let end = tokio::time::timeout(WAIT, c.stream.read(&mut rest)).await.expect("read hung");
        outcomes.push(end.map_err(|e| e.kind()));
    }
    // A clean TLS close, then an EOF without close_notify.
    assert_eq!(outcomes, [Ok(0), Err(std::io::ErrorKind::UnexpectedEof)]);
}

#[tokio::test]
async fn fault_raw_then_close() {
    let server =
        start(TestServer::builder().on(Step::Greeting, Fault::RawThenClose(b"\x00garbage".to_vec()))).await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"\x00garbage");
}

#[tokio::test]
async fn fault_commit_then_silence() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::CommitThenSilence)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    c.send(b"x\r\n.\r\n").await;
    assert_eq!(server.wait_for_messages(1, WAIT).await.len(), 1);
    assert!(c.quiet_for(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn fault_repeat_sends_endless_continuation_lines() {
    let server = start(TestServer::builder().on(Step::Ehlo, Fault::Repeat(b"250-x\r\n".to_vec()))).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    c.send(b"EHLO c.example\r\n").await;
    for _ in 0..10_000 {
        assert_eq!(c.line().await.as_deref(), Some("250-x"));
    }
    drop(c);
    // The server notices the client left and ends the connection task.
    assert!(eventually(|| server.transcripts()[0].ends_with("* connection closed\n")).await);
}

#[tokio::test(start_paused = true)]
async fn fault_close_when_idle() {
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::CloseWhenIdle { idle: Duration::from_secs(4) }))
            .await;
    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.closed().await);
    assert_eq!(t0.elapsed(), Duration::from_secs(4));
}

#[tokio::test]
async fn many_messages_on_one_connection() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    for i in 0..300 {
        c.send(format!("MAIL FROM:<a@x.example>\r\nRCPT TO:<b{i}@x.example>\r\nDATA\r\n").as_bytes()).await;
        for expected in ["250", "250", "354"] {
            assert_eq!(code(&c.reply().await), expected);
        }
        c.send(format!("Subject: {i}\r\n\r\n{}\r\n.\r\n", "body ".repeat(100)).as_bytes()).await;
        assert_eq!(code(&c.reply().await), "250");
    }
    let msgs = server.wait_for_messages(300, WAIT).await;
    assert_eq!(msgs.len(), 300);
    assert_eq!(msgs[299].header("subject").as_deref(), Some("299"));
    assert!(server.violations().is_empty());
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

/// The id after `queued as ` in a reply.
fn queued_as(reply: &str) -> String {
    let at = reply.find("queued as ").expect("a queue id") + "queued as ".len();
    reply[at..].to_owned()
}

/// Issue 10 #7: the queue id names one message, not one connection.
#[tokio::test]
async fn every_message_gets_its_own_queue_id() {
    let server = start(TestServer::builder().chunking(true)).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = greeted(&server).await;
        for _ in 0..2 {
            c.cmd("MAIL FROM:<a@x.example>").await;
            c.cmd("RCPT TO:<b@x.example>").await;
            c.cmd("DATA").await;
            ids.push(queued_as(&c.cmd("hi\r\n.").await));
        }
        c.cmd("MAIL FROM:<a@x.example>").await;
        c.cmd("RCPT TO:<b@x.example>").await;
        ids.push(queued_as(&c.cmd("BDAT 4 LAST\r\nhi\r\n").await));
        c.cmd("QUIT").await;
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{ids:?}");
    let messages = server.wait_for_messages(6, WAIT).await;
    let recorded: Vec<String> = messages.iter().map(|m| m.queue_id.clone()).collect();
    assert_eq!(recorded, ids);
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

/// Issue 16 #6: what the server captured reads as a person would read it: decoded
/// subject and display names, the date, the bodies, attachments with their names, types
/// and decoded sizes.
#[tokio::test]
async fn captured_mail_reads_as_a_person_would_read_it() {
    use smtpkit::{Client, Message};
    let server = start(TestServer::builder().smtputf8(true)).await;
    let pdf = [b"%PDF-1.4\n".to_vec(), vec![0xAB; 48_213 - 9]].concat();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let date = std::time::UNIX_EPOCH + Duration::from_secs(1_796_410_800);
    let message = Message::builder()
        .from(("Zoë Chen", "zoe@example.com"))
        .to("Bob <bob@example.com>")
        .cc("carol@example.com")
        .subject("月度报告 — Q4")
        .date(date)
        .text_body("见附件。")
        .html_body("<p>见附件 <img src=\"cid:logo@example.com\"></p>")
        .inline_image("logo@example.com", "image/png", png.clone())
        .attachment("报告.pdf", "application/pdf", pdf.clone())
        .build()
        .unwrap();
    let mut client = Client::from_url(&server.url()).unwrap().connect().await.unwrap();
    client.send_message(&message).await.unwrap();
    client.quit().await.unwrap();
    let got = &server.wait_for_messages(1, WAIT).await[0];

    assert!(got.header("subject").unwrap().starts_with("=?"), "the raw field is encoded");
    assert_eq!(got.subject().as_deref(), Some("月度报告 — Q4"));
    assert_eq!(got.from().len(), 1);
    assert_eq!(got.from()[0].to_string(), "Zoë Chen <zoe@example.com>");
    assert_eq!(got.to()[0].address, "bob@example.com");
    assert_eq!(got.cc()[0].address, "carol@example.com");
    assert_eq!(got.decoded_header("From").as_deref(), Some("Zoë Chen <zoe@example.com>"));
    assert_eq!(got.date(), Some(date));
    assert_eq!(got.message_id().as_deref(), Some(message.message_id().trim_matches(['<', '>'])));
    assert_eq!(got.text_body().as_deref().map(str::trim_end), Some("见附件。"));
    assert!(got.html_body().unwrap().contains("cid:logo@example.com"));

    let files = got.attachments();
    assert_eq!(files.len(), 2, "{files:?}");
    let report = files.iter().find(|f| !f.inline).unwrap();
    assert_eq!(report.file_name.as_deref(), Some("报告.pdf"));
    assert_eq!(report.content_type, "application/pdf");
    assert_eq!(report.size(), 48_213);
    assert_eq!(report.content, pdf);
    let logo = files.iter().find(|f| f.inline).unwrap();
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("logo@example.com"));
    assert_eq!(logo.content, png);
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
