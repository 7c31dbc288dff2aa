//! [`Outgoing`]: what every sending surface takes.

use bytes::Bytes;

use crate::proto::address::Envelope;
use crate::proto::params::MessageOptions;

/// One message to send: envelope, content (headers and body, as for
/// [`Client::send`](crate::Client::send)) and options.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Sender and recipients.
    pub envelope: Envelope,
    /// The message: headers, blank line, body.
    pub message: Bytes,
    /// DSN and other per-message options.
    pub options: MessageOptions,
}

impl Outgoing {
    /// A message with default options.
    pub fn new(envelope: Envelope, message: impl Into<Bytes>) -> Self {
        Self { envelope, message: message.into(), options: MessageOptions::default() }
    }

    /// The same message with these options.
    pub fn with_options(mut self, options: MessageOptions) -> Self {
        self.options = options;
        self
    }
}

impl From<(Envelope, Bytes)> for Outgoing {
    fn from((envelope, message): (Envelope, Bytes)) -> Self {
        Self::new(envelope, message)
    }
}

/// The message's envelope and bytes, declaring `SMTPUTF8` when it needs it.
#[cfg(feature = "mime")]
impl From<&crate::Message> for Outgoing {
    fn from(message: &crate::Message) -> Self {
        let options = MessageOptions { smtputf8: message.needs_smtputf8(), ..MessageOptions::default() };
        Self { envelope: message.envelope().clone(), message: message.to_bytes(), options }
    }
}

#[cfg(feature = "mime")]
impl From<crate::Message> for Outgoing {
    fn from(message: crate::Message) -> Self {
        Self::from(&message)
    }
}
