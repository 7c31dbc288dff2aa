//! HTTP CONNECT (RFC 9110 section 9.3.6) as a sans-IO exchange, with Basic proxy
//! credentials (RFC 9110 section 11.7.1, RFC 7617).
//!
//! The response head is read up to its empty line and not one byte further (proxies such
//! as tinyproxy send their `200` and the mail server's greeting in one segment), so the
//! greeting stays on the socket for the SMTP session.

use base64::Engine as _;

use super::error::{ProxyReason, ProxyStep};

const END: &[u8] = b"\r\n\r\n";
/// Cap on the response head: a proxy that keeps sending headers is not a tunnel.
const MAX_HEAD: usize = 8 * 1024;

/// One CONNECT exchange.
pub(crate) struct HttpConnect {
    out: Option<Vec<u8>>,
    buf: Vec<u8>,
    done: bool,
    with_credentials: bool,
}

type Fail = (ProxyStep, ProxyReason);

impl HttpConnect {
    /// Prepares `CONNECT host:port`.
    pub(crate) fn new(host: &str, port: u16, credentials: Option<(&str, &str)>) -> Result<Self, Fail> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.bytes().any(|b| b.is_ascii_control() || b == b' ' || b >= 0x80) {
            return Err((
                ProxyStep::Tunnel,
                ProxyReason::Unsupported("host name with control, space or non-ASCII octets"),
            ));
        }
        // "A client sending a CONNECT request MUST send the authority form of
        // request-target": host and port, an IPv6 literal in brackets.
        let authority =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, pass)) = credentials {
            if user.contains(':') || format!("{user}{pass}").bytes().any(|b| b.is_ascii_control()) {
                return Err((
                    ProxyStep::Auth,
                    ProxyReason::Unsupported("Basic credentials: no ':' in the user, no control octets"),
                ));
            }
            // RFC 7617 section 2: user-pass = user-id ":" password, base64-encoded.
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        Ok(Self {
            out: Some(req.into_bytes()),
            buf: Vec::new(),
            done: false,
            with_credentials: credentials.is_some(),
        })
    }

    /// Bytes to write now.
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.take()
    }

    /// True once the proxy answered 2xx.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Octets that cannot reach past the empty line ending the head: 4 minus the part of
    /// `CRLF CRLF` already seen at the end.
    pub(crate) fn read_limit(&self) -> usize {
        if self.done {
            return 0;
        }
        let seen = (1..END.len()).rev().find(|&k| self.buf.ends_with(&END[..k])).unwrap_or(0);
        END.len() - seen
    }

    /// Takes what the proxy sent.
    pub(crate) fn handle_input(&mut self, data: &[u8]) -> Result<(), Fail> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > MAX_HEAD {
            return Err((ProxyStep::Tunnel, ProxyReason::Malformed("response head over 8 KiB")));
        }
        if !self.buf.ends_with(END) {
            return Ok(());
        }
        let status_line = self.buf.split(|&b| b == b'\r').next().unwrap_or_default();
        let shown: String =
            String::from_utf8_lossy(status_line).chars().filter(|c| !c.is_control()).take(200).collect();
        let code = parse_status(status_line)
            .ok_or((ProxyStep::Tunnel, ProxyReason::Malformed("not an HTTP status line")))?;
        match code {
            // "Any 2xx (Successful) response indicates that the sender (and all inbound
            // proxies) will switch to tunnel mode immediately after the response header".
            200..=299 => {
                self.done = true;
                Ok(())
            }
            // 407 is the status RFC 9110 gives a proxy; tinyproxy 1.11 answers a CONNECT
            // without valid Basic credentials with 401, which can only mean the same.
            401 | 407 if !self.with_credentials => Err((ProxyStep::Auth, ProxyReason::CredentialsRequired)),
            401 | 407 => Err((ProxyStep::Auth, ProxyReason::Refused(shown))),
            _ => Err((ProxyStep::Tunnel, ProxyReason::Refused(shown))),
        }
    }
}

/// `HTTP/1.x SSS reason` -> SSS.
fn parse_status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut HttpConnect, answer: &[u8]) -> Result<usize, Fail> {
        let mut at = 0;
        while at < answer.len() && !h.is_done() {
            let n = h.read_limit().min(answer.len() - at);
            h.handle_input(&answer[at..at + n])?;
            at += n;
        }
        Ok(at)
    }

    #[test]
    fn request_and_greeting_left_unread() {
        let mut h = HttpConnect::new("::1", 587, Some(("me", "p:w"))).unwrap();
        let req = String::from_utf8(h.poll_transmit().unwrap()).unwrap();
        assert_eq!(
            req,
            "CONNECT [::1]:587 HTTP/1.1\r\nHost: [::1]:587\r\nProxy-Authorization: Basic bWU6cDp3\r\n\r\n"
        );
        let answer =
            b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n220 mx ESMTP\r\n";
        let used = feed(&mut h, answer).unwrap();
        assert!(h.is_done());
        assert_eq!(&answer[used..], b"220 mx ESMTP\r\n");
    }

    #[test]
    fn refusals() {
        let mut h = HttpConnect::new("mx", 25, None).unwrap();
        assert_eq!(
            feed(&mut h, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").unwrap_err(),
            (ProxyStep::Auth, ProxyReason::CredentialsRequired)
        );
        let mut h = HttpConnect::new("mx", 25, Some(("u", "bad"))).unwrap();
        let err = feed(&mut h, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").unwrap_err();
        assert_eq!(
            err,
            (ProxyStep::Auth, ProxyReason::Refused("HTTP/1.1 407 Proxy Authentication Required".into()))
        );
        let mut h = HttpConnect::new("mx", 25, Some(("u", "bad"))).unwrap();
        assert_eq!(feed(&mut h, b"HTTP/1.0 401 Unauthorized\r\n\r\n").unwrap_err().0, ProxyStep::Auth);
        let mut h = HttpConnect::new("mx", 25, None).unwrap();
        let err = feed(&mut h, b"HTTP/1.0 403 Access violation\r\nX: y\r\n\r\nbody").unwrap_err();
        assert_eq!(err, (ProxyStep::Tunnel, ProxyReason::Refused("HTTP/1.0 403 Access violation".into())));
        let mut h = HttpConnect::new("mx", 25, None).unwrap();
        assert!(matches!(feed(&mut h, b"220 smtp\r\n\r\n").unwrap_err().1, ProxyReason::Malformed(_)));
        let mut h = HttpConnect::new("mx", 25, None).unwrap();
        assert!(matches!(feed(&mut h, &vec![b'a'; MAX_HEAD + 1]).unwrap_err().1, ProxyReason::Malformed(_)));
        assert!(HttpConnect::new("mx\r\nX: y", 25, None).is_err());
        assert!(HttpConnect::new("mx", 25, Some(("a:b", "c"))).is_err());
    }
}
