//! The ESMTP capabilities a server advertises in its EHLO reply (RFC 5321 section 4.1.1.1).

use super::reply::Reply;

/// An AUTH mechanism name as advertised (upper-cased).
pub type MechanismName = String;

/// What the server said it supports. Keywords are case-insensitive; unknown ones are
/// kept and can be queried with [`Capabilities::has`].
///
/// ```
/// use smtpkit::proto::{capabilities::Capabilities, reply::Reply};
/// let ehlo = Reply::new(
///     smtpkit::proto::code::ReplyCode(250),
///     vec![b"mx.example Hello"[..].into(), b"size 1000"[..].into(), b"AUTH=LOGIN"[..].into(), b"X-Foo bar"[..].into()],
/// );
/// let caps = Capabilities::from_ehlo(&ehlo);
/// assert_eq!(caps.size(), Some(Some(1000)));
/// assert!(caps.auth_mechanisms().iter().any(|m| m == "LOGIN"));
/// assert!(caps.has("x-foo"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    domain: String,
    /// (KEYWORD upper-cased, parameters as given)
    entries: Vec<(String, Vec<String>)>,
    auth: Vec<MechanismName>,
    /// The well-known keywords, one bit each (`KNOWN`): asked for every message, so
    /// decided once per EHLO instead of searched for each time.
    known: u16,
    size: Option<Option<u64>>,
}

/// Keywords with an accessor of their own, each with its bit in `Capabilities::known`.
const PIPELINING: u16 = 1 << 0;
const CHUNKING: u16 = 1 << 1;
const STARTTLS: u16 = 1 << 2;
const EIGHT_BIT_MIME: u16 = 1 << 3;
const SMTPUTF8: u16 = 1 << 4;
const DSN: u16 = 1 << 5;
const ENHANCEDSTATUSCODES: u16 = 1 << 6;
const REQUIRETLS: u16 = 1 << 7;
const KNOWN: [(&str, u16); 8] = [
    ("PIPELINING", PIPELINING),
    ("CHUNKING", CHUNKING),
    ("STARTTLS", STARTTLS),
    ("8BITMIME", EIGHT_BIT_MIME),
    ("SMTPUTF8", SMTPUTF8),
    ("DSN", DSN),
    ("ENHANCEDSTATUSCODES", ENHANCEDSTATUSCODES),
    ("REQUIRETLS", REQUIRETLS),
];

impl Capabilities {
    /// Parses an EHLO reply: the first line is the server's domain and greeting, each
    /// further line one `ehlo-keyword *(SP ehlo-param)`.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut lines = reply.lines().map(|l| String::from_utf8_lossy(l).into_owned());
        let domain = lines.next().unwrap_or_default().split(' ').next().unwrap_or_default().to_string();
        let mut caps = Self { domain, ..Self::default() };
        for line in lines {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else { continue };
            let params: Vec<String> = words.map(str::to_string).collect();
            // Old servers advertise "AUTH=LOGIN PLAIN" (pre-RFC 4954 syntax).
            let (keyword, params) = match keyword.split_once('=') {
                Some((k, first)) => {
                    let mut all = vec![first.to_string()];
                    all.extend(params);
                    (k.to_ascii_uppercase(), all)
                }
                None => (keyword.to_ascii_uppercase(), params),
            };
            if keyword == "AUTH" {
                for mech in &params {
                    let mech = mech.to_ascii_uppercase();
                    if !caps.auth.contains(&mech) {
                        caps.auth.push(mech);
                    }
                }
            }
            caps.entries.push((keyword, params));
        }
        for (keyword, flag) in KNOWN {
            if caps.entries.iter().any(|(k, _)| k == keyword) {
                caps.known |= flag;
            }
        }
        caps.size = caps
            .params("SIZE")
            .map(|params| params.first().and_then(|p| p.parse::<u64>().ok()).filter(|&n| n > 0));
        caps
    }

    /// Whether the keyword with this flag was advertised.
    fn known(&self, flag: u16) -> bool {
        self.known & flag != 0
    }

    /// The domain the server named in the first EHLO line.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True when `keyword` (any case) was advertised.
    pub fn has(&self, keyword: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.eq_ignore_ascii_case(keyword))
    }

    /// The parameters of `keyword`, if advertised.
    pub fn params(&self, keyword: &str) -> Option<&[String]> {
        self.entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(keyword)).map(|(_, p)| &p[..])
    }

    /// Every advertised keyword with its parameters, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(k, p)| (k.as_str(), &p[..]))
    }

    /// RFC 2920 PIPELINING.
    pub fn pipelining(&self) -> bool {
        self.known(PIPELINING)
    }

    /// RFC 3030 CHUNKING (BDAT).
    pub fn chunking(&self) -> bool {
        self.known(CHUNKING)
    }

    /// RFC 3207 STARTTLS.
    pub fn starttls(&self) -> bool {
        self.known(STARTTLS)
    }

    /// RFC 6152 8BITMIME.
    pub fn eight_bit_mime(&self) -> bool {
        self.known(EIGHT_BIT_MIME)
    }

    /// RFC 6531 SMTPUTF8.
    pub fn smtputf8(&self) -> bool {
        self.known(SMTPUTF8)
    }

    /// RFC 3461 DSN.
    pub fn dsn(&self) -> bool {
        self.known(DSN)
    }

    /// RFC 2034 ENHANCEDSTATUSCODES.
    pub fn enhanced_status_codes(&self) -> bool {
        self.known(ENHANCEDSTATUSCODES)
    }

    /// RFC 8689 REQUIRETLS.
    pub fn requiretls(&self) -> bool {
        self.known(REQUIRETLS)
    }

    /// RFC 1870 SIZE: `None` when not advertised, `Some(None)` when advertised without a
    /// (non-zero) limit, `Some(Some(n))` for a limit of `n` octets.
    pub fn size(&self) -> Option<Option<u64>> {
        self.size
    }

    /// Advertised AUTH mechanisms, upper-cased, in the server's order.
    pub fn auth_mechanisms(&self) -> &[MechanismName] {
        &self.auth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::code::ReplyCode;

    fn ehlo(lines: &[&str]) -> Capabilities {
        Capabilities::from_ehlo(&Reply::new(
            ReplyCode(250),
            lines.iter().map(|l| l.as_bytes().into()).collect(),
        ))
    }

    #[test]
    fn keywords_are_case_insensitive_and_unknowns_kept() {
        let c = ehlo(&["mx Hi", "pipelining", "Chunking", "8bitmime", "X-UNKNOWN a b", "SIZE"]);
        assert!(c.pipelining() && c.chunking() && c.eight_bit_mime());
        assert_eq!(c.params("x-unknown").unwrap(), ["a", "b"]);
        assert_eq!(c.size(), Some(None));
        assert!(!c.starttls());
        assert_eq!(c.domain(), "mx");
    }

    #[test]
    fn auth_old_and_new_style_merge() {
        let c = ehlo(&["mx", "AUTH PLAIN login", "AUTH=LOGIN CRAM-MD5"]);
        assert_eq!(c.auth_mechanisms(), ["PLAIN", "LOGIN", "CRAM-MD5"]);
    }

    #[test]
    fn size_zero_means_no_limit_and_garbage_is_ignored() {
        assert_eq!(ehlo(&["mx", "SIZE 0"]).size(), Some(None));
        assert_eq!(ehlo(&["mx", "SIZE lots"]).size(), Some(None));
        assert_eq!(ehlo(&["mx", "SIZE 52428800"]).size(), Some(Some(52_428_800)));
        assert_eq!(ehlo(&["mx"]).size(), None);
    }
}
