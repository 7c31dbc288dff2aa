//! Argument validators: whatever `Address::new`, `EhloName::new`, `EnvId::new` and
//! `Notify::parse` accept holds no control byte and no space outside quotes, respects the
//! RFC 5321 lengths, and encodes (through `Command::encode`) to exactly one CRLF-terminated
//! line of a legal length. `xtext` output is always a plain token that decodes back.
//!
//! Input: the string to validate (invalid UTF-8 is replaced). Each validator sees the whole
//! string, and the address validator also sees it with `@fuzz.example` appended and as a
//! quoted local part, so deep syntax is reachable from short inputs.

use smtpkit::proto::address::{Address, EhloName, Envelope, MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH};
use smtpkit::proto::command::__fuzz as command;
use smtpkit::proto::params::{EnvId, MailParams, Notify, RcptParams, Ret, xtext};

/// RFC 5321 section 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
const MAX_COMMAND: usize = 512;
/// RFC 3461 section 4: RET and ENVID add up to 100 octets to MAIL, NOTIFY and ORCPT up to
/// 500 to RCPT.
const MAX_MAIL_DSN: usize = MAX_COMMAND + 100;

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Exactly one line, ending in CRLF, no other CR, LF or control byte; returns its length.
fn one_line(out: Vec<u8>) -> Vec<u8> {
    let body = out
        .strip_suffix(b"\r\n")
        .unwrap_or_else(|| panic!("{:?} not CRLF-terminated", String::from_utf8_lossy(&out)));
    assert!(!body.iter().copied().any(is_control), "control byte in {:?}", String::from_utf8_lossy(&out));
    out
}

fn check_address(text: &str) {
    let Ok(addr) = Address::new(text) else { return };
    assert_eq!(addr.as_str(), text);
    let bytes = text.as_bytes();
    assert!(!bytes.iter().copied().any(is_control), "control byte accepted in {text:?}");
    let local = addr.local_part();
    let domain = addr.domain();
    assert_eq!(format!("{local}@{domain}"), text);
    assert!(!local.is_empty() && local.len() <= MAX_LOCAL_PART, "local part of {}", local.len());
    assert!(!domain.is_empty() && domain.len() <= MAX_DOMAIN, "domain of {}", domain.len());
    assert!(text.len() + 2 <= MAX_PATH, "path of {}", text.len() + 2);
    assert!(!domain.contains(' ') && !domain.contains('@'));
    if let Some(inner) = local.strip_prefix('"') {
        // Quoted: spaces only inside the quotes, and the quotes close at the very end.
        let inner = inner.strip_suffix('"').expect("quoted local part ends with a quote");
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '"', "unescaped quote inside {local:?}");
            escaped = !escaped && c == '\\';
        }
        assert!(!escaped, "dangling backslash in {local:?}");
    } else {
        assert!(!local.contains(' ') && !local.contains('"') && !local.contains('@'), "{local:?}");
        assert!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
    }
    assert_eq!(addr.needs_smtputf8(), !text.is_ascii());

    let mail = one_line(command::mail(Some(&addr), &MailParams::default()));
    assert!(mail.len() <= MAX_COMMAND, "MAIL line of {}", mail.len());
    let rcpt = one_line(command::rcpt(&addr, &RcptParams::default()));
    assert!(rcpt.len() <= MAX_COMMAND, "RCPT line of {}", rcpt.len());
    let dsn = RcptParams { notify: Some(Notify::NEVER), orcpt: Some(addr.clone()) };
    one_line(command::rcpt(&addr, &dsn));
    let env = Envelope::new(Some(addr.clone()), vec![addr.clone()]).expect("one recipient");
    assert_eq!(env.to(), [addr]);
}

fn check_ehlo(text: &str) {
    let Ok(name) = EhloName::new(text) else { return };
    assert_eq!(name.as_str(), text);
    assert!(!text.bytes().any(|b| is_control(b) || b == b' '), "{text:?}");
    assert!(!text.is_empty() && text.len() <= MAX_DOMAIN, "EHLO name of {}", text.len());
    for line in command::hellos(&name) {
        let line = one_line(line);
        assert!(line.len() <= MAX_COMMAND);
        assert_eq!(line.iter().filter(|&&b| b == b' ').count(), 1, "one argument");
    }
}

fn check_envid(text: &str) {
    let Ok(id) = EnvId::new(text) else { return };
    assert_eq!(id.as_str(), text);
    assert!((1..=100).contains(&text.len()));
    assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text:?}");
    let params = MailParams { envid: Some(id), ret: Some(Ret::Hdrs), ..MailParams::default() };
    let from = Address::new("a@fuzz.example").expect("valid");
    let line = one_line(command::mail(Some(&from), &params));
    // The ENVID value is xtext: the line splits into exactly the expected words.
    let words: Vec<&[u8]> = line[..line.len() - 2].split(|&b| b == b' ').collect();
    assert_eq!(words.len(), 4, "{:?}", String::from_utf8_lossy(&line));
    let value = words[3].strip_prefix(b"ENVID=").expect("ENVID word");
    assert_eq!(xtext_decode(value).as_deref(), Some(text.as_bytes()));
    assert!(line.len() <= MAX_MAIL_DSN, "MAIL line of {}", line.len());
}

fn check_notify(text: &str) {
    let Ok(notify) = Notify::parse(text) else { return };
    if notify.success || notify.failure || notify.delay {
        assert_ne!(notify, Notify::NEVER);
    }
    let to = Address::new("b@fuzz.example").expect("valid");
    let params = RcptParams { notify: Some(notify), orcpt: None };
    let line = one_line(command::rcpt(&to, &params));
    let value = line.strip_prefix(b"RCPT TO:<b@fuzz.example> NOTIFY=").expect("NOTIFY word");
    let value = std::str::from_utf8(&value[..value.len() - 2]).expect("ASCII");
    assert!(!value.is_empty() && !value.contains(' '));
    assert_eq!(Notify::parse(value), Ok(notify), "round trip of {value:?}");
}

/// RFC 3461 section 4: `xtext = *( xchar / hexchar )`, `hexchar = "+" 2HEXCHAR`.
fn xtext_decode(mut s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((&b, rest)) = s.split_first() {
        if b == b'+' {
            let hex = std::str::from_utf8(rest.get(..2)?).ok()?;
            if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            s = &rest[2..];
        } else {
            if !(33..=126).contains(&b) || b == b'=' {
                return None;
            }
            out.push(b);
            s = rest;
        }
    }
    Some(out)
}

fn check_xtext(raw: &[u8]) {
    let mut out = Vec::new();
    xtext(raw, &mut out);
    assert!(out.iter().all(|b| (33..=126).contains(b) && *b != b'='));
    assert_eq!(xtext_decode(&out).as_deref(), Some(raw));
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    check_address(text);
    check_address(&format!("{text}@fuzz.example"));
    check_address(&format!("\"{text}\"@fuzz.example"));
    check_address(&format!("x@{text}"));
    check_ehlo(text);
    check_envid(text);
    check_notify(text);
    check_xtext(data);
}
