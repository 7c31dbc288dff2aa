//! smtpkit: an SMTP client library with a sans-IO protocol core.
#![forbid(unsafe_code)]

pub mod proto;

#[cfg(feature = "mime")]
pub mod mime;

#[cfg(feature = "testing")]
pub mod testing;

pub use proto::address::{Address, AddressError, EhloName, Envelope, EnvelopeError};
#[cfg(feature = "mime")]
pub use mime::{Message, MimeError};
