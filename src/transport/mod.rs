//! How mail leaves: one [`Transport`] trait over SMTP, the pool, a directory of `.eml`
//! files, an in-memory stub and the system's `sendmail`, so a service or a wrapper crate
//! switches by configuration (a URL, see [`from_url`]) and never by `if cfg!(test)`.
//!
//! ```
//! # async fn demo() -> Result<(), smtpkit::Error> {
//! use std::sync::Arc;
//! use smtpkit::transport::{StubTransport, Transport};
//! use smtpkit::{Envelope, Outgoing};
//!
//! let transport: Arc<dyn Transport> = Arc::new(StubTransport::new());
//! let envelope = Envelope::parse("me@example.com", &["you@example.org"])?;
//! let report = transport.send(Outgoing::new(envelope, "Subject: hi\r\n\r\nHello\r\n")).await?;
//! assert_eq!(report.accepted().count(), 1);
//! # Ok(()) }
//! ```
//!
//! [`BlockingTransport`] is the twin for programs without an async runtime.

mod error;
mod file;
mod outgoing;
mod sendmail;
#[cfg(feature = "client")]
mod smtp;
mod stub;
mod url;

use std::future::Future;
use std::pin::Pin;

use crate::proto::error::Error;
use crate::proto::session::SendReport;

pub use error::TransportError;
pub use file::FileTransport;
pub use outgoing::Outgoing;
pub use sendmail::SendmailTransport;
#[cfg(feature = "client")]
pub use smtp::SmtpTransport;
pub use stub::{StubOutcome, StubTransport};
pub use url::{LocalTransport, TransportUrl, blocking_from_url};
#[cfg(feature = "client")]
pub use url::{from_url, from_url_with};

/// What [`Transport::send`] returns: boxed, so the trait can be held as `Arc<dyn Transport>`.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<SendReport, Error>> + Send + 'a>>;

/// What [`Transport::close`] returns.
pub type CloseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something that takes a message and says what happened to each recipient.
///
/// `Ok` means the transport accepted responsibility for the message (an SMTP server's 2xx
/// to the final dot, a file written, `sendmail` exiting 0); the report lists every
/// recipient, rejected ones included. Errors are the same [`Error`] every sending surface
/// returns, so retry logic ([`Error::is_transient`], [`Error::is_ambiguous`]) is written once.
///
/// The trait is object safe: hold an `Arc<dyn Transport>` or be generic over `T: Transport`.
pub trait Transport: Send + Sync {
    /// Sends one message.
    fn send(&self, message: Outgoing) -> SendFuture<'_>;

    /// Sends a composed [`Message`](crate::Message) to its envelope, declaring SMTPUTF8 when
    /// it needs it.
    #[cfg(feature = "mime")]
    fn send_message(&self, message: &crate::Message) -> SendFuture<'_> {
        self.send(Outgoing::from(message))
    }

    /// Ends what the transport holds open: an [`SmtpTransport`] says QUIT (and connects
    /// again on its next message), a [`Pool`](crate::Pool) closes for good; a no-op for the
    /// local transports.
    fn close(&self) -> CloseFuture<'_> {
        Box::pin(async {})
    }
}

/// The blocking twin of [`Transport`], for programs without an async runtime.
pub trait BlockingTransport: Send + Sync {
    /// Sends one message.
    fn send(&self, message: Outgoing) -> Result<SendReport, Error>;

    /// Sends a composed [`Message`](crate::Message) to its envelope.
    #[cfg(feature = "mime")]
    fn send_message(&self, message: &crate::Message) -> Result<SendReport, Error> {
        self.send(Outgoing::from(message))
    }

    /// Ends what the transport holds open; a no-op for most.
    fn close(&self) {}
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        (**self).send(message)
    }

    fn close(&self) -> CloseFuture<'_> {
        (**self).close()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        (**self).send(message)
    }

    fn close(&self) -> CloseFuture<'_> {
        (**self).close()
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for std::sync::Arc<T> {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        (**self).send(message)
    }

    fn close(&self) {
        (**self).close()
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for Box<T> {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        (**self).send(message)
    }

    fn close(&self) {
        (**self).close()
    }
}

/// Runs blocking work (file writes, a child process) off the async runtime when there is
/// a tokio one, inline otherwise.
fn offload<F>(work: F) -> SendFuture<'static>
where
    F: FnOnce() -> Result<SendReport, Error> + Send + 'static,
{
    #[cfg(feature = "client")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return Box::pin(async move {
            handle.spawn_blocking(work).await.unwrap_or(Err(Error::Internal("blocking send task panicked")))
        });
    }
    Box::pin(async move { work() })
}

/// The report of a local transport: every recipient accepted with `reply`.
fn all_accepted(id: u64, message: &Outgoing, reply: crate::Reply) -> SendReport {
    let recipients = message
        .envelope
        .to()
        .iter()
        .map(|address| crate::RecipientResult { address: address.clone(), reply: reply.clone() })
        .collect();
    SendReport { id: crate::MessageId(id), reply, recipients }
}
