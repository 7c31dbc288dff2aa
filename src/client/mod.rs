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

pub use crate::config::url;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ConnectorInner, scram_nonce};
use crate::driver::transport::{BoxStream, Stream, Transport};
use crate::driver::{Driver, now};
use crate::proto::address::Envelope;
use crate::proto::capabilities::Capabilities;
use crate::proto::error::Error;
use crate::proto::params::MessageOptions;
use crate::proto::reply::Reply;
use crate::proto::sasl::Credentials;
use crate::proto::session::{Event, MessageId, SendReport, Session, SessionConfig, TlsPolicy};

pub use crate::config::{ClientBuilder, TokenFuture, TokenProvider, url::SmtpUrl};

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

impl ClientBuilder {
    /// Builds a reusable [`Connector`] (loads the trust store once).
    pub fn build(self) -> Result<Connector, Error> {
        Ok(Connector { inner: Arc::new(self.into_parts()?) })
    }

    /// Builds and connects.
    pub async fn connect(self) -> Result<Client, Error> {
        self.build()?.connect().await
    }
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

    /// Whether this connection's TLS handshake resumed an earlier session (a TLS 1.3
    /// ticket or a TLS 1.2 session id): connections from one [`Connector`] (and so one
    /// pool) share one resumption store. `None` without TLS.
    pub fn tls_resumed(&self) -> Option<bool> {
        self.driver.tls_resumed()
    }

    /// True when the connection can take another message: no error, no cancelled
    /// operation, nothing outstanding, no stray input from the server.
    pub fn is_reusable(&self) -> bool {
        !self.busy && self.submitted == 0 && self.driver.session.is_idle_and_clean()
    }
}
