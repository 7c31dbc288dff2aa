//! MIME composition: `Message::builder()` driven by a sequence of fuzz-chosen calls
//! (From/Sender/Reply-To/To/Cc/Bcc as `(name, address)` or parsed text, subject, custom
//! headers, text and HTML bodies, inline images, attachments, Message-ID, In-Reply-To,
//! References, date, attachment policy, explicit envelope). Invariants:
//!
//! - never a panic; `build` gives a message or a typed error, never `Malformed` (the final
//!   wire check firing means the builder let through something it should have encoded or
//!   refused) and never an error whose text holds a CR or LF;
//! - a setter's error is never lost: if a mailbox argument was invalid, `build` fails;
//! - the bytes: CRLF line endings only, no NUL, no line over 998 octets, 8-bit only when an
//!   address or identifier is non-ASCII, `needs_8bitmime` exactly when 8-bit;
//! - the header block: every line a `name:` field start or a continuation that is not only
//!   whitespace (some parsers take a blank-looking line as the end of the header), and the
//!   field names exactly the expected multiset: the builder's fields for what was set, one
//!   per custom header, `MIME-Version` and `Content-Type` once, at most one
//!   `Content-Transfer-Encoding`, nothing else; so never a `Bcc` field and never a field
//!   made of caller text;
//! - Subject and custom values come back: unfolded (RFC 5322 section 2.2.3) exactly, or
//!   RFC 2047 encoded and decoded by mail-parser to the same text (whitespace runs
//!   compared collapsed); mail-parser reads the From address and display name back;
//! - the envelope: the explicit one, or Sender/From to exactly To + Cc + Bcc without
//!   duplicates; Bcc recipients are in it; a non-ASCII address makes it need SMTPUTF8;
//! - the attachment policy holds for every inline part and attachment.
//!
//! Input: a sequence of operations (see `check`), each an opcode byte and its arguments;
//! a string argument is a length byte and raw bytes, a repeated piece (to reach long
//! lines cheaply) or a canned value. Bytes past the end read as 0.

use std::time::{Duration, UNIX_EPOCH};

use mail_parser::MessageParser;
use smtpkit::mime::{AttachmentPolicy, Mailbox, MimeError};
use smtpkit::{Envelope, Message};

use super::input::Input;

/// RFC 5322 section 2.1.1: at most 998 octets per line, without the CRLF.
const MAX_LINE: usize = 998;
/// Upper bound on one string argument, to keep executions fast.
const MAX_ARG: usize = 4096;
/// Upper bound on operations per input.
const MAX_OPS: usize = 48;

/// Values the fuzzer can pick by index: valid addresses (so that messages build), the
/// awkward ones, and text that looks like syntax.
const CANNED: [&str; 32] = [
    "a@x.example",
    "b@y.example",
    "Zo\u{eb}@\u{fc}.example",
    "\"q d\"@[192.0.2.1]",
    "Bob <bob@example.com>",
    "\"Doe, Jane\" <jane@example.com>",
    "Z\u{f6}e Example",
    "=?utf-8?q?Bcc=3A_x?=",
    "Bcc: leak@evil.example",
    "x\r\nBcc: leak@evil.example",
    "a\u{0}b",
    "\u{85}\u{2028}\u{feff}",
    "text/plain",
    "image/png",
    "application/octet-stream",
    "text/html",
    "message/rfc822",
    "image/*",
    "*/*",
    "X-Campaign",
    "List-Unsubscribe",
    "<https://example.com/u?id=1>",
    "logo",
    "<parent@example.com>",
    "r\u{e9}sum\u{e9}.txt",
    "\u{1f600}",
    "        ",
    "a\tb",
    "\"\\\"(),:;<>@[]",
    "example.com",
    "line one\nline two\r\n.\r\n\rthree",
    "<p>hi <img src=\"cid:logo\"></p>",
];

/// Argument decoding on top of the shared reader.
impl Input<'_> {
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// `0x00..=0x7f`: that many raw bytes; `0x80..=0xbf`: `n & 0x3f` raw bytes, repeated
    /// `4 * r + 2` times for the next byte `r`; `0xc0..`: a canned value.
    fn bytes(&mut self) -> Vec<u8> {
        let head = self.byte();
        match head {
            0x00..=0x7f => self.take(usize::from(head)).to_vec(),
            0x80..=0xbf => {
                let piece = self.take(usize::from(head & 0x3f)).to_vec();
                let times = usize::from(self.byte()) * 4 + 2;
                let mut out = piece.repeat(times);
                out.truncate(MAX_ARG);
                out
            }
            _ => CANNED[usize::from(head - 0xc0) % CANNED.len()].as_bytes().to_vec(),
        }
    }

    /// A string argument; invalid UTF-8 becomes U+FFFD.
    fn text(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// What the calls asked for, to predict the output.
#[derive(Default)]
struct Model {
    /// A mailbox argument the check itself could not convert: `build` must fail.
    bad_mailbox: bool,
    from: Option<Mailbox>,
    sender: Option<Mailbox>,
    reply_to: Vec<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    subject: Option<String>,
    headers: Vec<(String, String)>,
    ids: Vec<String>,
    in_reply_to: bool,
    references: bool,
    message_id_domain: Option<String>,
    html: bool,
    /// Inline images and attachments: content type and size.
    parts: Vec<(String, usize)>,
    inline: usize,
    max_attachment: Option<u64>,
    max_total: Option<u64>,
    allow: Vec<String>,
    deny: Vec<String>,
    envelope: Option<Envelope>,
}

impl Model {
    /// Converts a mailbox as the builder does; remembers a failure.
    fn mailbox(&mut self, m: Result<Mailbox, MimeError>) -> Option<Mailbox> {
        self.bad_mailbox |= m.is_err();
        m.ok()
    }
}

/// Reads a mailbox argument: `(name, address)` or text to parse, chosen by `form`.
fn mailbox_arg(input: &mut Input<'_>, form: bool) -> (String, Option<String>) {
    if form { (input.text(), None) } else { (input.text(), Some(input.text())) }
}

fn to_mailbox(text: &str, address: Option<&str>) -> Result<Mailbox, MimeError> {
    match address {
        None => Mailbox::try_from(text),
        Some(address) => Mailbox::try_from((text, address)),
    }
}

/// The policy's documented matching: `type/subtype`, `type/*` or `*/*`, case-insensitive,
/// against the type without its parameters.
fn pattern_matches(pattern: &str, content_type: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim_matches(' ');
    let content_type = essence.to_ascii_lowercase();
    pattern == "*/*"
        || pattern == content_type
        || pattern
            .strip_suffix("/*")
            .is_some_and(|ty| content_type.split_once('/').is_some_and(|(t, _)| t == ty))
}

/// One field of the header block: its name and its body unfolded (the CRLFs before
/// continuation lines removed).
struct Field {
    name: String,
    value: String,
}

/// Splits the header block into fields, asserting every line is a field start
/// (`1*ftext ":"`) or a continuation with something besides whitespace.
fn header_fields(head: &[u8]) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            assert!(!line.trim_matches([' ', '\t']).is_empty(), "whitespace-only header line in {text:?}");
            let field =
                fields.last_mut().unwrap_or_else(|| panic!("header starts with a continuation: {text:?}"));
            field.value.push_str(line);
        } else {
            let (name, value) =
                line.split_once(':').unwrap_or_else(|| panic!("header line without a colon: {line:?}"));
            assert!(
                !name.is_empty() && name.bytes().all(|b| matches!(b, 33..=57 | 59..=126)),
                "bad field name {name:?}"
            );
            fields.push(Field { name: name.to_owned(), value: value.to_owned() });
        }
    }
    fields
}

/// Runs of spaces and tabs as one space, and none at either end.
fn collapse(s: &str) -> String {
    s.split([' ', '\t']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The unfolded field body is `value` after the one space mail-builder writes after the
/// colon, or it is RFC 2047 encoded text that decodes to `value`.
fn assert_value_round_trips(field: &Field, value: &str) {
    let raw = field.value.strip_prefix(' ').unwrap_or(&field.value);
    if raw == value {
        return;
    }
    // Decoded as a Subject: mail-parser 0.11 keeps unknown headers raw.
    let as_subject = format!("Subject:{}\r\n\r\n", field.value);
    let decoded = MessageParser::default()
        .parse_headers(as_subject.as_bytes())
        .and_then(|h| h.subject().map(str::to_owned))
        .unwrap_or_default();
    assert_eq!(collapse(&decoded), collapse(value), "{} written as {:?}", field.name, field.value);
    assert!(raw.contains("=?"), "{}: neither the value nor encoded: {raw:?}", field.name);
}

fn check_error(model: &Model, e: &MimeError) {
    assert!(!matches!(e, MimeError::Malformed { .. }), "the builder produced a malformed message: {e}");
    assert!(!matches!(e, MimeError::File { .. }), "no file was attached: {e}");
    let shown = e.to_string();
    assert!(!shown.contains(['\r', '\n']), "line break in error text {shown:?}");
    if let MimeError::ContentTypeRefused { .. } = e {
        assert!(!model.allow.is_empty() || !model.deny.is_empty(), "no type rule, yet {e}");
    }
}

fn check_message(model: &Model, msg: &Message) {
    assert!(!model.bad_mailbox, "a mailbox argument was invalid, yet the message built");
    let from = model.from.as_ref().expect("a message built without From");
    let bytes = msg.as_bytes();

    // Wire: CRLF only, no NUL, lines within 998 octets.
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => panic!("NUL at {i}"),
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => {
                assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF at {i}");
                assert!(
                    i - 1 - line_start <= MAX_LINE,
                    "line of {} octets at {line_start}",
                    i - 1 - line_start
                );
                line_start = i + 1;
            }
            _ => {}
        }
    }
    assert!(bytes.len() - line_start <= MAX_LINE, "last line of {} octets", bytes.len() - line_start);
    assert_eq!(msg.needs_8bitmime(), !bytes.is_ascii());
    // Bodies, names, subjects, filenames and values are encoded: only addresses and
    // identifiers are written as UTF-8.
    let visible = [Some(from), model.sender.as_ref()].into_iter().flatten().chain(&model.reply_to);
    let utf8_address = visible.chain(&model.to).chain(&model.cc).any(|m| !m.address().as_str().is_ascii());
    let utf8_id = model.ids.iter().chain(&model.message_id_domain).any(|s| !s.is_ascii());
    assert!(bytes.is_ascii() || utf8_address || utf8_id, "8-bit octet from a field that is encoded");
    if utf8_address {
        assert!(msg.needs_smtputf8());
    }

    // The header block and its field names.
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("no empty line after the header");
    let fields = header_fields(&bytes[..head_end]);
    let mut expected: Vec<String> = vec!["from".into(), "date".into(), "message-id".into()];
    let flags = [
        ("sender", model.sender.is_some()),
        ("reply-to", !model.reply_to.is_empty()),
        ("to", !model.to.is_empty()),
        ("cc", !model.cc.is_empty()),
        ("subject", model.subject.is_some()),
        ("in-reply-to", model.in_reply_to),
        ("references", model.references),
    ];
    expected.extend(flags.iter().filter(|f| f.1).map(|f| f.0.to_owned()));
    expected.extend(model.headers.iter().map(|(name, _)| name.to_ascii_lowercase()));
    expected.extend(["mime-version".to_owned(), "content-type".to_owned()]);
    let mut found: Vec<String> = fields.iter().map(|f| f.name.to_ascii_lowercase()).collect();
    if let Some(i) = found.iter().position(|n| n == "content-transfer-encoding") {
        found.remove(i);
    }
    expected.sort();
    found.sort();
    assert_eq!(found, expected, "header fields of {:?}", String::from_utf8_lossy(&bytes[..head_end]));

    let field = |name: &str| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name));
    if let Some(subject) = &model.subject {
        assert_value_round_trips(field("Subject").expect("Subject"), subject);
    }
    for (name, value) in &model.headers {
        if model.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count() == 1 {
            assert_value_round_trips(field(name).expect("custom header"), value);
        }
    }

    // An independent parser reads the message and its From back.
    let parsed = MessageParser::default().parse(bytes).expect("mail-parser reads the message");
    assert!(parsed.bcc().is_none());
    let parsed_from = parsed.from().and_then(|a| a.first()).expect("From");
    if !from.address().local_part().starts_with('"') {
        assert_eq!(parsed_from.address(), Some(from.address().as_str()), "From address");
    }
    // mail-parser decodes `=?...?=` even inside a quoted string, where RFC 2047 section 5
    // says it is not an encoded-word; such names are written quoted and not compared.
    let name = from.name().unwrap_or_default();
    if !name.contains("=?") {
        let trim = |s: &str| s.trim_matches([' ', '\t']).to_owned();
        assert_eq!(trim(parsed_from.name().unwrap_or_default()), trim(name), "From display name");
    }

    // Envelope.
    let envelope = msg.envelope();
    if let Some(explicit) = &model.envelope {
        assert_eq!(envelope, explicit);
    } else {
        let reverse = model.sender.as_ref().unwrap_or(from).address();
        assert_eq!(envelope.from(), Some(reverse));
        let given: Vec<_> =
            model.to.iter().chain(&model.cc).chain(&model.bcc).map(Mailbox::address).collect();
        let same = |a: &smtpkit::Address, b: &smtpkit::Address| {
            a.local_part() == b.local_part() && a.domain().eq_ignore_ascii_case(b.domain())
        };
        for (i, rcpt) in envelope.to().iter().enumerate() {
            assert!(given.contains(&rcpt), "{rcpt} was not given");
            assert!(!envelope.to()[..i].iter().any(|other| same(other, rcpt)), "{rcpt} twice");
        }
        for address in given {
            assert!(envelope.to().iter().any(|r| same(r, address)), "{address} missing from the envelope");
        }
        if envelope.to().iter().any(|a| !a.as_str().is_ascii()) {
            assert!(msg.needs_smtputf8());
        }
    }

    // Attachment policy.
    let mut total = 0u64;
    for (content_type, size) in &model.parts {
        let size = *size as u64;
        total += size;
        assert!(model.max_attachment.is_none_or(|max| size <= max), "{size} octets allowed");
        assert!(model.deny.iter().all(|p| !pattern_matches(p, content_type)), "{content_type} denied");
        assert!(
            model.allow.is_empty() || model.allow.iter().any(|p| pattern_matches(p, content_type)),
            "{content_type} not allowed"
        );
    }
    assert!(model.max_total.is_none_or(|max| total <= max), "{total} octets in all allowed");
    assert!(model.inline == 0 || model.html, "inline parts without HTML");
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let mut model = Model::default();
    let mut b = Message::builder();
    for _ in 0..MAX_OPS {
        if input.0.is_empty() {
            break;
        }
        let op = input.byte();
        let form = op & 0x80 != 0;
        match op & 0x7f {
            // Mailboxes, as `(name, address)` or as text to parse.
            0..=5 => {
                let (text, address) = mailbox_arg(&mut input, form);
                let m = model.mailbox(to_mailbox(&text, address.as_deref()));
                b = match (op & 0x7f, address) {
                    (0, None) => b.from(text.as_str()),
                    (0, Some(a)) => b.from((text.as_str(), a.as_str())),
                    (1, None) => b.sender(text.as_str()),
                    (1, Some(a)) => b.sender((text.as_str(), a.as_str())),
                    (2, None) => b.reply_to(text.as_str()),
                    (2, Some(a)) => b.reply_to((text.as_str(), a.as_str())),
                    (3, None) => b.to(text.as_str()),
                    (3, Some(a)) => b.to((text.as_str(), a.as_str())),
                    (4, None) => b.cc(text.as_str()),
                    (4, Some(a)) => b.cc((text.as_str(), a.as_str())),
                    (_, None) => b.bcc(text.as_str()),
                    (_, Some(a)) => b.bcc((text.as_str(), a.as_str())),
                };
                if let Some(m) = m {
                    match op & 0x7f {
                        0 => model.from = Some(m),
                        1 => model.sender = Some(m),
                        2 => model.reply_to.push(m),
                        3 => model.to.push(m),
                        4 => model.cc.push(m),
                        _ => model.bcc.push(m),
                    }
                }
            }
            6 => {
                let subject = input.text();
                b = b.subject(subject.as_str());
                model.subject = Some(subject);
            }
            7 => {
                let (name, value) = (input.text(), input.text());
                b = b.header(name.as_str(), value.as_str());
                model.headers.push((name, value));
            }
            8 => b = b.text_body(input.text()),
            9 => {
                b = b.html_body(input.text());
                model.html = true;
            }
            10 => {
                let (cid, content_type, data) = (input.text(), input.text(), input.bytes());
                model.ids.push(cid.clone());
                model.parts.push((content_type.clone(), data.len()));
                model.inline += 1;
                b = b.inline_image(cid, content_type, data);
            }
            11 => {
                let (name, content_type, data) = (input.text(), input.text(), input.bytes());
                model.parts.push((content_type.clone(), data.len()));
                b = b.attachment(name, content_type, data);
            }
            12 => {
                let id = input.text();
                model.ids.push(id.clone());
                model.in_reply_to = true;
                b = b.in_reply_to(id);
            }
            13 => {
                let id = input.text();
                model.ids.push(id.clone());
                model.references = true;
                b = b.references(id);
            }
            14 => {
                let id = input.text();
                model.ids.push(id.clone());
                b = b.message_id(id);
            }
            15 => {
                let domain = input.text();
                model.message_id_domain = Some(domain.clone());
                b = b.message_id_domain(domain);
            }
            16 => {
                // Seconds from a signed offset: dates before 1970 and far in the future.
                let secs = i64::from(input.u32() as i32) * i64::from(input.byte().max(1));
                let date = match u64::try_from(secs) {
                    Ok(s) => UNIX_EPOCH.checked_add(Duration::from_secs(s)),
                    Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
                };
                if let Some(date) = date {
                    b = b.date(date);
                }
            }
            17 => {
                // Policy: two size bytes (0: no limit), then up to three allow or deny patterns.
                // A new policy replaces the previous one entirely.
                let mut policy = AttachmentPolicy::default();
                let (max_attachment, max_total) = (input.byte(), input.byte());
                model.max_attachment = (max_attachment != 0).then(|| u64::from(max_attachment) * 16);
                model.max_total = (max_total != 0).then(|| u64::from(max_total) * 32);
                if let Some(max) = model.max_attachment {
                    policy = policy.max_attachment_size(max);
                }
                if let Some(max) = model.max_total {
                    policy = policy.max_total_size(max);
                }
                model.allow.clear();
                model.deny.clear();
                for _ in 0..input.byte() % 4 {
                    let deny = input.byte() & 1 == 1;
                    let pattern = input.text();
                    if deny {
                        policy = policy.deny(pattern.as_str());
                        model.deny.push(pattern);
                    } else {
                        policy = policy.allow(pattern.as_str());
                        model.allow.push(pattern);
                    }
                }
                b = b.policy(policy);
            }
            18 => {
                let (from, to) = (input.text(), input.text());
                if let Ok(env) = Envelope::parse(&from, &[to.as_str()]) {
                    model.envelope = Some(env.clone());
                    b = b.envelope(env);
                }
            }
            _ => {}
        }
    }
    // Debug never panics, whatever was given.
    let _ = format!("{b:?}");
    match b.build() {
        Ok(msg) => {
            let _ = format!("{msg:?}");
            check_message(&model, &msg);
        }
        Err(e) => check_error(&model, &e),
    }
}
