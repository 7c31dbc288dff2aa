//! Which proxy to tunnel through: SOCKS5 (RFC 1928, with RFC 1929 username/password) or
//! HTTP CONNECT (RFC 9110 section 9.3.6, with Basic proxy credentials), parsed from a URL
//! such as `socks5://user:pass@proxy.example:1080` or `http://proxy.example:3128`.

use std::fmt;

use crate::proto::error::Error;
use crate::proto::sasl::Secret;

/// The proxy protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// SOCKS5; the proxy resolves the mail server's name (ATYP `DOMAINNAME`).
    Socks5,
    /// HTTP CONNECT.
    Http,
}

/// A proxy to reach the mail server through. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub(crate) kind: ProxyKind,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, Secret<String>)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// `socks5://host:port` or `http://host:port`: never the credentials.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Http => "http",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

impl Proxy {
    /// A SOCKS5 proxy.
    pub fn socks5(host: impl Into<String>, port: u16) -> Self {
        Self { kind: ProxyKind::Socks5, host: host.into(), port, credentials: None }
    }

    /// An HTTP CONNECT proxy.
    pub fn http(host: impl Into<String>, port: u16) -> Self {
        Self { kind: ProxyKind::Http, host: host.into(), port, credentials: None }
    }

    /// Credentials for the proxy (RFC 1929 username/password, or HTTP Basic).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Secret::new(password.into())));
        self
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Parses `socks5://[user[:password]@]host[:port]` (also `socks5h://`; default port
    /// 1080) or `http://[user[:password]@]host[:port]` (default port 8080). User and
    /// password are percent-decoded. Errors never include the password.
    ///
    /// ```
    /// use smtpkit::connect::{Proxy, ProxyKind};
    /// let p = Proxy::parse("socks5://me:p%40ss@127.0.0.1:1080").unwrap();
    /// assert_eq!((p.kind(), p.host(), p.port()), (ProxyKind::Socks5, "127.0.0.1", 1080));
    /// assert_eq!(p.to_string(), "socks5://127.0.0.1:1080");
    /// assert!(!format!("{p:?}").contains("p@ss"));
    /// assert!(Proxy::parse("ftp://h").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| bad("proxy URL must start with socks5:// or http://"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            "http" => (ProxyKind::Http, 8080),
            other => return Err(bad(format!("unsupported proxy scheme {other:?} (use socks5 or http)"))),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad("unexpected path in proxy URL"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport, default_port)?;
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let (u, p) = info.split_once(':').unwrap_or((info, ""));
                Some((percent_decode(u, "proxy user")?, Secret::new(percent_decode(p, "proxy password")?)))
            }
        };
        Ok(Self { kind, host, port, credentials })
    }
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '[' in proxy host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("missing or invalid proxy host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(format!("invalid proxy port {p:?}")))?,
    };
    Ok((host.to_string(), port))
}

/// Percent-decodes one URL component (RFC 3986 section 2.1): the SMTP URL and the proxy
/// URL share it.
pub(crate) fn percent_decode(s: &str, what: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                // Two hex digits: `from_str_radix` alone would also take `+5`.
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("bad percent-encoding in {what}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("{what} is not UTF-8 after percent-decoding")))
}

/// The value of a `proxy=` URL parameter: taken as is when it reads as a URL (its own
/// credentials stay percent-encoded), percent-decoded once when it was encoded whole
/// (`socks5%3A%2F%2F...`).
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn parse_param(value: &str) -> Result<Proxy, Error> {
    if value.contains("://") { Proxy::parse(value) } else { Proxy::parse(&percent_decode(value, "proxy")?) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let p = Proxy::parse("http://u%3Ax:pw@[::1]:3128/").unwrap();
        assert_eq!((p.kind, p.host.as_str(), p.port), (ProxyKind::Http, "::1", 3128));
        let (user, pass) = p.credentials.clone().unwrap();
        assert_eq!((user.as_str(), pass.expose().as_str()), ("u:x", "pw"));
        assert_eq!(p.to_string(), "http://[::1]:3128");
        assert_eq!(Proxy::parse("SOCKS5H://h").unwrap().port, 1080);
        assert_eq!(parse_param("socks5%3A%2F%2Fu%3Ap%40h%3A9").unwrap().port, 9);
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in
            ["socks5://u:secretpw@h:0", "socks4://u:secretpw@h", "http://u:secret%zz@h", "http://u:secretpw@"]
        {
            let err = Proxy::parse(url).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
        let p = Proxy::parse("socks5://u:secretpw@h").unwrap();
        assert!(!format!("{p:?}{p}").contains("secretpw"));
    }
}
