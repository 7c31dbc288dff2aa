//! The async client: connect, secure the channel, authenticate, hand over messages and
//! learn exactly what happened to each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), smtpkit::Error> {
//! use smtpkit::{Client, Envelope};
//! let mut client = Client::from_url("smtp://user:app-password@mail.example.com")?.connect().await?;
//! let envelope = Envelope::parse("me@example.com", &["you@example.org"])?;
//! let report = client.send(&envelope, "Subject: hi\r\n\r\nHello\r\n").await?;
//! println!("queued: {}", report.reply);
//! client.quit().await?;
//! # Ok(()) }
//! ```

pub mod url;

use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio_rustls::rustls::ClientConfig;

use crate::connect::NetOptions;
use crate::driver::tls::{TlsOptions, parse_pem_certs, parse_pem_key, server_name};
use crate::driver::transport::{BoxStream, Stream, Transport};
use crate::driver::{Driver, TlsTarget, TraceSink, now};
use crate::proto::address::{EhloName, Envelope};
use crate::proto::capabilities::Capabilities;
use crate::proto::dot_stuff::LineEndings;
use crate::proto::error::Error;
use crate::proto::params::MessageOptions;
use crate::proto::reply::{Reply, ReplyLimits};
use crate::proto::sasl::{Credentials, Mechanism};
use crate::proto::session::{Event, MessageId, SendReport, Session, SessionConfig, TlsPolicy, TraceLine};
use crate::proto::timeouts::Timeouts;

pub use url::SmtpUrl;

/// Runs a future inside a `tracing` span when the `tracing` feature is on; otherwise the
/// span expression is not even evaluated.
#[cfg(feature = "tracing")]
macro_rules! in_span {
    ($span:expr, $fut:expr) => {
        tracing::Instrument::instrument($fut, $span)
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! in_span {
    ($span:expr, $fut:expr) => {
        $fut
    };
}

/// A future resolving to a fresh OAuth 2.0 access token.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, Error>> + Send>>;

/// Fetches a fresh OAuth 2.0 access token for each new connection (refreshing it as the
/// service sees fit).
pub type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Configures and builds a [`Connector`] (or connects directly).
#[derive(Clone)]
pub struct ClientBuilder {
    host: String,
    port: Option<u16>,
    session: SessionConfig,
    tls: TlsOptions,
    trace: Option<TraceSink>,
    oauth: Option<(String, TokenProvider)>,
    /// Proxy, source address, Happy Eyeballs (builder methods in `crate::connect`).
    pub(crate) net: NetOptions,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("session", &self.session)
            .field("tls", &self.tls)
            .field("net", &self.net)
            .finish()
    }
}

impl ClientBuilder {
    /// A builder for `host` with secure defaults: port 587, STARTTLS required, OS roots.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            session: SessionConfig::default(),
            tls: TlsOptions { native_roots: true, ..TlsOptions::default() },
            trace: None,
            oauth: None,
            net: NetOptions::default(),
        }
    }

    /// A builder from an `smtp://` or `smtps://` URL (see [`SmtpUrl`]).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let url = SmtpUrl::parse(url)?;
        let mut b = Self::new(url.host).port(url.port).tls(url.tls).lmtp(url.lmtp);
        if let Some(user) = url.user {
            let password = url.password.map(|p| p.expose().clone()).unwrap_or_default();
            b = b.credentials(Credentials::new(user, password));
        }
        if let Some(m) = url.mechanism {
            b = b.mechanisms(&[m]);
        }
        if let Some(proxy) = url.proxy {
            b = b.proxy(proxy);
        }
        Ok(b)
    }

    /// The port (default: 465 for implicit TLS, else 587).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The TLS policy (default [`TlsPolicy::Required`]).
    pub fn tls(mut self, policy: TlsPolicy) -> Self {
        self.session.tls = policy;
        self
    }

    /// Credentials for AUTH.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.session.credentials = Some(credentials);
        self
    }

    /// Authenticate with OAuth 2.0 (OAUTHBEARER or XOAUTH2, whichever the server offers,
    /// OAUTHBEARER first): `provider` is called for a fresh token on every new connection.
    ///
    /// ```
    /// # use smtpkit::Client;
    /// let builder = Client::builder("smtp.example.com").oauth("me@example.com", || {
    ///     Box::pin(async { Ok::<_, smtpkit::Error>("ya29.token-from-your-refresh-logic".to_string()) })
    /// });
    /// ```
    pub fn oauth(
        mut self,
        user: impl Into<String>,
        provider: impl Fn() -> TokenFuture + Send + Sync + 'static,
    ) -> Self {
        self.oauth = Some((user.into(), Arc::new(provider)));
        self
    }

    /// Allowed AUTH mechanisms in order of preference (default: strongest first, SCRAM-SHA-256,
    /// CRAM-MD5, PLAIN, LOGIN for passwords; OAUTHBEARER, XOAUTH2 for tokens).
    pub fn mechanisms(mut self, mechanisms: &[Mechanism]) -> Self {
        self.session.mechanisms = mechanisms.to_vec();
        self
    }

    /// The EHLO name. Default, on connections [`Connector::connect`] opens: the machine's
    /// fully qualified name, else the literal of the connection's local address such as
    /// `[192.0.2.7]`, never `localhost` (see
    /// [`default_ehlo_name`](crate::connect::default_ehlo_name)). Over a stream given to
    /// [`Connector::connect_with`] smtpkit cannot know the local address: set the name
    /// there (it stays `localhost` otherwise).
    pub fn ehlo_name(mut self, name: EhloName) -> Self {
        self.session.ehlo_name = name;
        self.net.ehlo_chosen = true;
        self
    }

    /// Per-phase deadlines.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.session.timeouts = timeouts;
        self
    }

    /// Caps on server replies.
    pub fn reply_limits(mut self, limits: ReplyLimits) -> Self {
        self.session.reply_limits = limits;
        self
    }

    /// Bare CR/LF handling in bodies (default: normalise to CRLF).
    pub fn line_endings(mut self, policy: LineEndings) -> Self {
        self.session.line_endings = policy;
        self
    }

    /// Use PIPELINING when offered (default on).
    pub fn pipelining(mut self, on: bool) -> Self {
        self.session.pipelining = on;
        self
    }

    /// Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data,
    /// reported per recipient in the [`SendReport`].
    pub fn lmtp(mut self, on: bool) -> Self {
        self.session.lmtp = on;
        self
    }

    /// Use CHUNKING/BDAT when offered (default off).
    pub fn chunking(mut self, on: bool) -> Self {
        self.session.chunking = on;
        self
    }

    /// Trust the certificates in a PEM document in addition to the OS roots.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.tls.extra_roots.extend(parse_pem_certs(pem)?);
        Ok(self)
    }

    /// Trust the certificates in a PEM file in addition to the OS roots.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem =
            std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        self.add_root_pem(&pem)
    }

    /// Do not load the OS trust store (only added roots are trusted).
    pub fn without_native_roots(mut self) -> Self {
        self.tls.native_roots = false;
        self
    }

    /// Use this rustls configuration as is (roots, client certificates, versions).
    pub fn tls_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Present a client certificate (mutual TLS): PEM chain and PEM private key.
    pub fn client_certificate_pem(mut self, chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        self.tls.client_auth = Some((parse_pem_certs(chain)?, Arc::new(parse_pem_key(key)?)));
        Ok(self)
    }

    /// Accept any server certificate. Dangerous: only for tests. Credentials are then
    /// refused unless [`ClientBuilder::allow_insecure_auth`] is also set.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.tls.accept_invalid_certs = on;
        self
    }

    /// Allow AUTH over plaintext or unverified TLS. Off by default.
    pub fn allow_insecure_auth(mut self, on: bool) -> Self {
        self.session.allow_insecure_auth = on;
        self
    }

    /// Receive the session transcript (AUTH payloads redacted, message data summarised).
    pub fn trace(mut self, sink: impl Fn(&TraceLine) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(sink));
        self
    }

    /// Builds a reusable [`Connector`] (loads the trust store once).
    pub fn build(self) -> Result<Connector, Error> {
        // Invalid credentials are a typed error before any connection is opened.
        if let Some(creds) = &self.session.credentials {
            creds.validate().map_err(|e| Error::Input(e.into()))?;
        }
        let port = self.port.unwrap_or(if self.session.tls == TlsPolicy::Implicit { 465 } else { 587 });
        let tls = match self.session.tls {
            TlsPolicy::Disabled => None,
            _ => Some(TlsTarget {
                config: self.tls.build()?,
                name: server_name(&self.host)?,
                verified: !self.tls.accept_invalid_certs,
            }),
        };
        let mut session = self.session;
        session.trace = self.trace.is_some() || cfg!(feature = "tracing");
        session.server_name = self.host.clone();
        session.server_port = port;
        let inner = ConnectorInner {
            host: self.host,
            port,
            session,
            tls,
            trace: self.trace,
            oauth: self.oauth,
            net: self.net,
        };
        Ok(Connector { inner: Arc::new(inner) })
    }

    /// Builds and connects.
    pub async fn connect(self) -> Result<Client, Error> {
        self.build()?.connect().await
    }
}

struct ConnectorInner {
    host: String,
    port: u16,
    session: SessionConfig,
    tls: Option<TlsTarget>,
    trace: Option<TraceSink>,
    oauth: Option<(String, TokenProvider)>,
    net: NetOptions,
}

/// A cheap-to-clone recipe for connections to one server with one configuration.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("tls", &self.inner.session.tls)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The server host.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The server port.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The session configuration.
    pub fn session_config(&self) -> &SessionConfig {
        &self.inner.session
    }

    /// Opens a TCP connection (Happy Eyeballs, through the proxy if one is set,
    /// TCP_NODELAY on) and runs the handshake. A port that speaks the other TLS mode is
    /// reported as [`ConnectError::WrongTlsMode`](crate::connect::ConnectError::WrongTlsMode).
    pub async fn connect(&self) -> Result<Client, Error> {
        crate::connect::sniff::connect(self, &self.inner.net).await
    }

    /// Runs the handshake over a stream the caller opened (a proxy, a test duplex).
    pub async fn connect_with<S: Stream>(&self, stream: S) -> Result<Client, Error> {
        self.connect_dialed(stream, None).await
    }

    /// Runs the handshake over a stream whose local address is `local` (for the EHLO name).
    pub(crate) async fn connect_dialed<S: Stream>(
        &self,
        stream: S,
        local: Option<IpAddr>,
    ) -> Result<Client, Error> {
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "smtp.connection",
            host = %self.inner.host,
            port = self.inner.port,
            tls = ?self.inner.session.tls,
        );
        let result = in_span!(span.clone(), self.handshake(stream, local)).await;
        #[cfg(feature = "tracing")]
        let result = result.map(|mut client| {
            client.span = span.clone();
            tracing::info!(parent: &span, tls = client.is_tls(), "smtp session ready");
            client
        });
        #[cfg(feature = "tracing")]
        if let Err(e) = &result {
            tracing::warn!(parent: &span, error = %e, "smtp connection failed");
        }
        result
    }

    async fn handshake<S: Stream>(&self, stream: S, local: Option<IpAddr>) -> Result<Client, Error> {
        let boxed: BoxStream = Box::new(stream);
        let mut config = self.inner.session.clone();
        // Only for sockets smtpkit opened: over a caller's stream the local address is
        // unknown, so the configured name (default `localhost`) is sent as set.
        if !self.inner.net.ehlo_chosen && local.is_some() {
            config.ehlo_name = crate::connect::default_ehlo_name(local);
        }
        if let Some((user, provider)) = &self.inner.oauth {
            config.credentials = Some(Credentials::oauth(user.clone(), provider().await?));
        }
        let mut session = Session::new(config, now());
        if let Some(nonce) = scram_nonce() {
            session.set_sasl_nonce(nonce);
        }
        let mut driver =
            Driver::new(session, Transport::Plain(boxed), self.inner.tls.clone(), self.inner.trace.clone());
        if self.inner.session.tls == TlsPolicy::Implicit {
            driver.handshake().await?;
            let verified = driver.tls_verified();
            driver.session.tls_established(verified);
        }
        let outcome = driver
            .run_until(|ev| match ev {
                Event::Ready => Some(Ok(())),
                Event::Closed(err) => Some(Err(err.unwrap_or(Error::SessionClosed))),
                _ => None,
            })
            .await;
        match outcome {
            Some(Ok(())) => Ok(Client {
                driver,
                busy: false,
                submitted: 0,
                outcomes: VecDeque::new(),
                #[cfg(feature = "tracing")]
                span: tracing::Span::none(),
            }),
            Some(Err(e)) => {
                // Let a QUIT already queued reach the server before closing.
                let _ = driver.run_until(|ev| matches!(ev, Event::Closed(_)).then_some(())).await;
                driver.shutdown().await;
                Err(e)
            }
            None => Err(Error::SessionClosed),
        }
    }
}

/// 144 random bits for a SCRAM client nonce, base64 (never a `,`). Without an OS random
/// source SCRAM is simply not offered to the server.
fn scram_nonce() -> Option<String> {
    use base64::Engine as _;
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// One SMTP connection, ready to send.
#[derive(Debug)]
pub struct Client {
    driver: Driver,
    /// Set while an operation runs: if its future is dropped half way, the session state
    /// is unknown and the client refuses further use.
    busy: bool,
    /// Messages queued with [`Client::submit`] whose outcome [`Client::next_outcome`] has
    /// not returned yet.
    submitted: usize,
    /// Outcomes of submitted messages that arrived while another operation drove the
    /// connection, kept for [`Client::next_outcome`].
    outcomes: VecDeque<(MessageId, Result<SendReport, Error>)>,
    /// The connection's span (feature `tracing`).
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// Keeps a submitted message's outcome that surfaced while another operation ran.
fn stash(outcomes: &mut VecDeque<(MessageId, Result<SendReport, Error>)>, event: Event) {
    if let Event::Message { id, result } = event {
        outcomes.push_back((id, result));
    }
}

impl Client {
    /// A builder for `host` (see [`ClientBuilder::new`]).
    pub fn builder(host: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(host)
    }

    /// A builder from a URL (see [`ClientBuilder::from_url`]).
    pub fn from_url(url: &str) -> Result<ClientBuilder, Error> {
        ClientBuilder::from_url(url)
    }

    /// Sends one message to the envelope's recipients.
    ///
    /// `Ok` means the server accepted responsibility (2xx to the final dot); the report
    /// lists every recipient, including rejected ones. See [`Error::is_ambiguous`].
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
    ) -> Result<SendReport, Error> {
        self.send_with(envelope, message, MessageOptions::default()).await
    }

    /// Sends one message with DSN or other options.
    pub async fn send_with(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
        options: MessageOptions,
    ) -> Result<SendReport, Error> {
        self.enter()?;
        let id = self.driver.session.send_message(envelope.clone(), message.into(), options);
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                self.busy = false;
                return Err(e);
            }
        };
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(parent: &self.span, "smtp.message", message = id.0, recipients = envelope.to().len());
        let outcomes = &mut self.outcomes;
        let run = self.driver.run_until(|ev| match ev {
            Event::Message { id: got, result } if got == id => Some(result),
            other => {
                stash(outcomes, other);
                None
            }
        });
        let result = in_span!(span.clone(), run).await.unwrap_or(Err(Error::SessionClosed));
        #[cfg(feature = "tracing")]
        match &result {
            Ok(report) => tracing::info!(
                parent: &span,
                reply = %report.reply,
                accepted = report.accepted().count(),
                rejected = report.rejected().count(),
                "message sent"
            ),
            Err(e) if e.is_ambiguous() => {
                tracing::error!(parent: &span, error = %e, "message outcome ambiguous")
            }
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, transient = e.is_transient(), "message not sent")
            }
        }
        self.busy = false;
        result
    }

    /// Sends a composed [`Message`](crate::Message) to its envelope (derived from its
    /// headers, Bcc included, or set explicitly). `SMTPUTF8` is declared when the message
    /// needs it; a server without it is a typed error before `MAIL`.
    #[cfg(feature = "mime")]
    pub async fn send_message(&mut self, message: &crate::Message) -> Result<SendReport, Error> {
        let options = MessageOptions { smtputf8: message.needs_smtputf8(), ..MessageOptions::default() };
        self.send_with(message.envelope(), message.to_bytes(), options).await
    }

    /// Sends several messages over this connection, pipelined when the server allows:
    /// one round trip per message. Results come back in input order.
    pub async fn send_many<I>(&mut self, messages: I) -> Vec<Result<SendReport, Error>>
    where
        I: IntoIterator<Item = (Envelope, Bytes, MessageOptions)>,
    {
        if let Err(e) = self.enter() {
            return messages.into_iter().map(|_| Err(e.clone())).collect();
        }
        let mut ids = Vec::new();
        let mut results: Vec<Option<Result<SendReport, Error>>> = Vec::new();
        for (envelope, body, options) in messages {
            match self.driver.session.send_message(envelope, body, options) {
                Ok(id) => {
                    ids.push(Some(id));
                    results.push(None);
                }
                Err(e) => {
                    ids.push(None);
                    results.push(Some(Err(e)));
                }
            }
        }
        let mut missing = results.iter().filter(|r| r.is_none()).count();
        if missing > 0 {
            self.driver
                .run_until(|ev| {
                    match ev {
                        Event::Message { id, result } if ids.contains(&Some(id)) => {
                            let pos = ids.iter().position(|i| *i == Some(id));
                            if let Some(slot) = pos.and_then(|pos| results.get_mut(pos)) {
                                *slot = Some(result);
                                missing -= 1;
                            }
                        }
                        other => stash(&mut self.outcomes, other),
                    }
                    (missing == 0).then_some(())
                })
                .await;
        }
        self.busy = false;
        results.into_iter().map(|r| r.unwrap_or(Err(Error::SessionClosed))).collect()
    }

    /// Queues a message without waiting: it is pipelined behind whatever is already in
    /// flight, and its outcome comes from [`Client::next_outcome`]. A bulk sender that
    /// submits the next messages before the last outcome arrives keeps the connection
    /// busy in both directions: one round trip per message, with no pause between groups.
    ///
    /// ```no_run
    /// # async fn demo(client: &mut smtpkit::Client, env: smtpkit::Envelope) -> Result<(), smtpkit::Error> {
    /// use smtpkit::MessageOptions;
    /// let first = client.submit(env.clone(), "Subject: 1\r\n\r\nOne\r\n".into(), MessageOptions::default())?;
    /// let second = client.submit(env, "Subject: 2\r\n\r\nTwo\r\n".into(), MessageOptions::default())?;
    /// while let Some((id, result)) = client.next_outcome().await {
    ///     println!("{id:?} sent: {}", result.is_ok());
    /// }
    /// # let _ = (first, second);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails at once, with nothing queued, when the connection is closed or busy with an
    /// operation whose future was dropped, or when the message is refused before `MAIL`
    /// (too large for the server's `SIZE`, an extension it lacks).
    pub fn submit(
        &mut self,
        envelope: Envelope,
        message: Bytes,
        options: MessageOptions,
    ) -> Result<MessageId, Error> {
        if self.busy || self.driver.session.is_closed() {
            return Err(Error::SessionClosed);
        }
        let id = self.driver.session.send_message(envelope, message, options)?;
        self.submitted += 1;
        Ok(id)
    }

    /// Drives the connection until the next outcome of a [`Client::submit`]ted message
    /// is known, in the order the server answered. `None` when no submitted message is
    /// waiting.
    pub async fn next_outcome(&mut self) -> Option<(MessageId, Result<SendReport, Error>)> {
        if self.submitted == 0 {
            return None;
        }
        let outcome = match self.outcomes.pop_front() {
            Some(outcome) => Some(outcome),
            None if self.busy => self.abandon(),
            None => {
                self.busy = true;
                let outcome = self
                    .driver
                    .run_until(|ev| match ev {
                        Event::Message { id, result } => Some((id, result)),
                        _ => None,
                    })
                    .await;
                self.busy = false;
                outcome
            }
        };
        match outcome {
            Some(outcome) => {
                self.submitted -= 1;
                Some(outcome)
            }
            // The session ended without reporting them: it cannot happen (a close fails
            // every queued message), but if it did they must not be waited for again.
            None => {
                self.submitted = 0;
                None
            }
        }
    }

    /// After an operation's future was dropped half way the stream may hold half a write,
    /// so the connection is over: what was submitted is settled as a lost connection
    /// settles it (ambiguous where the end of data was written, failed where it was not).
    fn abandon(&mut self) -> Option<(MessageId, Result<SendReport, Error>)> {
        if !self.driver.session.is_closed() {
            self.driver.session.handle_eof();
        }
        while let Some(event) = self.driver.session.poll_event() {
            stash(&mut self.outcomes, event);
        }
        self.outcomes.pop_front()
    }

    /// Messages submitted whose outcome [`Client::next_outcome`] has not returned yet.
    pub fn in_flight(&self) -> usize {
        self.submitted
    }

    /// Sends NOOP and returns the reply.
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.noop()).await
    }

    /// Sends RSET and returns the reply.
    pub async fn rset(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.rset()).await
    }

    /// Sends VRFY (most servers answer 252 and verify nothing).
    pub async fn vrfy(&mut self, what: &str) -> Result<Reply, Error> {
        self.command(|s| s.vrfy(what)).await
    }

    /// Sends EHLO again and refreshes [`Client::capabilities`] (as smtplib's `ehlo()`).
    pub async fn ehlo(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.ehlo()).await
    }

    /// Sends a validated low-level command such as `HELP` or `XCLIENT ...` and returns
    /// its reply. Commands the session must own (MAIL, RCPT, DATA, AUTH, STARTTLS...) are
    /// refused, as is any control byte in the arguments.
    pub async fn command_line(&mut self, verb: &str, args: &str) -> Result<Reply, Error> {
        self.command(|s| s.custom(verb, args)).await
    }

    /// True when the server advertised `keyword` (any case) in its latest EHLO reply.
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.capabilities().has(keyword)
    }

    /// Sends QUIT, waits for `221` and closes the connection.
    pub async fn quit(mut self) -> Result<(), Error> {
        let reply = self.command(|s| s.quit()).await;
        let _ = self.driver.run_until(|ev| matches!(ev, Event::Closed(_)).then_some(())).await;
        self.driver.shutdown().await;
        reply.map(|_| ())
    }

    async fn command(
        &mut self,
        start: impl FnOnce(&mut Session) -> Result<crate::proto::session::OpId, Error>,
    ) -> Result<Reply, Error> {
        self.enter()?;
        let id = match start(&mut self.driver.session) {
            Ok(id) => id,
            Err(e) => {
                self.busy = false;
                return Err(e);
            }
        };
        let outcomes = &mut self.outcomes;
        let result = self
            .driver
            .run_until(|ev| match ev {
                Event::Command { id: got, result } if got == id => Some(result),
                other => {
                    stash(outcomes, other);
                    None
                }
            })
            .await
            .unwrap_or(Err(Error::SessionClosed));
        self.busy = false;
        result
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.busy || self.driver.session.is_closed() {
            return Err(Error::SessionClosed);
        }
        self.busy = true;
        Ok(())
    }

    /// Completes what the session queued on its own, such as the `RSET` that follows a
    /// failed transaction, and returns [`Client::is_reusable`]. Without it, a connection
    /// whose last message failed still has that `RSET` outstanding and a pool would have
    /// to close it. Costs one round trip, only when something is outstanding.
    pub async fn settle(&mut self) -> bool {
        if self.enter().is_err() {
            return false;
        }
        // No event is picked, so this runs until the session is idle or closed; outcomes
        // of submitted messages are kept.
        let outcomes = &mut self.outcomes;
        let _ = self
            .driver
            .run_until(|ev| {
                stash(outcomes, ev);
                None::<()>
            })
            .await;
        self.busy = false;
        self.is_reusable()
    }

    /// Checks an idle connection without waiting: reads anything the server sent since the
    /// last reply (a close, an unsolicited `421`) and returns [`Client::is_reusable`].
    ///
    /// A connection that sat idle may have been dropped by the server; without this the
    /// next message would find out half way through its transaction. Costs one
    /// non-blocking read; a pool calls it before every reuse.
    pub async fn check_idle(&mut self) -> bool {
        if self.busy || self.submitted > 0 || !self.driver.session.is_idle_and_clean() {
            return false;
        }
        self.driver.absorb_idle_input().await;
        // Events from a close (its error) are of no use to anyone now; drop them so they
        // do not linger in the queue.
        while self.driver.session.poll_event().is_some() {}
        self.is_reusable()
    }

    /// The server's capabilities from the latest EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        self.driver.session.capabilities()
    }

    /// True when TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.driver.session.is_tls()
    }

    /// True when the connection can take another message: no error, no cancelled
    /// operation, nothing outstanding, no stray input from the server.
    pub fn is_reusable(&self) -> bool {
        !self.busy && self.submitted == 0 && self.driver.session.is_idle_and_clean()
    }
}
