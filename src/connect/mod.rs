//! Connection set-up, shared by every client: proxies (SOCKS5, HTTP CONNECT), Happy
//! Eyeballs dialing (RFC 8305), the EHLO name, hints for a port spoken in the other TLS
//! mode.
//!
//! The protocol logic is sans-IO and free of tokio ([`Tunnel`], [`eyeballs::Race`],
//! [`default_ehlo_name`], [`hint`]); the dialers over tokio and over `std::net` are thin
//! loops around it, so the async and the blocking client connect the same way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), smtpkit::Error> {
//! use smtpkit::Client;
//! use smtpkit::connect::Proxy;
//! let client = Client::builder("mail.example.com")
//!     .proxy(Proxy::parse("socks5://me:secret@proxy.internal:1080")?)
//!     .connect()
//!     .await?;
//! # let _ = client; Ok(()) }
//! ```

#[cfg(any(feature = "client", feature = "blocking"))]
pub mod blocking;
pub mod ehlo;
pub mod error;
pub mod eyeballs;
pub mod hint;
mod http_connect;
pub mod proxy;
mod socks5;
pub mod tunnel;

#[cfg(any(feature = "client", feature = "blocking"))]
mod builder;
#[cfg(feature = "client")]
pub(crate) mod dial;
#[cfg(feature = "client")]
pub(crate) mod sniff;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use ehlo::default_ehlo_name;
pub use error::{
    Attempt, AttemptFailure, ConnectError, Evidence, ProxyError, ProxyReason, ProxyStep, TlsModeHint,
    Unreachable, WrongTlsMode,
};
pub use proxy::{Proxy, ProxyKind};
pub use tunnel::Tunnel;

/// How connections are opened: proxy, local address, address override, attempt delay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// Tunnel through this proxy.
    pub proxy: Option<Proxy>,
    /// Bind outgoing sockets to this local address (source IP; port chosen by the OS).
    pub bind: Option<IpAddr>,
    /// Connect to these addresses instead of resolving the host (the host still names
    /// the server for TLS and the proxy).
    pub resolve: Option<Vec<SocketAddr>>,
    /// Happy Eyeballs connection attempt delay (default [`eyeballs::ATTEMPT_DELAY`]).
    pub attempt_delay: Option<Duration>,
    /// The caller chose the EHLO name; otherwise [`default_ehlo_name`] picks it.
    pub ehlo_chosen: bool,
}

impl NetOptions {
    /// The attempt delay in force.
    pub fn attempt_delay(&self) -> Duration {
        self.attempt_delay.unwrap_or(eyeballs::ATTEMPT_DELAY)
    }
}
