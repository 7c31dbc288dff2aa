//! The builder options of connection set-up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Proxy;
use crate::config::ClientBuilder;

impl ClientBuilder {
    /// Reach the server through a SOCKS5 or HTTP CONNECT proxy. TLS (implicit or STARTTLS)
    /// runs end to end through the tunnel, with SNI and verification for the mail server.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.net.proxy = Some(proxy);
        self
    }

    /// Bind outgoing connections to this local address (the source IP; the port is the
    /// OS's choice). Addresses of the other family fail, each with its reason.
    pub fn local_address(mut self, ip: IpAddr) -> Self {
        self.net.bind = Some(ip);
        self
    }

    /// Connect to these addresses instead of resolving the host (as curl's `--resolve`).
    /// The host still names the server for TLS verification and for the proxy.
    pub fn resolve_to(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.net.resolve = Some(addrs.into_iter().collect());
        self
    }

    /// The Happy Eyeballs connection attempt delay (default 250 ms, RFC 8305 section 8).
    pub fn attempt_delay(mut self, delay: Duration) -> Self {
        self.net.attempt_delay = Some(delay);
        self
    }
}
