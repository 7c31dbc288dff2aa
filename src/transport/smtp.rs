//! SMTP as a [`Transport`]: one connection used by one message at a time, opened on
//! demand and opened again when the last one became unusable; and the [`Pool`].

use tokio::sync::Mutex;

use super::{CloseFuture, Outgoing, SendFuture, Transport};
use crate::client::{Client, Connector};
use crate::proto::error::Error;

/// A [`Client`] behind a lock, so shared use (`Arc<dyn Transport>`) sends one message at a
/// time over one connection. A connection that is no longer reusable (a server that
/// closed, a cancelled send) is replaced by a fresh one on the next message.
#[derive(Debug)]
pub struct SmtpTransport {
    connector: Connector,
    client: Mutex<Option<Client>>,
}

impl SmtpTransport {
    /// Connects on the first message.
    pub fn new(connector: Connector) -> Self {
        Self { connector, client: Mutex::new(None) }
    }

    /// Starts with a connection already open; later ones come from `connector`.
    pub fn with_client(connector: Connector, client: Client) -> Self {
        Self { connector, client: Mutex::new(Some(client)) }
    }

    async fn deliver(&self, message: Outgoing) -> Result<crate::SendReport, Error> {
        let mut slot = self.client.lock().await;
        if !slot.as_ref().is_some_and(Client::is_reusable) {
            // The old connection is of no use; a polite QUIT would only add a round trip.
            *slot = None;
            *slot = Some(self.connector.connect().await?);
        }
        let client = slot.as_mut().ok_or(Error::Internal("SMTP transport without a connection"))?;
        let result = client.send_with(&message.envelope, message.message, message.options).await;
        // Completes the RSET a failed transaction leaves outstanding, so the connection
        // can be reused; otherwise the next message reconnects.
        if !client.is_reusable() {
            client.settle().await;
        }
        result
    }
}

impl Transport for SmtpTransport {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        Box::pin(self.deliver(message))
    }

    fn close(&self) -> CloseFuture<'_> {
        Box::pin(async {
            if let Some(client) = self.client.lock().await.take() {
                let _ = client.quit().await;
            }
        })
    }
}

#[cfg(feature = "pool")]
impl Transport for crate::pool::Pool {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        Box::pin(async move {
            let mut client = self.get().await.map_err(pool_error)?;
            client.send_with(&message.envelope, message.message, message.options).await
        })
    }

    fn close(&self) -> CloseFuture<'_> {
        Box::pin(crate::pool::Pool::close(self))
    }
}

/// The SMTP error behind a pool failure; a pool that could not hand out a connection in
/// time is a connect timeout, a closed pool a closed session.
#[cfg(feature = "pool")]
fn pool_error(e: crate::pool::PoolError) -> Error {
    match e {
        crate::pool::PoolError::Smtp(e) => e,
        crate::pool::PoolError::Timeout(_) => Error::Timeout(crate::Phase::Connect),
        _ => Error::SessionClosed,
    }
}
