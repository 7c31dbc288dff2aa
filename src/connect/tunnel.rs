//! One proxy exchange, whichever the protocol: the loop both dialers run is
//! write what [`Tunnel::poll_transmit`] gives, read at most [`Tunnel::read_limit`] octets,
//! hand them to [`Tunnel::handle_input`], until [`Tunnel::is_done`].

use super::error::{ProxyError, ProxyReason, ProxyStep};
use super::http_connect::HttpConnect;
use super::proxy::{Proxy, ProxyKind};
use super::socks5::Socks5;

enum Exchange {
    Socks5(Socks5),
    Http(HttpConnect),
}

/// The sans-IO exchange that turns a connection to a proxy into a tunnel to `host:port`.
pub struct Tunnel {
    exchange: Exchange,
    proxy: String,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel").field("proxy", &self.proxy).field("step", &self.step()).finish()
    }
}

impl Tunnel {
    /// Prepares the exchange through `proxy` to the mail server `host:port` (a name is
    /// resolved by the proxy).
    pub fn new(proxy: &Proxy, host: &str, port: u16) -> Result<Self, ProxyError> {
        let name = proxy.to_string();
        let creds = proxy.credentials.as_ref().map(|(u, p)| (u.as_str(), p.expose().as_str()));
        let exchange = match proxy.kind {
            ProxyKind::Socks5 => Socks5::new(host, port, creds).map(Exchange::Socks5),
            ProxyKind::Http => HttpConnect::new(host, port, creds).map(Exchange::Http),
        };
        let exchange = exchange.map_err(|(step, reason)| ProxyError { proxy: name.clone(), step, reason })?;
        Ok(Self { exchange, proxy: name })
    }

    /// Bytes to write to the proxy now.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        match &mut self.exchange {
            Exchange::Socks5(s) => s.poll_transmit(),
            Exchange::Http(h) => h.poll_transmit(),
        }
    }

    /// Read at most this many octets next: more could swallow the mail server's first
    /// bytes. Zero once done.
    pub fn read_limit(&self) -> usize {
        match &self.exchange {
            Exchange::Socks5(s) => s.read_limit(),
            Exchange::Http(h) => h.read_limit(),
        }
    }

    /// Takes octets the proxy sent.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ProxyError> {
        let result = match &mut self.exchange {
            Exchange::Socks5(s) => s.handle_input(data),
            Exchange::Http(h) => h.handle_input(data),
        };
        result.map_err(|(step, reason)| self.error(step, reason))
    }

    /// True once the tunnel is open: the stream now reaches the mail server.
    pub fn is_done(&self) -> bool {
        match &self.exchange {
            Exchange::Socks5(s) => s.is_done(),
            Exchange::Http(h) => h.is_done(),
        }
    }

    /// The step in progress.
    pub fn step(&self) -> ProxyStep {
        match &self.exchange {
            Exchange::Socks5(s) => s.step(),
            Exchange::Http(_) => ProxyStep::Tunnel,
        }
    }

    /// An error for the step in progress (an I/O failure, a timeout, an early close).
    pub fn fail(&self, reason: ProxyReason) -> ProxyError {
        self.error(self.step(), reason)
    }

    fn error(&self, step: ProxyStep, reason: ProxyReason) -> ProxyError {
        ProxyError { proxy: self.proxy.clone(), step, reason }
    }
}
