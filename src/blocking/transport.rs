//! The blocking client as a [`BlockingTransport`], and blocking transports by URL.

use std::sync::Mutex;

use super::{Client, Connector};
use crate::config::ClientBuilder;
use crate::proto::error::Error;
use crate::proto::session::SendReport;
use crate::transport::{BlockingTransport, Outgoing, TransportUrl};

/// A blocking [`Client`] behind a lock: one message at a time over one connection, opened
/// on demand and replaced when it is no longer reusable.
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
}

impl BlockingTransport for SmtpTransport {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(Client::is_reusable) {
            *slot = None;
            *slot = Some(self.connector.connect()?);
        }
        let client = slot.as_mut().ok_or(Error::Internal("SMTP transport without a connection"))?;
        let result = client.send_outgoing(message);
        if !client.is_reusable() {
            client.settle();
        }
        result
    }

    fn close(&self) {
        if let Some(client) = self.client.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = client.quit();
        }
    }
}

/// The blocking transport a URL names, SMTP configured by `configure` before it connects.
pub fn transport_from_url_with(
    url: &str,
    configure: impl FnOnce(ClientBuilder) -> Result<ClientBuilder, Error>,
) -> Result<Box<dyn BlockingTransport>, Error> {
    if let Some(local) = TransportUrl::parse(url)?.local()? {
        return Ok(local.into_blocking());
    }
    let connector = configure(ClientBuilder::from_url(url)?)?.build_blocking()?;
    Ok(Box::new(SmtpTransport::new(connector)))
}

/// The blocking transport a URL names, with the client's defaults for SMTP.
pub fn transport_from_url(url: &str) -> Result<Box<dyn BlockingTransport>, Error> {
    transport_from_url_with(url, Ok)
}
