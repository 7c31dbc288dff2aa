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
pub use proto::session::{
    ConnectionId, Direction, MessageId, RecipientResult, SendReport, TlsPolicy, TraceLine,
};
pub use proto::timeouts::Timeouts;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "client")]
pub mod client;
#[cfg(any(feature = "client", feature = "blocking"))]
mod config;
#[cfg(feature = "dkim")]
pub mod dkim;
#[cfg(feature = "client")]
mod driver;
#[cfg(feature = "client")]
pub mod metrics;
#[cfg(feature = "client")]
pub mod rate;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

#[cfg(feature = "client")]
pub use client::{Client, Connector};
#[cfg(any(feature = "client", feature = "blocking"))]
pub use config::{ClientBuilder, url::SmtpUrl};
#[cfg(feature = "client")]
pub use driver::transport::Stream;
#[cfg(feature = "mime")]
pub use mime::{Message, MimeError};
pub use transport::{BlockingTransport, Outgoing, Transport};
#[cfg(feature = "pool")]
pub mod pool;
#[cfg(feature = "pool")]
pub mod retry;
#[cfg(feature = "pool")]
pub use pool::{Pool, PoolError};
