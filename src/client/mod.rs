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

use bytes::Bytes;

use crate::driver::Driver;
use crate::proto::address::Envelope;
use crate::proto::capabilities::Capabilities;
use crate::proto::error::{Error, Phase};
use crate::proto::params::MessageOptions;
use crate::proto::reply::Reply;
use crate::proto::session::batch::Batch;
use crate::proto::session::{Event, MessageId, SendReport, Session};

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

mod connector;

pub use connector::Connector;

/// One SMTP connection, ready to send.
///
/// **Cancellation.** Every async method takes `&mut self`; a future dropped before it
/// completes (a caller's `timeout`, `select!`, an aborted task) may have left half a
/// write on the stream. From then on the client is *cancelled*: nothing more is ever
/// written on the connection except the transport shutdown, and every later operation
/// returns [`Error::Cancelled`] at once ([`Client::quit`] only shuts the transport down).
/// "Cancel-safe" below means that dropping the future loses nothing else: the connection
/// is given up, but no message is reported sent that was not, and no byte is resent.
pub struct Client {
    driver: Driver,
    /// Set while an operation runs: still set when the next one starts means its future
    /// was dropped half way.
    busy: bool,
    /// An operation's future was dropped: the session was closed with
    /// [`Error::Cancelled`] and the stream is never written again.
    cancelled: bool,
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

/// Only state, never data: the session may hold a queued message body or an AUTH line.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tls", &self.is_tls())
            .field("ready", &self.driver.session.is_ready())
            .field("closed", &self.driver.session.is_closed())
            .field("cancelled", &(self.cancelled || self.busy))
            .field("in_flight", &self.submitted)
            .finish_non_exhaustive()
    }
}

/// Keeps a submitted message's outcome that surfaced while another operation ran.
fn stash(outcomes: &mut VecDeque<(MessageId, Result<SendReport, Error>)>, event: Event) {
    if let Event::Message { id, result } = event {
        outcomes.push_back((id, result));
    }
}

/// Ends a running operation. Not reached when its future is dropped: then `busy` stays
/// set and the next call finds the client cancelled.
fn done(busy: &mut bool) {
    *busy = false;
}

impl Client {
    pub(super) fn new(driver: Driver) -> Self {
        Self {
            driver,
            busy: false,
            cancelled: false,
            submitted: 0,
            outcomes: VecDeque::new(),
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }

    #[cfg(feature = "tracing")]
    pub(super) fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

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
    ///
    /// Cancel-safe in the sense of the type docs: dropped half way, the message counts as
    /// not confirmed (it may have been delivered if its end of data was written) and the
    /// client is cancelled.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
    ) -> Result<SendReport, Error> {
        self.send_with(envelope, message, MessageOptions::default()).await
    }

    /// Sends one message with DSN or other options. Cancel-safe as [`Client::send`].
    pub async fn send_with(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
        options: MessageOptions,
    ) -> Result<SendReport, Error> {
        self.enter()?;
        let id = match self.driver.session.send_message(envelope.clone(), message.into(), options) {
            Ok(id) => id,
            Err(e) => {
                done(&mut self.busy);
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
        done(&mut self.busy);
        result
    }

    /// Sends a composed [`Message`](crate::Message) to its envelope (derived from its
    /// headers, Bcc included, or set explicitly). `SMTPUTF8` is declared when the message
    /// needs it; a server without it is a typed error before `MAIL`. Cancel-safe as
    /// [`Client::send`].
    #[cfg(feature = "mime")]
    pub async fn send_message(&mut self, message: &crate::Message) -> Result<SendReport, Error> {
        let options = MessageOptions { smtputf8: message.needs_smtputf8(), ..MessageOptions::default() };
        self.send_with(message.envelope(), message.to_bytes(), options).await
    }

    /// Sends several messages over this connection, pipelined when the server allows:
    /// one round trip per message. Results come back in input order. Cancel-safe as
    /// [`Client::send`] (the results are lost with the future).
    pub async fn send_many<I>(&mut self, messages: I) -> Vec<Result<SendReport, Error>>
    where
        I: IntoIterator<Item = (Envelope, Bytes, MessageOptions)>,
    {
        if let Err(e) = self.enter() {
            return messages.into_iter().map(|_| Err(e.clone())).collect();
        }
        let mut batch = Batch::queue(&mut self.driver.session, messages);
        if batch.is_waiting() {
            let outcomes = &mut self.outcomes;
            self.driver
                .run_until(|ev| {
                    if let Some(other) = batch.take(ev) {
                        stash(outcomes, other);
                    }
                    (!batch.is_waiting()).then_some(())
                })
                .await;
        }
        done(&mut self.busy);
        batch.finish()
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
    /// Fails at once, with nothing queued, when the connection is closed
    /// ([`Error::SessionClosed`]) or cancelled ([`Error::Cancelled`]), or when the message
    /// is refused before `MAIL` (too large for the server's `SIZE`, an extension it lacks).
    pub fn submit(
        &mut self,
        envelope: Envelope,
        message: Bytes,
        options: MessageOptions,
    ) -> Result<MessageId, Error> {
        self.check_cancelled()?;
        if self.driver.session.is_closed() {
            return Err(Error::SessionClosed);
        }
        let id = self.driver.session.send_message(envelope, message, options)?;
        self.submitted += 1;
        Ok(id)
    }

    /// Drives the connection until the next outcome of a [`Client::submit`]ted message
    /// is known, in the order the server answered. `None` when no submitted message is
    /// waiting.
    ///
    /// Cancel-safe in the sense of the type docs. On a cancelled client it returns at
    /// once, without I/O: each submitted message fails with [`Error::Cancelled`], or with
    /// [`Error::Ambiguous`] (caused by the cancellation) when its end of data may have
    /// been written.
    pub async fn next_outcome(&mut self) -> Option<(MessageId, Result<SendReport, Error>)> {
        if self.submitted == 0 {
            return None;
        }
        let cancelled = self.check_cancelled().is_err();
        let outcome = match self.outcomes.pop_front() {
            Some(outcome) => Some(outcome),
            None if cancelled => None,
            None => {
                self.busy = true;
                let outcome = self
                    .driver
                    .run_until(|ev| match ev {
                        Event::Message { id, result } => Some((id, result)),
                        _ => None,
                    })
                    .await;
                done(&mut self.busy);
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

    /// Messages submitted whose outcome [`Client::next_outcome`] has not returned yet.
    pub fn in_flight(&self) -> usize {
        self.submitted
    }

    /// Sends NOOP and returns the reply. Cancel-safe in the sense of the type docs.
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.noop()).await
    }

    /// Sends RSET and returns the reply. Cancel-safe in the sense of the type docs.
    pub async fn rset(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.rset()).await
    }

    /// Sends VRFY (most servers answer 252 and verify nothing). Cancel-safe in the sense
    /// of the type docs.
    pub async fn vrfy(&mut self, what: &str) -> Result<Reply, Error> {
        self.command(|s| s.vrfy(what)).await
    }

    /// Sends EHLO again and refreshes [`Client::capabilities`] (as smtplib's `ehlo()`).
    /// Cancel-safe in the sense of the type docs.
    pub async fn ehlo(&mut self) -> Result<Reply, Error> {
        self.command(|s| s.ehlo()).await
    }

    /// Sends a validated low-level command such as `HELP` or `XCLIENT ...` and returns
    /// its reply. Commands the session must own (MAIL, RCPT, DATA, AUTH, STARTTLS...) are
    /// refused, as is any control byte in the arguments. Cancel-safe in the sense of the
    /// type docs.
    pub async fn command_line(&mut self, verb: &str, args: &str) -> Result<Reply, Error> {
        self.command(|s| s.custom(verb, args)).await
    }

    /// True when the server advertised `keyword` (any case) in its latest EHLO reply.
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.capabilities().has(keyword)
    }

    /// Sends QUIT, waits for `221` at most [`Timeouts::quit`](crate::Timeouts::quit)
    /// (default 10 s) and closes the connection. Whatever it returns changes no earlier
    /// outcome: a message is sent once its final reply was `2xx`.
    ///
    /// On a cancelled client nothing is written: the transport is shut down and
    /// [`Error::Cancelled`] returned. Dropping this future is harmless (the connection is
    /// closed when the client drops).
    pub async fn quit(mut self) -> Result<(), Error> {
        if let Err(e) = self.check_cancelled() {
            self.driver.shutdown().await;
            return Err(e);
        }
        // The session's own QUIT deadline covers the reply; this one also covers writing
        // the command to a server that stopped reading. Cut short, the client is left
        // cancelled and only shut down.
        let limit = self.driver.session.config().timeouts.quit;
        let goodbye = async {
            let reply = self.command(|s| s.quit()).await;
            let _ = self.driver.run_until(|ev| matches!(ev, Event::Closed(_)).then_some(())).await;
            reply
        };
        let reply = tokio::time::timeout(limit, goodbye).await.unwrap_or(Err(Error::Timeout(Phase::Quit)));
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
                done(&mut self.busy);
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
        done(&mut self.busy);
        result
    }

    /// Starts an operation: refused on a cancelled or closed client.
    fn enter(&mut self) -> Result<(), Error> {
        self.check_cancelled()?;
        if self.driver.session.is_closed() {
            return Err(Error::SessionClosed);
        }
        self.busy = true;
        Ok(())
    }

    /// `Err(Cancelled)` once an operation's future was dropped. The first call to notice
    /// closes the session without any I/O: it discards what was queued, so no later call
    /// can write the rest of a torn flight, and fails every submitted message (ambiguous
    /// where its end of data was handed to the stream).
    fn check_cancelled(&mut self) -> Result<(), Error> {
        if self.busy && !self.cancelled {
            self.cancelled = true;
            self.driver.session.handle_error(Error::Cancelled);
            while let Some(event) = self.driver.session.poll_event() {
                stash(&mut self.outcomes, event);
            }
        }
        if self.cancelled { Err(Error::Cancelled) } else { Ok(()) }
    }

    /// True once an operation's future was dropped before it completed: the connection
    /// is unusable and only [`Client::quit`] (which writes nothing then) is left to do.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled || self.busy
    }

    /// Completes what the session queued on its own, such as the `RSET` that follows a
    /// failed transaction, and returns [`Client::is_reusable`]. Without it, a connection
    /// whose last message failed still has that `RSET` outstanding and a pool would have
    /// to close it. Costs one round trip, only when something is outstanding. False at
    /// once, without I/O, on a cancelled or closed client. Cancel-safe in the sense of
    /// the type docs.
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
        done(&mut self.busy);
        self.is_reusable()
    }

    /// Checks an idle connection without waiting: reads anything the server sent since the
    /// last reply (a close, an unsolicited `421`) and returns [`Client::is_reusable`].
    ///
    /// A connection that sat idle may have been dropped by the server; without this the
    /// next message would find out half way through its transaction. Costs one
    /// non-blocking read (it never writes); a pool calls it before every reuse. False at
    /// once on a cancelled client. Cancel-safe: it never waits.
    pub async fn check_idle(&mut self) -> bool {
        if self.check_cancelled().is_err() || self.submitted > 0 || !self.driver.session.is_idle_and_clean() {
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

    /// This connection's id (`c1a2b3`), unique within the process: the same id is on its
    /// `smtp.connection` span (feature `tracing`) and on every [`TraceLine`](crate::TraceLine)
    /// of its transcript. Errors from this client do not carry it; log it beside them.
    pub fn connection_id(&self) -> crate::ConnectionId {
        self.driver.session.connection_id()
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
        !self.is_cancelled() && self.submitted == 0 && self.driver.session.is_idle_and_clean()
    }
}
