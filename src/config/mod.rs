//! Client settings without tokio: the builder, `smtp://` URLs and the TLS configuration,
//! shared by the async [`Client`](crate::Client) and the blocking client.

pub(crate) mod builder;
mod connection_id;
pub(crate) mod tls;
pub mod url;

use std::sync::Arc;

use crate::proto::session::TraceLine;

pub use builder::{ClientBuilder, TokenFuture, TokenProvider};
pub(crate) use builder::{ConnectorInner, scram_nonce};
pub(crate) use connection_id::next_connection_id;

/// Receives the redacted transcript, one line at a time.
pub type TraceSink = Arc<dyn Fn(&TraceLine) + Send + Sync>;
