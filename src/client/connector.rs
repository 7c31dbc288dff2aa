//! [`Connector`]: a built configuration that opens connections and runs the handshake.

use std::net::IpAddr;
use std::sync::Arc;

use super::Client;
use crate::config::{ClientBuilder, ConnectorInner, next_connection_id, scram_nonce};
use crate::driver::transport::{BoxStream, Stream, Transport};
use crate::driver::{Driver, now};
use crate::proto::error::Error;
use crate::proto::sasl::Credentials;
use crate::proto::session::{ConnectionId, Event, Session, SessionConfig, TlsPolicy};

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
        let id = next_connection_id();
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "smtp.connection",
            id = %id,
            host = %self.inner.host,
            port = self.inner.port,
            tls = ?self.inner.session.tls,
        );
        let result = in_span!(span.clone(), self.handshake(stream, local, id)).await;
        #[cfg(feature = "tracing")]
        let result = result.map(|mut client| {
            client.set_span(span.clone());
            tracing::info!(parent: &span, tls = client.is_tls(), "smtp session ready");
            client
        });
        #[cfg(feature = "tracing")]
        if let Err(e) = &result {
            tracing::warn!(parent: &span, error = %e, "smtp connection failed");
        }
        result
    }

    async fn handshake<S: Stream>(
        &self,
        stream: S,
        local: Option<IpAddr>,
        id: ConnectionId,
    ) -> Result<Client, Error> {
        let boxed: BoxStream = Box::new(stream);
        let mut config = self.inner.session.clone();
        config.connection_id = id;
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
        driver.skip_quit_reply = true;
        let outcome = driver
            .run_until(|ev| match ev {
                Event::Ready => Some(Ok(())),
                Event::Closed(err) => Some(Err(err.unwrap_or(Error::SessionClosed))),
                _ => None,
            })
            .await;
        match outcome {
            Some(Ok(())) => {
                driver.skip_quit_reply = false;
                Ok(Client::new(driver))
            }
            Some(Err(e)) => {
                driver.shutdown().await;
                Err(e)
            }
            None => {
                // The session gave up and its QUIT is written (RFC 5321 4.1.1.10); its
                // reply is not waited for: the connect failed already, and a server that
                // swallows QUIT must not hold the caller up. Closing our side settles the
                // session with the error that made it give up.
                driver.session.handle_eof();
                let mut error = None;
                while let Some(event) = driver.session.poll_event() {
                    if let Event::Closed(err) = event {
                        error = err;
                    }
                }
                driver.shutdown().await;
                Err(error.unwrap_or(Error::SessionClosed))
            }
        }
    }
}
