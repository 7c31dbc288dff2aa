#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod proto;

pub mod connect;

#[cfg(feature = "mime")]
pub mod mime;

// Everyday use needs no `smtpkit::proto::..` path: every type that `Client`, `ClientBuilder`,
// `Pool`, `Message` and `Error` take or return is re-exported here. `proto` stays the
// documented advanced layer for callers who drive the sans-IO core themselves.
pub use proto::address::{Address, AddressError, EhloName, Envelope, EnvelopeError};
pub use proto::capabilities::Capabilities;
pub use proto::code::ReplyCode;
pub use proto::dot_stuff::{BodyError, LineEndings};
pub use proto::enhanced::{Advice, EnhancedStatus};
pub use proto::error::{Error, Extension, Fault, InputError, Phase, ProtocolError, Report};
pub use proto::params::{EnvId, MessageOptions, Notify, ParamError, Ret};
pub use proto::reply::{Reply, ReplyError, ReplyLimits};
pub use proto::sasl::{Credentials, Mechanism, SaslError, Secret};
pub use proto::session::{Direction, MessageId, RecipientResult, SendReport, TlsPolicy, TraceLine};
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
