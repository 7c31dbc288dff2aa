//! Recognising a port spoken in the other TLS mode, from the first octets that came back
//! or from the port number alone.
//!
//! * Expecting a `220` and getting TLS records (content type 20-23, version 3.x) means
//!   the port speaks implicit TLS.
//! * Doing a TLS handshake and getting an SMTP reply (`220 `, `500-`...) means the port
//!   speaks plain SMTP.
//! * A plain client at an implicit-TLS port usually hears nothing at all: the TLS server
//!   waits for a ClientHello. So after [`SILENCE_PROBE_AFTER`] without a single greeting
//!   octet the dialer opens a second connection and sends a ClientHello there (the first
//!   connection is left alone, so a slow but honest server is not disturbed); a TLS
//!   record in answer proves the mix-up.

use std::time::Duration;

use super::error::{Evidence, TlsModeHint};

/// How long a silent server may take before the TLS probe is sent.
pub const SILENCE_PROBE_AFTER: Duration = Duration::from_secs(2);

/// How many first octets of a connection the dialer keeps for [`classify`].
pub const PREFIX_LEN: usize = 8;

/// True when `first` starts like a TLS record: ContentType change_cipher_spec (20),
/// alert (21), handshake (22) or application_data (23), then ProtocolVersion major 3
/// (RFC 8446 section 5.1).
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [20..=23, 3, ..])
}

/// True when `first` starts like an SMTP reply: three digits, then space, `-` or the end
/// of what arrived (RFC 5321 section 4.2).
pub fn looks_like_smtp_reply(first: &[u8]) -> bool {
    match first {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) && (b'2'..=b'5').contains(a) => {
            matches!(rest.first(), None | Some(b' ' | b'-' | b'\r'))
        }
        _ => false,
    }
}

/// What the first octets of a failed connection say, given whether it spoke implicit TLS.
pub fn classify(implicit_tls: bool, first: &[u8]) -> Option<(TlsModeHint, Evidence)> {
    if implicit_tls && looks_like_smtp_reply(first) {
        Some((TlsModeHint::UseStartTls, Evidence::PlainReply))
    } else if !implicit_tls && looks_like_tls(first) {
        Some((TlsModeHint::UseImplicitTls, Evidence::TlsRecords))
    } else {
        None
    }
}

/// The hint a port number alone gives: 465 is implicit TLS (RFC 8314 section 7.3), 587
/// (RFC 6409) and 25 are plain SMTP with STARTTLS.
pub fn port_hint(port: u16, implicit_tls: bool) -> Option<TlsModeHint> {
    match (port, implicit_tls) {
        (465, false) => Some(TlsModeHint::UseImplicitTls),
        (587 | 25, true) => Some(TlsModeHint::UseStartTls),
        _ => None,
    }
}

#[cfg(any(feature = "client", feature = "blocking"))]
/// A ClientHello for `host` from a throwaway configuration (no handshake follows it).
pub(crate) fn client_hello(host: &str) -> Option<Vec<u8>> {
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = crate::config::tls::server_name(host)
        .or_else(|_| crate::config::tls::server_name("probe.invalid"))
        .ok()?;
    let mut conn = ClientConnection::new(Arc::new(config), name).ok()?;
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).ok()?;
    Some(hello)
}

/// A failure on 465 without implicit TLS, or on 587/25 with it, carries the port hint
/// (unless the mix-up is already proven, or the server plainly answered in SMTP).
#[cfg(any(feature = "client", feature = "blocking"))]
pub(crate) fn with_port_hint(e: crate::Error, port: u16, implicit: bool) -> crate::Error {
    use super::error::{ConnectError, WrongTlsMode};
    use crate::Error;
    let Some(hint) = port_hint(port, implicit) else { return e };
    let plausible = matches!(
        e,
        Error::Timeout(_) | Error::ConnectionClosed(_) | Error::Io(_) | Error::Tls(_) | Error::Protocol(_)
    ) || matches!(&e, Error::Connect(ConnectError::Unreachable(_)));
    if !plausible {
        return e;
    }
    WrongTlsMode { hint, evidence: Evidence::WellKnownPort(port), cause: Some(Box::new(e)) }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_both_directions() {
        assert_eq!(
            classify(false, &[22, 3, 3, 0, 90]),
            Some((TlsModeHint::UseImplicitTls, Evidence::TlsRecords))
        );
        assert_eq!(
            classify(false, &[21, 3, 1, 0, 2]),
            Some((TlsModeHint::UseImplicitTls, Evidence::TlsRecords))
        );
        assert_eq!(classify(true, b"220 mx ESMTP"), Some((TlsModeHint::UseStartTls, Evidence::PlainReply)));
        assert_eq!(classify(true, b"500-5.5.2"), Some((TlsModeHint::UseStartTls, Evidence::PlainReply)));
        assert_eq!(classify(true, b"220"), Some((TlsModeHint::UseStartTls, Evidence::PlainReply)));
        assert_eq!(classify(false, b"220 mx"), None);
        assert_eq!(classify(true, &[22, 3, 3]), None);
        assert_eq!(classify(true, b"HTTP/1.1 400"), None);
        assert_eq!(classify(false, b""), None);
    }

    #[test]
    fn ports() {
        assert_eq!(port_hint(465, false), Some(TlsModeHint::UseImplicitTls));
        assert_eq!(port_hint(587, true), Some(TlsModeHint::UseStartTls));
        assert_eq!(port_hint(587, false), None);
        assert_eq!(port_hint(2465, false), None);
    }
}
