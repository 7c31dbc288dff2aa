//! What the session reports: message and command outcomes, what it wants next, and the
//! transcript.

use std::fmt;

use super::super::address::Address;
use super::super::error::Error;
use super::super::reply::Reply;

/// Identifies a message handed to [`Session::send_message`](super::Session::send_message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// Identifies a command queued with [`Session::noop`](super::Session::noop), [`Session::rset`](super::Session::rset),
/// [`Session::vrfy`](super::Session::vrfy) or [`Session::quit`](super::Session::quit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// One recipient and the server's reply to its `RCPT TO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient.
    pub address: Address,
    /// The reply to `RCPT TO`.
    pub reply: Reply,
}

impl RecipientResult {
    /// True when the server accepted the recipient (2xx).
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server took responsibility for: its reply to the final dot (or last
/// BDAT) was 2xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// The message.
    pub id: MessageId,
    /// The server's final reply, which usually carries its queue id.
    pub reply: Reply,
    /// Every recipient with its `RCPT` reply; rejected ones did not get the message.
    pub recipients: Vec<RecipientResult>,
}

impl SendReport {
    /// Recipients that will get the message.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| r.accepted())
    }

    /// Recipients the server refused.
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| !r.accepted())
    }

    /// The server's queue id, when its final reply says `queued as X` (Postfix, Exim,
    /// many others); best effort.
    pub fn queue_id(&self) -> Option<String> {
        let text = self.reply.text();
        let at = text.to_ascii_lowercase().find("queued as ")?;
        let id: String = text.get(at + 10..)?.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        (!id.is_empty()).then_some(id)
    }
}

/// Something that happened, for the driver or its caller.
#[derive(Clone, Debug)]
// Deliberately exhaustive: a driver must handle every variant, so a new one is a
// breaking change by design, never a silently ignored wildcard arm.
pub enum Event {
    /// The server's `220` greeting.
    Greeting(Reply),
    /// TLS is up (if required), AUTH is done (if configured): messages can flow.
    Ready,
    /// The outcome of one message.
    Message {
        /// Which message.
        id: MessageId,
        /// `Ok` only after a 2xx to the final dot.
        result: Result<SendReport, Error>,
    },
    /// The outcome of a NOOP, RSET, VRFY or QUIT.
    Command {
        /// Which command.
        id: OpId,
        /// The reply, or why there is none.
        result: Result<Reply, Error>,
    },
    /// The session ended; `None` after a clean QUIT.
    Closed(Option<Error>),
}

/// What the session needs from the driver once [`Session::poll_transmit`](super::Session::poll_transmit) has nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Deliberately exhaustive: a driver must handle every variant, so a new one is a
// breaking change by design, never a silently ignored wildcard arm.
pub enum Want {
    /// Read more input (a reply is outstanding), until [`Session::poll_timeout`](super::Session::poll_timeout).
    Read,
    /// Perform the TLS handshake on the stream, then call [`Session::tls_established`](super::Session::tls_established).
    StartTls,
    /// Nothing outstanding: hand control back to the caller.
    Idle,
    /// The session is over; close the stream.
    Closed,
}

/// Who wrote a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// The client.
    Client,
    /// The server.
    Server,
}

/// One line of the redacted transcript: AUTH payloads and message data never appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Who sent it.
    pub direction: Direction,
    /// The line, sanitised, without CRLF.
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.direction {
            Direction::Client => "C",
            Direction::Server => "S",
        };
        write!(f, "{who}: {}", self.text)
    }
}
