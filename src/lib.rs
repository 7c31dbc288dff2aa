#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod proto;

pub mod connect;

#[cfg(feature = "mime")]
pub mod mime;

pub use proto::address::{Address, AddressError, EhloName, Envelope, EnvelopeError};
pub use proto::error::{Error, Extension, Fault, InputError, Phase, ProtocolError};
pub use proto::params::MessageOptions;
pub use proto::reply::Reply;
pub use proto::sasl::{Credentials, Mechanism, Secret};
pub use proto::session::{Direction, MessageId, RecipientResult, SendReport, TlsPolicy, TraceLine};
pub use proto::timeouts::Timeouts;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "dkim")]
pub mod dkim;
#[cfg(feature = "client")]
mod driver;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, Connector, SmtpUrl};
#[cfg(feature = "client")]
pub use driver::transport::Stream;
#[cfg(feature = "mime")]
pub use mime::{Message, MimeError};
#[cfg(feature = "pool")]
pub mod pool;
#[cfg(feature = "pool")]
pub use pool::{Pool, PoolError};
