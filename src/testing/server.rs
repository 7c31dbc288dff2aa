//! [`TestServer`]: the running server, its accept loop and what tests read back from it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::builder::{Config, TestServerBuilder};
use super::fault::FiredFault;
use super::record::{Authentication, ReceivedMessage, Recorder};
use super::sasl;
use super::session;
use super::tls::{self, Pki};

/// Buffer size of each direction of an in-memory connection.
const DUPLEX_BUFFER: usize = 64 * 1024;

/// How long [`TestServer::shutdown`] waits for the accept loop to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by the accept loop, every connection task and the [`TestServer`] handle.
pub(crate) struct Shared {
    pub config: Config,
    pub recorder: Recorder,
    pub acceptor: TlsAcceptor,
}

/// An SMTP server running inside the test process, on loopback or in memory.
///
/// It records every message it accepts, the exact bytes and a transcript of every
/// connection, and can misbehave on cue (see [`FaultRule`](super::FaultRule)). Dropping it
/// (or [`shutdown`](Self::shutdown)) stops the listener and closes every open connection.
///
/// ```
/// use std::time::Duration;
/// use smtpkit::testing::TestServer;
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = TestServer::builder().start().await?;
/// let mut conn = BufReader::new(tokio::net::TcpStream::connect(server.addr()).await?);
///
/// // Reads one reply, returning its last line.
/// async fn reply(conn: &mut BufReader<tokio::net::TcpStream>) -> std::io::Result<String> {
///     let mut line = String::new();
///     loop {
///         line.clear();
///         conn.read_line(&mut line).await?;
///         if line.as_bytes().get(3) != Some(&b'-') {
///             return Ok(line);
///         }
///     }
/// }
///
/// assert!(reply(&mut conn).await?.starts_with("220 "));
/// // Commands may be pipelined; the server answers each one, in order.
/// conn.write_all(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
///     .await?;
/// for code in ["250", "250", "250", "354"] {
///     assert!(reply(&mut conn).await?.starts_with(code));
/// }
/// conn.write_all(b"Subject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n").await?;
/// assert!(reply(&mut conn).await?.starts_with("250"));
///
/// let messages = server.wait_for_messages(1, Duration::from_secs(5)).await;
/// assert_eq!(messages[0].rcpt_to, ["b@example.com"]);
/// assert_eq!(messages[0].data, b"Subject: hi\r\n\r\n.leading dot\r\n");
/// # Ok(()) }
/// ```
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca_pem: String,
    ca_der: Vec<u8>,
    client_cert_pem: String,
    client_key_pem: String,
    stop: watch::Sender<bool>,
    in_memory: mpsc::UnboundedSender<DuplexStream>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Start configuring a server.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    pub(crate) async fn start(mut config: Config) -> io::Result<TestServer> {
        let Pki { ca_pem, ca_der, config: tls_config, client_cert_pem, client_key_pem } =
            tls::generate(config.certificate, config.require_client_cert)?;
        if config.scram.salt.is_none() {
            config.scram.salt = Some(sasl::random_bytes(16));
        }
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            recorder: Recorder::default(),
            acceptor: TlsAcceptor::from(tls_config),
        });
        let (stop, stop_rx) = watch::channel(false);
        let (in_memory, in_memory_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx, in_memory_rx));
        Ok(TestServer {
            addr,
            shared,
            ca_pem,
            ca_der,
            client_cert_pem,
            client_key_pem,
            stop,
            in_memory,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL a client can be configured with: `smtp://HOST:PORT?tls=required` with STARTTLS,
    /// `smtps://HOST:PORT` with implicit TLS, `smtp://HOST:PORT?tls=none` otherwise.
    ///
    /// It carries no credentials, so it is safe to print or log; a client built from it does
    /// not authenticate. Use [`url_with_password`](Self::url_with_password) for one that does.
    pub fn url(&self) -> String {
        self.url_with_userinfo("")
    }

    /// [`url`](Self::url) with the first configured user as percent-encoded
    /// `user:password@`, so `Client::from_url` authenticates. The result holds the password:
    /// do not print or log it. Without a configured user it equals [`url`](Self::url).
    pub fn url_with_password(&self) -> String {
        let userinfo = self
            .shared
            .config
            .users
            .first()
            .map(|(u, p)| format!("{}:{}@", percent_encode(u), percent_encode(p)));
        self.url_with_userinfo(&userinfo.unwrap_or_default())
    }

    fn url_with_userinfo(&self, userinfo: &str) -> String {
        let config = &self.shared.config;
        if config.implicit_tls {
            format!("smtps://{userinfo}{}", self.addr)
        } else if config.starttls {
            format!("smtp://{userinfo}{}?tls=required", self.addr)
        } else {
            format!("smtp://{userinfo}{}?tls=none", self.addr)
        }
    }

    /// PEM of the CA that issued the server certificate: the trust anchor for clients.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// DER of the same CA certificate.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    /// PEM of a client certificate issued by the server's client CA, followed by that CA:
    /// a valid identity for [`require_client_cert`](TestServerBuilder::require_client_cert)
    /// (for example with `ClientBuilder::client_certificate_pem`).
    pub fn client_cert_pem(&self) -> String {
        self.client_cert_pem.clone()
    }

    /// PEM (PKCS#8) of the private key of [`client_cert_pem`](Self::client_cert_pem).
    pub fn client_key_pem(&self) -> String {
        self.client_key_pem.clone()
    }

    /// The DER of the certificate each connection's client presented in its TLS handshake
    /// (index = connection number); `None` without TLS or without a client certificate.
    pub fn tls_client_certificates(&self) -> Vec<Option<Vec<u8>>> {
        self.shared.recorder.tls_client_certificates()
    }

    /// Every AUTH exchange that ended, in order: which mechanism, on which connection,
    /// for which user, and whether it succeeded.
    pub fn authentications(&self) -> Vec<Authentication> {
        self.shared.recorder.authentications()
    }

    /// Open a connection to the server through an in-memory pipe instead of TCP.
    ///
    /// Nothing here depends on the operating system's clock or sockets, so tests that pause
    /// tokio's clock (`#[tokio::test(start_paused = true)]`) run deterministically. The
    /// connection is numbered like TCP ones, in the order the server picks it up.
    pub fn connect_in_memory(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(DUPLEX_BUFFER);
        // If the accept loop is gone the server half is dropped and the client sees EOF.
        let _ = self.in_memory.send(server);
        client
    }

    /// The messages committed so far (a 2xx was sent, or was about to be with
    /// [`Fault::CommitThenClose`](super::Fault::CommitThenClose)), in commit order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.recorder.messages(true)
    }

    /// Every message received in full, including those refused at the end of data or lost
    /// to a fault there (`committed == false`).
    pub fn all_messages(&self) -> Vec<ReceivedMessage> {
        self.shared.recorder.messages(false)
    }

    /// Wait until at least `n` messages are committed or `timeout` passes, then return
    /// [`messages`](Self::messages). Check the length: after the timeout there may be fewer.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.recorder.changed.notified();
            tokio::pin!(changed);
            // Register interest before checking, so a commit in between is not missed.
            changed.as_mut().enable();
            if self.shared.recorder.committed_count() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        self.messages()
    }

    /// The bytes received on each connection (index = connection number), decrypted for
    /// TLS; TLS handshake records are not included. At most 64 MiB per connection.
    ///
    /// AUTH payloads (the initial response on the `AUTH` line and every client response of
    /// the exchange, except a `*` cancel) are replaced by `[redacted]`, so a test that
    /// prints these bytes never prints a credential. Everything else is exact.
    /// [`received_bytes_with_secrets`](Self::received_bytes_with_secrets) keeps them.
    pub fn received_bytes(&self) -> Vec<Vec<u8>> {
        self.shared.recorder.received_bytes(false)
    }

    /// The exact bytes received on each connection, AUTH payloads included: for tests that
    /// check what a client sent while authenticating. Do not print them.
    pub fn received_bytes_with_secrets(&self) -> Vec<Vec<u8>> {
        self.shared.recorder.received_bytes(true)
    }

    /// A readable transcript per connection: `C: ` lines from the client, `S: ` lines from
    /// the server, `* ` lines for events (TLS, close, protocol violations). Message data is
    /// summarised, not repeated. AUTH payloads show as `[redacted]`, as in
    /// [`received_bytes`](Self::received_bytes).
    pub fn transcripts(&self) -> Vec<String> {
        self.shared.recorder.transcripts(false)
    }

    /// [`transcripts`](Self::transcripts) with the AUTH payloads as sent. Do not print them.
    pub fn transcripts_with_secrets(&self) -> Vec<String> {
        self.shared.recorder.transcripts(true)
    }

    /// Protocol violations by clients, as `connection N: what`: bare LF, bare CR or NUL in
    /// message data, lines over the data line limit, command lines ending in a bare LF,
    /// message data sent before the `354`, plaintext pipelined after STARTTLS. A correct
    /// client leaves this empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.recorder.violations()
    }

    /// The TLS server name (SNI) each connection's client sent, by connection number; `None`
    /// without TLS or without SNI (clients send none for IP addresses).
    pub fn tls_server_names(&self) -> Vec<Option<String>> {
        self.shared.recorder.tls_server_names()
    }

    /// How many connections the server has accepted.
    pub fn connection_count(&self) -> usize {
        self.shared.recorder.connection_count()
    }

    /// How many times each fault rule fired, in the order the rules were added.
    pub fn fault_uses(&self) -> Vec<usize> {
        self.shared.config.rules.iter().map(|r| r.uses()).collect()
    }

    /// Every fault injected so far, in the order they fired.
    pub fn fired_faults(&self) -> Vec<FiredFault> {
        self.shared.recorder.fired_faults()
    }

    /// Stop accepting, close every open connection and wait (at most a few seconds) until
    /// all connection tasks have ended.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut in_memory: mpsc::UnboundedReceiver<DuplexStream>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Replies are small and latency matters to clients measuring pipelining.
                    let _ = tcp.set_nodelay(true);
                    let id = shared.recorder.open_connection();
                    tasks.spawn(session::run(Arc::clone(&shared), id, tcp));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(pipe) = in_memory.recv() => {
                let id = shared.recorder.open_connection();
                tasks.spawn(session::run(Arc::clone(&shared), id, pipe));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    tasks.shutdown().await;
}

/// RFC 3986 2.1 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("alice"), "alice");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }
}
