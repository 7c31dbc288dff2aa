//! ESMTP parameters of `MAIL FROM` and `RCPT TO`: SIZE (RFC 1870), BODY (RFC 6152),
//! SMTPUTF8 (RFC 6531), DSN's RET, ENVID, NOTIFY and ORCPT (RFC 3461), REQUIRETLS (RFC 8689).
//!
//! Every value is typed or validated, so nothing here can put a control byte on the wire.

use super::address::Address;

/// `RET=`: how much of the message a DSN returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Hdrs,
}

/// `NOTIFY=` for one recipient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Report successful delivery.
    pub success: bool,
    /// Report failure.
    pub failure: bool,
    /// Report delay.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Self = Self { success: false, failure: false, delay: false };

    /// Parses a comma-separated list such as `SUCCESS,FAILURE` or `NEVER` (any case).
    pub fn parse(text: &str) -> Result<Self, ParamError> {
        let mut n = Self::default();
        let mut never = false;
        for word in text.split(',').map(str::trim) {
            match word.to_ascii_uppercase().as_str() {
                "SUCCESS" => n.success = true,
                "FAILURE" => n.failure = true,
                "DELAY" => n.delay = true,
                "NEVER" => never = true,
                _ => return Err(ParamError::Invalid { param: "NOTIFY", reason: "unknown keyword" }),
            }
        }
        // RFC 3461 section 4.1: NEVER "MUST NOT" be combined with the others.
        if never && n != Self::NEVER {
            return Err(ParamError::Invalid { param: "NOTIFY", reason: "NEVER combined with other values" });
        }
        Ok(n)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        if *self == Self::NEVER {
            out.extend_from_slice(b"NEVER");
            return;
        }
        let words = [(self.success, "SUCCESS"), (self.failure, "FAILURE"), (self.delay, "DELAY")];
        let mut first = true;
        for (on, word) in words {
            if on {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(word.as_bytes());
                first = false;
            }
        }
    }
}

/// A validated DSN envelope identifier (`ENVID=`): printable US-ASCII, at most 100 octets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvId(String);

impl EnvId {
    /// RFC 3461 section 4.4: "ENVID ... MUST consist of printable (graphic and white space)
    /// characters from the US-ASCII repertoire"; its length is limited to 100 characters.
    pub fn new(id: &str) -> Result<Self, ParamError> {
        if id.is_empty() || id.len() > 100 {
            return Err(ParamError::Invalid { param: "ENVID", reason: "must be 1 to 100 characters" });
        }
        if !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(ParamError::Invalid { param: "ENVID", reason: "only printable US-ASCII" });
        }
        Ok(Self(id.to_string()))
    }

    /// The identifier as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a parameter was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The value is not valid for the parameter.
    #[error("invalid {param} parameter: {reason}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// DSN and REQUIRETLS options for one message; the session adds SIZE, BODY and SMTPUTF8
/// itself from the message and the server's capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// `RET=` (needs DSN).
    pub ret: Option<Ret>,
    /// `ENVID=` (needs DSN).
    pub envid: Option<EnvId>,
    /// `NOTIFY=` for every recipient (needs DSN).
    pub notify: Option<Notify>,
    /// Send `ORCPT=rfc822;<address>` for every recipient (needs DSN).
    pub orcpt: bool,
    /// RFC 8689 `REQUIRETLS` (needs REQUIRETLS and TLS).
    pub requiretls: bool,
    /// Declare `SMTPUTF8` even with ASCII addresses: the message itself has UTF-8 headers
    /// (RFC 6532). Set automatically for non-ASCII addresses.
    pub smtputf8: bool,
    /// Send to the accepted recipients only when every recipient was accepted; otherwise
    /// reset the transaction (`RSET`) and send nothing.
    pub all_or_nothing: bool,
}

impl MessageOptions {
    /// True when any DSN parameter is set.
    pub fn wants_dsn(&self) -> bool {
        self.ret.is_some() || self.envid.is_some() || self.notify.is_some() || self.orcpt
    }
}

/// `BODY=` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The parameters on one `MAIL FROM`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` in octets.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`.
    pub envid: Option<EnvId>,
    /// `REQUIRETLS`.
    pub requiretls: bool,
}

impl MailParams {
    /// Appends ` KEY=VALUE` pairs.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(size) = self.size {
            out.extend_from_slice(b" SIZE=");
            out.extend_from_slice(size.to_string().as_bytes());
        }
        match self.body {
            Some(Body::SevenBit) => out.extend_from_slice(b" BODY=7BIT"),
            Some(Body::EightBitMime) => out.extend_from_slice(b" BODY=8BITMIME"),
            None => {}
        }
        if self.smtputf8 {
            out.extend_from_slice(b" SMTPUTF8");
        }
        match self.ret {
            Some(Ret::Full) => out.extend_from_slice(b" RET=FULL"),
            Some(Ret::Hdrs) => out.extend_from_slice(b" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &self.envid {
            out.extend_from_slice(b" ENVID=");
            xtext(envid.as_str().as_bytes(), out);
        }
        if self.requiretls {
            out.extend_from_slice(b" REQUIRETLS");
        }
    }
}

/// The parameters on one `RCPT TO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=rfc822;...` (or `utf-8;...` for a UTF-8 address, RFC 6533).
    pub orcpt: Option<Address>,
}

impl RcptParams {
    /// Appends ` KEY=VALUE` pairs.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(notify) = &self.notify {
            out.extend_from_slice(b" NOTIFY=");
            notify.encode(out);
        }
        if let Some(addr) = &self.orcpt {
            if addr.needs_smtputf8() {
                out.extend_from_slice(b" ORCPT=utf-8;");
                utf8_addr_unitext(addr.as_str(), out);
            } else {
                out.extend_from_slice(b" ORCPT=rfc822;");
                xtext(addr.as_str().as_bytes(), out);
            }
        }
    }
}

/// RFC 6533 section 3, `utf-8-addr-unitext = 1*(QUCHAR / EmbeddedUnicodeChar)` with
/// `QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e ; ASCII printable characters except
/// CTLs, SP, '\', '+', '='` and `QUCHAR = QCHAR / UTF8-2 / UTF8-3 / UTF8-4`: the form that
/// "MUST be used when the address is passed in an ORCPT parameter and the SMTPUTF8
/// extension is supported". Every other character goes as `EmbeddedUnicodeChar`,
/// `\x{HEXPOINT}` (upper-case hex, no leading zeros), so no SP or control byte can end the
/// parameter and smuggle another keyword onto the line.
fn utf8_addr_unitext(addr: &str, out: &mut Vec<u8>) {
    for c in addr.chars() {
        let qchar = matches!(c, '\x21'..='\x7e') && !matches!(c, '\\' | '+' | '=');
        if qchar || !c.is_ascii() {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            out.extend_from_slice(format!("\\x{{{:X}}}", u32::from(c)).as_bytes());
        }
    }
}

/// RFC 3461 section 4: "xtext = *( xchar / hexchar ); xchar = any ASCII CHAR between "!"
/// (33) and "~" (126) inclusive, except for "+" and "="; hexchar = "+" followed by two
/// upper case hexadecimal digits".
pub fn xtext(input: &[u8], out: &mut Vec<u8>) {
    for &b in input {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("+{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_specials() {
        let mut out = Vec::new();
        xtext(b"a+b=c d", &mut out);
        assert_eq!(out, b"a+2Bb+3Dc+20d");
    }

    #[test]
    fn mail_params_order_and_values() {
        let p = MailParams {
            size: Some(10),
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Hdrs),
            envid: Some(EnvId::new("id 1").unwrap()),
            requiretls: true,
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out, b" SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+201 REQUIRETLS");
    }

    #[test]
    fn notify_parsing() {
        assert_eq!(
            Notify::parse("success,FAILURE").unwrap(),
            Notify { success: true, failure: true, delay: false }
        );
        assert_eq!(Notify::parse("NEVER").unwrap(), Notify::NEVER);
        assert!(Notify::parse("NEVER,SUCCESS").is_err());
        assert!(Notify::parse("SOMETIMES").is_err());
        let mut out = Vec::new();
        RcptParams {
            notify: Some(Notify::parse("delay,success").unwrap()),
            orcpt: Some("a+b@x.y".parse().unwrap()),
        }
        .encode(&mut out);
        assert_eq!(out, b" NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@x.y");
    }

    fn unitext(addr: &str) -> String {
        let mut out = Vec::new();
        utf8_addr_unitext(addr, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn utf8_orcpt_escapes_everything_outside_qchar() {
        assert_eq!(unitext("用户@例え.jp"), "用户@例え.jp");
        assert_eq!(unitext("a+b=c\\d@x"), r"a\x{2B}b\x{3D}c\x{5C}d@x");
        assert_eq!(unitext("\"a b\"@例"), r#""a\x{20}b"@例"#);
        assert_eq!(unitext("\t\x7f\x01"), r"\x{9}\x{7F}\x{1}");
        // Every ASCII character that is not QCHAR is escaped; every QCHAR is not.
        for b in 0u8..0x80 {
            let c = char::from(b);
            let qchar = (0x21..=0x2a).contains(&b)
                || (0x2c..=0x3c).contains(&b)
                || (0x3e..=0x5b).contains(&b)
                || (0x5d..=0x7e).contains(&b);
            let encoded = unitext(&c.to_string());
            assert_eq!(encoded == c.to_string(), qchar, "{b:#x} -> {encoded}");
            assert!(!encoded.bytes().any(|b| b == b' ' || b.is_ascii_control()), "{b:#x}");
        }
    }

    /// RFC 6533 3: `EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}"`; everything else is
    /// itself.
    fn unitext_decode(s: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find("\\x{") {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 3..];
            let end = tail.find('}')?;
            out.push(char::from_u32(u32::from_str_radix(&tail[..end], 16).ok()?)?);
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    proptest::proptest! {
        #[test]
        fn utf8_orcpt_is_one_token_that_decodes_back(addr in "(?s).{0,40}") {
            let encoded = unitext(&addr);
            proptest::prop_assert!(!encoded.chars().any(|c| c == ' ' || c.is_ascii_control()), "{encoded}");
            proptest::prop_assert!(!encoded.contains(['+', '=']), "{encoded}");
            proptest::prop_assert_eq!(unitext_decode(&encoded), Some(addr));
        }
    }

    #[test]
    fn utf8_orcpt_is_one_parameter() {
        let addr: Address = "\"x REQUIRETLS y\"@例え.jp".parse().unwrap();
        let mut out = Vec::new();
        RcptParams { notify: None, orcpt: Some(addr) }.encode(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, r#" ORCPT=utf-8;"x\x{20}REQUIRETLS\x{20}y"@例え.jp"#);
        assert_eq!(line.split(' ').count(), 2, "{line}");
    }

    #[test]
    fn envid_rejects_controls() {
        assert!(EnvId::new("a\r\nb").is_err());
        assert!(EnvId::new(&"x".repeat(101)).is_err());
    }
}
