//! SOCKS5 client exchange as a sans-IO state machine: method negotiation (RFC 1928
//! section 3), username/password (RFC 1929), CONNECT (RFC 1928 section 4) with the
//! target name resolved by the proxy, and the reply (section 6).
//!
//! It never asks for more input than the proxy's current answer still owes, so not one
//! byte of the mail server's greeting is read here.

use std::net::IpAddr;

use super::error::{ProxyReason, ProxyStep};

const VERSION: u8 = 0x05;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Method,
    Auth,
    Reply,
    Done,
}

/// One SOCKS5 exchange.
pub(crate) struct Socks5 {
    state: State,
    buf: Vec<u8>,
    out: Option<Vec<u8>>,
    auth: Option<Vec<u8>>,
    request: Vec<u8>,
}

type Fail = (ProxyStep, ProxyReason);

impl Socks5 {
    /// Prepares the exchange for `host:port`; `credentials` enable RFC 1929.
    pub(crate) fn new(host: &str, port: u16, credentials: Option<(&str, &str)>) -> Result<Self, Fail> {
        let auth = credentials.map(|(user, pass)| auth_request(user, pass)).transpose()?;
        // "The values currently defined for METHOD are: X'00' NO AUTHENTICATION REQUIRED
        // ... X'02' USERNAME/PASSWORD": offer the latter only with credentials.
        let greeting =
            if auth.is_some() { vec![VERSION, 2, NO_AUTH, USER_PASS] } else { vec![VERSION, 1, NO_AUTH] };
        Ok(Self {
            state: State::Method,
            buf: Vec::new(),
            out: Some(greeting),
            auth,
            request: connect_request(host, port)?,
        })
    }

    /// Bytes to write now.
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.take()
    }

    /// The step in progress.
    pub(crate) fn step(&self) -> ProxyStep {
        match self.state {
            State::Method => ProxyStep::Greeting,
            State::Auth => ProxyStep::Auth,
            State::Reply | State::Done => ProxyStep::Tunnel,
        }
    }

    /// True once the tunnel is open.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// How many octets the current answer still owes (read no more than that).
    pub(crate) fn read_limit(&self) -> usize {
        let want = match self.state {
            State::Method | State::Auth => 2,
            State::Reply => reply_len(&self.buf).unwrap_or(5),
            State::Done => 0,
        };
        want.saturating_sub(self.buf.len()).max(usize::from(self.state != State::Done))
    }

    /// Takes what the proxy sent.
    pub(crate) fn handle_input(&mut self, data: &[u8]) -> Result<(), Fail> {
        self.buf.extend_from_slice(data);
        match self.state {
            State::Method => self.method(),
            State::Auth => self.auth_reply(),
            State::Reply => self.reply(),
            State::Done => Err((ProxyStep::Tunnel, ProxyReason::Malformed("octets after the reply"))),
        }
    }

    fn method(&mut self) -> Result<(), Fail> {
        let fail = |r| Err((ProxyStep::Greeting, r));
        let &[version, method] = self.buf.as_slice() else {
            return if self.buf.len() > 2 {
                fail(ProxyReason::Malformed("long method reply"))
            } else {
                Ok(())
            };
        };
        if version != VERSION {
            return fail(ProxyReason::Malformed("not a SOCKS5 proxy"));
        }
        self.buf.clear();
        match method {
            NO_AUTH => self.send_request(),
            USER_PASS => match self.auth.take() {
                Some(auth) => {
                    self.out = Some(auth);
                    self.state = State::Auth;
                    Ok(())
                }
                None => Err((ProxyStep::Auth, ProxyReason::CredentialsRequired)),
            },
            // "If the selected METHOD is X'FF', none of the methods listed by the client
            // are acceptable, and the client MUST close the connection."
            NO_ACCEPTABLE => fail(ProxyReason::NoAcceptableMethod),
            _ => fail(ProxyReason::Malformed("the proxy chose a method that was not offered")),
        }
    }

    fn auth_reply(&mut self) -> Result<(), Fail> {
        let &[_version, status] = self.buf.as_slice() else {
            return Ok(());
        };
        self.buf.clear();
        // RFC 1929: "A STATUS field of X'00' indicates success. If the server returns a
        // `failure' (STATUS value other than X'00') status, it MUST close the connection."
        if status != 0 {
            return Err((
                ProxyStep::Auth,
                ProxyReason::Refused(format!("username/password rejected (status {status})")),
            ));
        }
        self.send_request()
    }

    fn send_request(&mut self) -> Result<(), Fail> {
        self.out = Some(std::mem::take(&mut self.request));
        self.state = State::Reply;
        Ok(())
    }

    fn reply(&mut self) -> Result<(), Fail> {
        let fail = |r| Err((ProxyStep::Tunnel, r));
        if let Some(&version) = self.buf.first()
            && version != VERSION
        {
            return fail(ProxyReason::Malformed("not a SOCKS5 reply"));
        }
        // A refusal is final as soon as its code is known; the rest need not arrive.
        if let Some(&rep) = self.buf.get(1)
            && rep != 0
        {
            return fail(ProxyReason::Refused(format!("reply {rep:#04x} ({})", reply_meaning(rep))));
        }
        if let Some(&atyp) = self.buf.get(3)
            && !matches!(atyp, 0x01 | 0x03 | 0x04)
        {
            return fail(ProxyReason::Malformed("unknown address type in reply"));
        }
        match reply_len(&self.buf) {
            Some(n) if self.buf.len() > n => fail(ProxyReason::Malformed("long reply")),
            Some(n) if self.buf.len() == n => {
                self.state = State::Done;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The full length of a reply from its first octets: VER REP RSV ATYP BND.ADDR BND.PORT.
fn reply_len(buf: &[u8]) -> Option<usize> {
    match buf.get(3)? {
        0x01 => Some(4 + 4 + 2),
        0x04 => Some(4 + 16 + 2),
        0x03 => buf.get(4).map(|&n| 4 + 1 + usize::from(n) + 2),
        _ => None,
    }
}

/// RFC 1928 section 6, the REP field.
fn reply_meaning(rep: u8) -> &'static str {
    match rep {
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned",
    }
}

/// RFC 1929: VER=1 ULEN UNAME PLEN PASSWD, each 1 to 255 octets.
fn auth_request(user: &str, pass: &str) -> Result<Vec<u8>, Fail> {
    let len = |s: &str| u8::try_from(s.len()).ok().filter(|&n| n > 0);
    let (Some(ulen), Some(plen)) = (len(user), len(pass)) else {
        return Err((
            ProxyStep::Auth,
            ProxyReason::Unsupported("SOCKS5 user and password must be 1 to 255 octets"),
        ));
    };
    let mut out = vec![0x01, ulen];
    out.extend_from_slice(user.as_bytes());
    out.push(plen);
    out.extend_from_slice(pass.as_bytes());
    Ok(out)
}

/// VER CMD=CONNECT RSV ATYP DST.ADDR DST.PORT. A name goes as ATYP X'03' so that the
/// proxy resolves it (the client may not even be able to).
fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, Fail> {
    let mut out = vec![VERSION, 0x01, 0x00];
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            out.push(0x01);
            out.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            out.push(0x04);
            out.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let Some(len) = u8::try_from(host.len()).ok().filter(|&n| n > 0) else {
                return Err((ProxyStep::Tunnel, ProxyReason::Unsupported("host name over 255 octets")));
            };
            out.push(0x03);
            out.push(len);
            out.extend_from_slice(host.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `answer` in pieces no longer than `read_limit`, as a driver would.
    fn feed(s: &mut Socks5, answer: &[u8]) -> Result<usize, Fail> {
        let mut at = 0;
        while at < answer.len() && !s.is_done() {
            let n = s.read_limit().min(answer.len() - at);
            s.handle_input(&answer[at..at + n])?;
            at += n;
        }
        Ok(at)
    }

    #[test]
    fn no_auth_with_a_name_resolved_by_the_proxy() {
        let mut s = Socks5::new("mx.example", 587, None).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), [5, 1, 0]);
        assert_eq!(s.read_limit(), 2);
        feed(&mut s, &[5, 0]).unwrap();
        let mut want = vec![5, 1, 0, 3, 10];
        want.extend_from_slice(b"mx.example");
        want.extend_from_slice(&[2, 75]);
        assert_eq!(s.poll_transmit().unwrap(), want);
        // A reply with a name, then the server's greeting: the greeting is not consumed.
        let mut answer = vec![5, 0, 0, 3, 2, b'a', b'b', 0, 25];
        answer.extend_from_slice(b"220 mx\r\n");
        assert_eq!(feed(&mut s, &answer).unwrap(), 9);
        assert!(s.is_done());
    }

    #[test]
    fn username_password() {
        let mut s = Socks5::new("192.0.2.1", 25, Some(("u", "pw"))).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), [5, 2, 0, 2]);
        feed(&mut s, &[5, 2]).unwrap();
        assert_eq!(s.step(), ProxyStep::Auth);
        assert_eq!(s.poll_transmit().unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        feed(&mut s, &[1, 0]).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), [5, 1, 0, 1, 192, 0, 2, 1, 0, 25]);
        feed(&mut s, &[5, 0, 0, 4]).unwrap();
        assert_eq!(s.read_limit(), 18);
        feed(&mut s, &[0; 18]).unwrap();
        assert!(s.is_done());
    }

    #[test]
    fn failures_name_the_step() {
        let mut s = Socks5::new("h", 25, Some(("u", "bad"))).unwrap();
        feed(&mut s, &[5, 2]).unwrap();
        let (step, reason) = feed(&mut s, &[1, 1]).unwrap_err();
        assert_eq!(step, ProxyStep::Auth);
        assert!(matches!(reason, ProxyReason::Refused(_)));

        let mut s = Socks5::new("h", 25, None).unwrap();
        assert_eq!(feed(&mut s, &[5, 2]).unwrap_err(), (ProxyStep::Auth, ProxyReason::CredentialsRequired));
        let mut s = Socks5::new("h", 25, None).unwrap();
        assert_eq!(
            feed(&mut s, &[5, 0xFF]).unwrap_err(),
            (ProxyStep::Greeting, ProxyReason::NoAcceptableMethod)
        );
        let mut s = Socks5::new("h", 25, None).unwrap();
        assert!(matches!(feed(&mut s, b"HT").unwrap_err(), (ProxyStep::Greeting, ProxyReason::Malformed(_))));

        let mut s = Socks5::new("h", 25, None).unwrap();
        feed(&mut s, &[5, 0]).unwrap();
        let (step, reason) = feed(&mut s, &[5, 5]).unwrap_err();
        assert_eq!(step, ProxyStep::Tunnel);
        assert_eq!(reason, ProxyReason::Refused("reply 0x05 (connection refused)".into()));
        let mut s = Socks5::new("h", 25, None).unwrap();
        feed(&mut s, &[5, 0]).unwrap();
        assert!(matches!(feed(&mut s, &[5, 0, 0, 9, 0]).unwrap_err().1, ProxyReason::Malformed(_)));
    }

    #[test]
    fn limits() {
        assert!(Socks5::new(&"a".repeat(256), 25, None).is_err());
        assert!(Socks5::new("h", 25, Some(("", "p"))).is_err());
        assert!(Socks5::new("h", 25, Some(("u", &"p".repeat(256)))).is_err());
        let mut s = Socks5::new("::1", 25, None).unwrap();
        let _ = s.poll_transmit();
        feed(&mut s, &[5, 0]).unwrap();
        assert_eq!(s.poll_transmit().unwrap()[3], 4);
    }
}
