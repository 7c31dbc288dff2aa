//! `smtp://`, `smtps://` and `lmtp://` URLs.
//!
//! `smtp://[user[:password]@]host[:port][?tls=required|opportunistic|none]` (default port
//! 587, STARTTLS required) and `smtps://[user[:password]@]host[:port]` (default port 465,
//! implicit TLS). `lmtp://` speaks LMTP (RFC 2033, default port 24) with the same `tls=`
//! choices. User and password are percent-decoded. Plaintext only with `tls=none`.
//!
//! Parameters: `tls=` (above), `auth=MECHANISM` (allow only that AUTH mechanism),
//! `proxy=socks5://...` or `proxy=http://...`, and `chunking=off` (also `false`, `no`) to
//! send with DATA even where the server offers CHUNKING; `chunking=on` (`true`, `yes`) keeps
//! the default, BDAT when offered.

use crate::connect::proxy::percent_decode;
use crate::proto::error::Error;
use crate::proto::sasl::{Mechanism, Secret};
use crate::proto::session::TlsPolicy;

/// The parts of an SMTP URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// User name, if any.
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<Secret<String>>,
    /// A forced AUTH mechanism (`?auth=`).
    pub mechanism: Option<Mechanism>,
    /// `lmtp://`: speak LMTP.
    pub lmtp: bool,
    /// `?proxy=socks5://user:pass@host:port` or `?proxy=http://...` (see
    /// [`Proxy::parse`](crate::connect::Proxy::parse)).
    pub proxy: Option<crate::connect::Proxy>,
    /// `?chunking=off|false|no` gives `Some(false)`, `?chunking=on|true|yes` `Some(true)`;
    /// `None` when absent (the builder's default, on, applies).
    pub chunking: Option<bool>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("mechanism", &self.mechanism)
            .field("lmtp", &self.lmtp)
            .field("proxy", &self.proxy)
            .field("chunking", &self.chunking)
            .finish()
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Query parameters [`SmtpUrl::parse`] understands.
const PARAMS: [&str; 4] = ["tls=", "auth=", "proxy=", "chunking="];

fn starts_with_known_param(query: &str) -> bool {
    PARAMS.iter().any(|p| query.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)))
}

impl SmtpUrl {
    /// Parses a URL. Errors never include the password.
    ///
    /// ```
    /// use smtpkit::client::SmtpUrl;
    /// use smtpkit::TlsPolicy;
    /// let u = SmtpUrl::parse("smtp://me%40example.com:p%40ss@mail.example.com").unwrap();
    /// assert_eq!((u.host.as_str(), u.port, u.tls), ("mail.example.com", 587, TlsPolicy::Required));
    /// assert_eq!(u.user.as_deref(), Some("me@example.com"));
    /// assert_eq!(u.password.unwrap().expose(), "p@ss");
    /// let u = SmtpUrl::parse("smtps://[::1]").unwrap();
    /// assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 465, TlsPolicy::Implicit));
    /// assert!(SmtpUrl::parse("smtp://h?tls=maybe").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| bad("URL must start with smtp:// or smtps://"))?;
        let (implicit, default_port, lmtp) = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => (false, 587, false),
            "smtps" => (true, 465, false),
            "lmtp" => (false, 24, true),
            other => return Err(bad(format!("unsupported URL scheme {other:?} (use smtp, smtps or lmtp)"))),
        };
        // The query starts at the first `?` followed by a parameter this parser knows: a
        // proxy URL in the query may hold its own `@` and `/`, which must not be read as
        // this URL's user information.
        let query_at = rest
            .match_indices('?')
            .map(|(i, _)| i)
            .find(|&i| rest.get(i + 1..).is_some_and(starts_with_known_param));
        // Without one, the last `@` of the whole URL ends the user information.
        let before_query = query_at.and_then(|i| rest.get(..i)).unwrap_or(rest);
        // A `?`, `/` or `#` before the last `@` belongs to the user or password: unescaped
        // there it would cut the URL in the wrong place (and a message naming the piece
        // would show part of the password).
        if let Some((userinfo, _)) = before_query.rsplit_once('@') {
            if userinfo.contains(['?', '/', '#']) {
                return Err(bad(
                    "the user name or password contains '?', '/' or '#': percent-encode it (%3F, %2F, %23)",
                ));
            }
        }
        let (authority, query) = match query_at.or_else(|| rest.find('?')) {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') || authority.contains('#') {
            return Err(bad("unexpected path in SMTP URL"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport, default_port)?;
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = percent_decode(u, "user")?;
                let password = p.map(|p| percent_decode(p, "password")).transpose()?.map(Secret::new);
                (Some(user), password)
            }
        };
        let mut tls = if implicit { TlsPolicy::Implicit } else { TlsPolicy::Required };
        let mut mechanism = None;
        let mut proxy = None;
        let mut chunking = None;
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "tls" if implicit => return Err(bad("smtps:// is always implicit TLS; tls= is not allowed")),
                "tls" => {
                    tls = match value {
                        "required" => TlsPolicy::Required,
                        "opportunistic" => TlsPolicy::Opportunistic,
                        "none" => TlsPolicy::Disabled,
                        other => {
                            return Err(bad(format!("tls={other:?}: use required, opportunistic or none")));
                        }
                    }
                }
                "auth" => {
                    mechanism = Some(
                        Mechanism::from_name(value)
                            .ok_or_else(|| bad(format!("auth={value:?} is not a supported mechanism")))?,
                    )
                }
                "proxy" => proxy = Some(crate::connect::proxy::parse_param(value)?),
                "chunking" => chunking = Some(parse_switch(key, value)?),
                other => return Err(bad(format!("unknown URL parameter {other:?}"))),
            }
        }
        Ok(Self { host, port, tls, user, password, mechanism, lmtp, proxy, chunking })
    }
}

/// An on/off URL parameter: `on`, `true`, `yes` or `off`, `false`, `no` (any case).
fn parse_switch(key: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(bad(format!("{key}={value:?}: use on or off"))),
    }
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '[' in host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("garbage after ']'"))?),
        };
        (h, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host in SMTP URL"));
    }
    if host.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("invalid character in host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => {
            // Digits only: `str::parse` would also take a leading `+`.
            let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad(format!("invalid port {p:?}")))?
        }
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_modes() {
        let u = SmtpUrl::parse("smtp://localhost").unwrap();
        assert_eq!((u.port, u.tls), (587, TlsPolicy::Required));
        let u = SmtpUrl::parse("smtp://localhost:2525?tls=none").unwrap();
        assert_eq!((u.port, u.tls), (2525, TlsPolicy::Disabled));
        let u = SmtpUrl::parse("smtp://h?tls=opportunistic&auth=login").unwrap();
        assert_eq!((u.tls, u.mechanism), (TlsPolicy::Opportunistic, Some(Mechanism::Login)));
        let u = SmtpUrl::parse("SMTPS://h:1465/").unwrap();
        assert_eq!((u.port, u.tls), (1465, TlsPolicy::Implicit));
        let u = SmtpUrl::parse("lmtp://h?tls=none").unwrap();
        assert_eq!((u.port, u.tls, u.lmtp), (24, TlsPolicy::Disabled, true));
    }

    #[test]
    fn chunking_parameter() {
        assert_eq!(SmtpUrl::parse("smtp://h").unwrap().chunking, None);
        for off in ["off", "false", "no", "OFF", "No"] {
            let u = SmtpUrl::parse(&format!("smtp://h?chunking={off}")).unwrap();
            assert_eq!(u.chunking, Some(false), "{off}");
        }
        for on in ["on", "true", "yes", "TRUE"] {
            let u = SmtpUrl::parse(&format!("smtps://h?chunking={on}")).unwrap();
            assert_eq!(u.chunking, Some(true), "{on}");
        }
        let u = SmtpUrl::parse("smtp://h:2525?tls=none&chunking=off&auth=plain").unwrap();
        assert_eq!(
            (u.tls, u.chunking, u.mechanism),
            (TlsPolicy::Disabled, Some(false), Some(Mechanism::Plain))
        );
        for bad in
            ["smtp://h?chunking", "smtp://h?chunking=", "smtp://h?chunking=maybe", "smtp://h?chunking=0"]
        {
            let err = SmtpUrl::parse(bad).unwrap_err();
            assert!(matches!(&err, Error::Config(m) if m.contains("chunking=")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn proxy_credentials_are_decoded_as_strictly_as_the_url_s() {
        assert!(crate::connect::Proxy::parse("socks5://u:%+5@127.0.0.1:1080").is_err());
        assert!(crate::connect::Proxy::parse("socks5://u:%41@127.0.0.1:1080").is_ok());
    }

    #[test]
    fn a_proxy_url_in_the_query_keeps_its_own_credentials() {
        let u =
            SmtpUrl::parse("smtps://me:pw@mail.example.com:465?proxy=socks5://pu:pp@127.0.0.1:1080").unwrap();
        assert_eq!((u.host.as_str(), u.user.as_deref()), ("mail.example.com", Some("me")));
        assert_eq!(u.password.unwrap().expose(), "pw");
        assert!(u.proxy.is_some());
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "smtp://u:secretpw@h:99999",
            "smtp://u:secretpw@h?x=1",
            "ftp://u:secretpw@h",
            "smtp://u:secret%zz@h",
        ] {
            let err = SmtpUrl::parse(url).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
        // Unescaped `?`, `/`, `#` in the password: told to percent-encode, never shown.
        for url in
            ["smtp://u:sec?retpw@h", "smtp://u:sec/retpw@h", "smtp://u:sec#retpw@h", "smtp://u:s?e/c#r@h:25"]
        {
            let err = SmtpUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains("percent-encode it"), "{url}: {err}");
            assert!(!err.contains("sec") && !err.contains("retpw") && !err.contains("s?e"), "{url}: {err}");
        }
        let u = SmtpUrl::parse("smtp://u:sec%3Fre%2Ft%23pw@h").unwrap();
        assert_eq!(u.password.unwrap().expose(), "sec?re/t#pw");
        let u = SmtpUrl::parse("smtp://u:secretpw@h").unwrap();
        assert!(!format!("{u:?}").contains("secretpw"));
    }

    #[test]
    fn rejects_malformed() {
        for url in [
            "smtp://",
            "smtp://:25",
            "smtp://h:0",
            "smtp://h/path",
            "smtps://h?tls=none",
            "smtp://[::1",
            "smtp://a b",
            "smtp://h:+25",
            "smtp://h:+0025",
            "smtp://u%+5@h",
            "smtp://u:p%+5@h",
            "smtp://u:p%-1@h",
        ] {
            assert!(SmtpUrl::parse(url).is_err(), "{url}");
        }
    }
}
