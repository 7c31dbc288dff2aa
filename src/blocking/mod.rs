//! The blocking client (feature `blocking`, no tokio): the same builder, URLs, TLS modes,
//! AUTH, deadlines, PIPELINING and CHUNKING as the async [`Client`](crate::Client), and the
//! same outcomes and errors, over std sockets. It drives the same sans-IO
//! [`Session`] (the sans-IO core): only the loop that moves bytes differs.
//!
//! ```no_run
//! # fn demo() -> Result<(), smtpkit::Error> {
//! use smtpkit::Envelope;
//! use smtpkit::blocking::Client;
//!
//! let mut client = Client::from_url("smtp://user:app-password@mail.example.com")?.connect_blocking()?;
//! let envelope = Envelope::parse("me@example.com", &["you@example.org"])?;
//! let report = client.send(&envelope, "Subject: hi\r\n\r\nHello\r\n")?;
//! println!("queued: {}", report.reply);
//! client.quit()?;
//! # Ok(()) }
//! ```

mod connect;
mod driver;
mod transport;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ClientBuilder, ConnectorInner};
use crate::proto::address::Envelope;
use crate::proto::capabilities::Capabilities;
use crate::proto::error::Error;
use crate::proto::params::MessageOptions;
use crate::proto::reply::Reply;
use crate::proto::session::batch::Batch;
use crate::proto::session::{Event, OpId, SendReport, Session};
use crate::transport::Outgoing;
use driver::Driver;

pub use crate::config::{TokenFuture, TokenProvider, url::SmtpUrl};
pub use crate::transport::BlockingTransport as Transport;
pub use transport::{SmtpTransport, transport_from_url, transport_from_url_with};

impl ClientBuilder {
    /// Builds a reusable blocking [`Connector`] (loads the trust store once).
    pub fn build_blocking(self) -> Result<Connector, Error> {
        Ok(Connector { inner: Arc::new(self.into_parts()?) })
    }

    /// Builds and connects a blocking [`Client`].
    pub fn connect_blocking(self) -> Result<Client, Error> {
        self.build_blocking()?.connect()
    }
}

/// A cheap-to-clone recipe for blocking connections to one server.
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
    /// Opens a TCP connection (TCP_NODELAY on) within the connect deadline and runs the
    /// handshake: greeting, EHLO, STARTTLS or implicit TLS, AUTH.
    pub fn connect(&self) -> Result<Client, Error> {
        let implicit = self.inner.session.tls == crate::TlsPolicy::Implicit;
        // A port spoken in the other TLS mode is explained (crate::connect::hint).
        self.open().map_err(|e| crate::connect::hint::with_port_hint(e, self.inner.port, implicit))
    }

    fn open(&self) -> Result<Client, Error> {
        let inner = &self.inner;
        let tcp = connect::dial(&inner.net, &inner.host, inner.port, inner.session.timeouts.connect)?;
        if inner.session.tls != crate::TlsPolicy::Implicit {
            crate::connect::blocking::check_plain_port(&inner.net, &inner.host, inner.port, &tcp)?;
        }
        let mut config = inner.session.clone();
        config.connection_id = crate::config::next_connection_id();
        if !inner.net.ehlo_chosen {
            config.ehlo_name = crate::connect::default_ehlo_name(tcp.local_addr().ok().map(|a| a.ip()));
        }
        if let Some((user, provider)) = &inner.oauth {
            config.credentials =
                Some(crate::Credentials::oauth(user.clone(), connect::block_on(provider())?));
        }
        let mut session = Session::new(config, std::time::Instant::now());
        if let Some(nonce) = crate::config::scram_nonce() {
            session.set_sasl_nonce(nonce);
        }
        let mut driver = Driver::new(session, tcp, inner.tls.clone(), inner.trace.clone());
        if inner.session.tls == crate::TlsPolicy::Implicit {
            driver.handshake().map_err(|e| {
                crate::connect::blocking::explain_tls_failure(&inner.net, &inner.host, inner.port, e)
            })?;
            let verified = driver.tls_verified();
            driver.session.tls_established(verified);
        }
        let outcome = driver.run_until(|ev| match ev {
            Event::Ready => Some(Ok(())),
            Event::Closed(err) => Some(Err(err.unwrap_or(Error::SessionClosed))),
            _ => None,
        });
        match outcome {
            Some(Ok(())) => Ok(Client { driver }),
            Some(Err(e)) => {
                // Let a QUIT already queued reach the server before closing.
                let _ = driver.run_until(|ev| matches!(ev, Event::Closed(_)).then_some(()));
                driver.shutdown();
                Err(e)
            }
            None => Err(Error::SessionClosed),
        }
    }
}

/// One blocking SMTP connection, ready to send.
#[derive(Debug)]
pub struct Client {
    driver: Driver,
}

impl Client {
    /// A builder for `host` (see [`ClientBuilder::new`]); finish with
    /// [`ClientBuilder::connect_blocking`].
    pub fn builder(host: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(host)
    }

    /// A builder from a URL (see [`ClientBuilder::from_url`]).
    pub fn from_url(url: &str) -> Result<ClientBuilder, Error> {
        ClientBuilder::from_url(url)
    }

    /// Sends one message; `Ok` means the server accepted responsibility (see
    /// [`crate::Client::send`]).
    pub fn send(&mut self, envelope: &Envelope, message: impl Into<Bytes>) -> Result<SendReport, Error> {
        self.send_with(envelope, message, MessageOptions::default())
    }

    /// Sends one message with DSN or other options.
    pub fn send_with(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
        options: MessageOptions,
    ) -> Result<SendReport, Error> {
        self.send_outgoing(Outgoing { envelope: envelope.clone(), message: message.into(), options })
    }

    /// Sends an [`Outgoing`].
    pub fn send_outgoing(&mut self, message: Outgoing) -> Result<SendReport, Error> {
        let mut results = self.send_many([message]);
        results.pop().unwrap_or(Err(Error::SessionClosed))
    }

    /// Sends a composed [`Message`](crate::Message) to its envelope, declaring SMTPUTF8
    /// when it needs it.
    #[cfg(feature = "mime")]
    pub fn send_message(&mut self, message: &crate::Message) -> Result<SendReport, Error> {
        self.send_outgoing(Outgoing::from(message))
    }

    /// Sends several messages over this connection, pipelined when the server allows:
    /// one round trip per message. Results come back in input order.
    pub fn send_many(
        &mut self,
        messages: impl IntoIterator<Item = Outgoing>,
    ) -> Vec<Result<SendReport, Error>> {
        let messages = messages.into_iter().map(|m| (m.envelope, m.message, m.options));
        let mut batch = Batch::queue(&mut self.driver.session, messages);
        if batch.is_waiting() {
            // Outcomes of other messages cannot be pending here: the blocking client has no
            // `submit`, so every event but the batch's is of no use to anyone.
            self.driver.run_until(|ev| {
                let _ = batch.take(ev);
                (!batch.is_waiting()).then_some(())
            });
        }
        batch.finish()
    }

    /// Sends NOOP and returns the reply.
    pub fn noop(&mut self) -> Result<Reply, Error> {
        self.command(Session::noop)
    }

    /// Sends RSET and returns the reply.
    pub fn rset(&mut self) -> Result<Reply, Error> {
        self.command(Session::rset)
    }

    /// Sends VRFY (most servers answer 252 and verify nothing).
    pub fn vrfy(&mut self, what: &str) -> Result<Reply, Error> {
        self.command(|s| s.vrfy(what))
    }

    /// Sends EHLO again and refreshes [`Client::capabilities`].
    pub fn ehlo(&mut self) -> Result<Reply, Error> {
        self.command(Session::ehlo)
    }

    /// Sends a validated low-level command (see [`crate::Client::command_line`]).
    pub fn command_line(&mut self, verb: &str, args: &str) -> Result<Reply, Error> {
        self.command(|s| s.custom(verb, args))
    }

    /// Sends QUIT, waits for `221` and closes the connection.
    pub fn quit(mut self) -> Result<(), Error> {
        let reply = self.command(Session::quit);
        let _ = self.driver.run_until(|ev| matches!(ev, Event::Closed(_)).then_some(()));
        self.driver.shutdown();
        reply.map(|_| ())
    }

    fn command(&mut self, start: impl FnOnce(&mut Session) -> Result<OpId, Error>) -> Result<Reply, Error> {
        if self.driver.session.is_closed() {
            return Err(Error::SessionClosed);
        }
        let id = start(&mut self.driver.session)?;
        self.driver
            .run_until(|ev| match ev {
                Event::Command { id: got, result } if got == id => Some(result),
                _ => None,
            })
            .unwrap_or(Err(Error::SessionClosed))
    }

    /// Completes what the session queued on its own (the `RSET` after a failed
    /// transaction) and returns [`Client::is_reusable`].
    pub fn settle(&mut self) -> bool {
        let _ = self.driver.run_until(|_| None::<()>);
        self.is_reusable()
    }

    /// The server's capabilities from the latest EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        self.driver.session.capabilities()
    }

    /// True when the server advertised `keyword` (any case) in its latest EHLO reply.
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.capabilities().has(keyword)
    }

    /// This connection's id (`c1a2b3`), unique within the process: the same id is on every
    /// [`TraceLine`](crate::TraceLine) of its transcript and in the `connection` field of its
    /// `smtpkit::wire` events (feature `tracing`). Errors from this client do not carry it;
    /// log it beside them.
    pub fn connection_id(&self) -> crate::ConnectionId {
        self.driver.session.connection_id()
    }

    /// True when TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.driver.session.is_tls()
    }

    /// True when the connection can take another message.
    pub fn is_reusable(&self) -> bool {
        self.driver.session.is_idle_and_clean()
    }
}
