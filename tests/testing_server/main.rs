//! The in-process test server, driven with raw TCP and a tokio-rustls client.
#![cfg(feature = "testing")]

mod faults;
mod protocol;
mod records;
mod tls_auth;

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
