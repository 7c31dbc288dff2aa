//! `smtpkit::Message`: every composed message is parsed back by an independent parser
//! (mail-parser) and compared with what went in.

use std::time::{Duration, UNIX_EPOCH};

use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};
use proptest::prelude::*;
use smtpkit::{
    Envelope, Message,
    mime::{AttachmentPolicy, Mailbox, MimeError},
};

/// A 1x1 transparent PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01,
    0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn parse(msg: &Message) -> mail_parser::Message<'_> {
    MessageParser::default().parse(msg.as_bytes()).expect("mail-parser accepts the message")
}

/// The MIME tree as `type/subtype[child,child]`.
fn tree(parsed: &mail_parser::Message<'_>, part: &MessagePart<'_>) -> String {
    let ct = part
        .content_type()
        .map_or("text/plain".to_owned(), |ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()));
    match &part.body {
        PartType::Multipart(children) => {
            let children: Vec<_> =
                children.iter().map(|&i| tree(parsed, &parsed.parts[i as usize])).collect();
            format!("{ct}[{}]", children.join(","))
        }
        _ => ct,
    }
}

/// A custom header decoded as unstructured text (RFC 2047 words decoded, unfolded).
/// mail-parser 0.11 keeps unknown headers raw and ignores `default_header_text()` unless
/// a header map is configured, so the raw value is decoded as a Subject.
fn custom_header(parsed: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    let raw = parsed.header_raw(name)?;
    let subject = format!("Subject:{raw}\r\n\r\n");
    let decoded = MessageParser::default().parse_headers(subject.as_bytes())?;
    Some(decoded.subject().unwrap_or_default().to_owned())
}

fn structure(parsed: &mail_parser::Message<'_>) -> String {
    tree(parsed, &parsed.parts[0])
}

/// Invariants of every serialised message: CRLF only, lines within 998 octets, 7-bit
/// unless it carries UTF-8 addresses, no Bcc field.
fn assert_wire_clean(msg: &Message) {
    let bytes = msg.as_bytes();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        assert!(line.len() <= 999, "line {} is {} octets", i + 1, line.len());
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!body.contains(&b'\r'), "bare CR on line {}", i + 1);
        assert!(!body.contains(&0), "NUL on line {}", i + 1);
    }
    for (i, pair) in bytes.windows(2).enumerate() {
        assert!(pair[1] != b'\n' || pair[0] == b'\r', "bare LF at {}", i + 1);
    }
    assert_eq!(msg.needs_8bitmime(), !bytes.is_ascii());
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("header ends");
    let head = &bytes[..head_end + 2];
    assert!(!head.split(|&b| b == b'\n').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case(b"bcc:")));
}

fn demo() -> Message {
    Message::builder()
        .from(("Zoë Example", "zoe@example.com"))
        .to("Bob <bob@example.com>")
        .cc(("Ça Va", "cc@example.org"))
        .bcc(("Secret Auditor", "audit@example.net"))
        .bcc("hidden@example.net")
        .reply_to("replies@example.com")
        .subject("Grüße from smtpkit ✓")
        .text_body("Hello Bob,\nsee the logo.\n")
        .html_body("<p>Hello Bob,</p><p><img src=\"cid:logo\" alt=\"logo\"></p>\n")
        .inline_image("logo", "image/png", PNG)
        .attachment("résumé.txt", "text/plain", "Zoë's résumé\r\n")
        .header("X-Campaign", "spring")
        .in_reply_to("<parent@example.com>")
        .references("root@example.com")
        .references("<parent@example.com>")
        .message_id_domain("mail.example.com")
        .date(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build()
        .expect("demo builds")
}

#[test]
fn demo_message_round_trips() {
    let msg = demo();
    assert_wire_clean(&msg);
    assert!(!msg.needs_8bitmime() && !msg.needs_smtputf8());
    let p = parse(&msg);

    assert_eq!(
        structure(&p),
        "multipart/mixed[multipart/related[multipart/alternative[text/plain,text/html],image/png],text/plain]"
    );
    let related = p.parts.iter().find(|part| part.is_content_type("multipart", "related")).unwrap();
    assert_eq!(related.content_type().unwrap().attribute("type"), Some("multipart/alternative"));

    let from = p.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("Zoë Example"), Some("zoe@example.com")));
    let to = p.to().unwrap().first().unwrap();
    assert_eq!((to.name(), to.address()), (Some("Bob"), Some("bob@example.com")));
    assert_eq!(p.cc().unwrap().first().unwrap().name(), Some("Ça Va"));
    assert_eq!(p.reply_to().unwrap().first().unwrap().address(), Some("replies@example.com"));
    assert!(p.bcc().is_none());
    assert_eq!(p.subject(), Some("Grüße from smtpkit ✓"));
    assert_eq!(p.message_id(), Some(msg.message_id()));
    assert!(msg.message_id().ends_with("@mail.example.com"));
    assert_eq!(p.in_reply_to().as_text(), Some("parent@example.com"));
    assert_eq!(
        p.references().as_text_list().unwrap().iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
        ["root@example.com", "parent@example.com"]
    );
    assert_eq!(p.header_raw("X-Campaign").map(str::trim), Some("spring"));
    assert_eq!(p.date().unwrap().to_timestamp(), 1_700_000_000);
    assert_eq!(p.header_raw("MIME-Version").map(str::trim), Some("1.0"));

    assert_eq!(p.body_text(0).unwrap(), "Hello Bob,\r\nsee the logo.\r\n");
    assert_eq!(p.body_html(0).unwrap(), "<p>Hello Bob,</p><p><img src=\"cid:logo\" alt=\"logo\"></p>\r\n");

    let image = p.parts.iter().find(|part| part.is_content_type("image", "png")).unwrap();
    assert_eq!(image.content_id(), Some("logo"));
    assert_eq!(image.contents(), PNG);
    assert_eq!(image.content_disposition().unwrap().ctype(), "inline");

    assert_eq!(p.attachment_count(), 2, "mail-parser lists the inline image and the file");
    let file = p.attachments().find(|a| a.attachment_name().is_some()).unwrap();
    assert_eq!(file.attachment_name(), Some("résumé.txt"));
    assert_eq!(file.contents(), "Zoë's résumé\r\n".as_bytes());
    assert_eq!(file.content_disposition().unwrap().ctype(), "attachment");

    // The filename travels as an RFC 2231 parameter, never as RFC 2047 words.
    let text = String::from_utf8_lossy(msg.as_bytes());
    assert!(text.contains("filename*=UTF-8''r%C3%A9sum%C3%A9.txt"), "{text}");

    // Envelope: From as sender; To, Cc and both Bcc as recipients.
    let env = msg.envelope();
    assert_eq!(env.from().unwrap().as_str(), "zoe@example.com");
    let rcpts: Vec<_> = env.to().iter().map(|a| a.as_str()).collect();
    assert_eq!(rcpts, ["bob@example.com", "cc@example.org", "audit@example.net", "hidden@example.net"]);
    // Nothing of the Bcc recipients is in the message.
    for needle in ["audit@example.net", "hidden@example.net", "Secret Auditor", "U2VjcmV0"] {
        assert!(!text.contains(needle), "{needle} leaked");
    }
}

#[test]
fn layouts() {
    let base = || Message::builder().from("a@example.com").to("b@example.com");
    let cases: Vec<(Message, &str)> = vec![
        (base().text_body("t").build().unwrap(), "text/plain"),
        (base().html_body("<b>h</b>").build().unwrap(), "text/html"),
        (base().build().unwrap(), "text/plain"),
        (
            base().text_body("t").html_body("h").build().unwrap(),
            "multipart/alternative[text/plain,text/html]",
        ),
        (
            base().html_body("<img src=cid:a>").inline_image("a", "image/png", PNG).build().unwrap(),
            "multipart/related[text/html,image/png]",
        ),
        (
            base()
                .text_body("t")
                .attachment("a.bin", "application/octet-stream", vec![0u8, 255])
                .build()
                .unwrap(),
            "multipart/mixed[text/plain,application/octet-stream]",
        ),
        (
            base().attachment("a.pdf", "application/pdf", &b"%PDF"[..]).build().unwrap(),
            "multipart/mixed[application/pdf]",
        ),
        (
            base()
                .text_body("t")
                .html_body("<img src=cid:a><img src=cid:b>")
                .inline_image("a", "image/png", PNG)
                .inline_image("b@x", "image/gif", &b"GIF89a"[..])
                .build()
                .unwrap(),
            "multipart/related[multipart/alternative[text/plain,text/html],image/png,image/gif]",
        ),
    ];
    for (msg, want) in cases {
        assert_wire_clean(&msg);
        assert_eq!(structure(&parse(&msg)), want);
    }
    let related = base().html_body("x").inline_image("a", "image/png", PNG).build().unwrap();
    let p = parse(&related);
    assert_eq!(p.parts[0].content_type().unwrap().attribute("type"), Some("text/html"));

    let err = base().text_body("t").inline_image("a", "image/png", PNG).build().unwrap_err();
    assert!(matches!(err, MimeError::InlineWithoutHtml), "{err:?}");
    let err = base()
        .html_body("h")
        .inline_image("a", "image/png", PNG)
        .inline_image("<a>", "image/png", PNG)
        .build()
        .unwrap_err();
    assert!(matches!(err, MimeError::DuplicateContentId(ref c) if c == "a"), "{err:?}");
}

#[test]
fn required_fields() {
    assert!(matches!(Message::builder().to("b@example.com").build(), Err(MimeError::NoFrom)));
    assert!(matches!(Message::builder().from("a@example.com").build(), Err(MimeError::NoRecipients)));
    let err = Message::builder().from("a@example.com").to("not an address").build().unwrap_err();
    assert!(matches!(err, MimeError::Address { field: "To", .. }), "{err:?}");
}

/// Every C0 control byte and DEL, in every caller-supplied header position, is a typed
/// error naming the field and the byte; nothing is serialised.
#[test]
fn injection_with_every_control_byte_is_refused() {
    let ok = || Message::builder().from("a@example.com").to("b@example.com");
    for b in (0u8..0x20).chain([0x7f]) {
        let c = b as char;
        let evil = format!("x{c}Bcc: victim@example.org");
        let check = |what: &str, result: Result<Message, MimeError>, field: &str| match result {
            Err(MimeError::ControlByte { field: f, byte, offset }) => {
                assert_eq!((f.as_str(), byte), (field, b), "{what} {b:#x}");
                assert!(offset <= 1, "{what} {b:#x}: offset {offset}");
            }
            other => panic!("{what} with {b:#x}: {other:?}"),
        };
        check("subject", ok().subject(evil.as_str()).build(), "Subject");
        check("header value", ok().header("X-Campaign", evil.as_str()).build(), "X-Campaign");
        check("header name", ok().header(format!("X{c}Y"), "v").build(), "header name");
        check(
            "From name",
            Message::builder().from((evil.as_str(), "a@x.com")).to("b@x.com").build(),
            "From display name",
        );
        check("To name", ok().to((evil.as_str(), "c@x.com")).build(), "To display name");
        check("Cc name", ok().cc((evil.as_str(), "c@x.com")).build(), "Cc display name");
        check("Bcc name", ok().bcc((evil.as_str(), "c@x.com")).build(), "Bcc display name");
        check("Reply-To name", ok().reply_to((evil.as_str(), "c@x.com")).build(), "Reply-To display name");
        check("Sender name", ok().sender((evil.as_str(), "c@x.com")).build(), "Sender display name");
        check("parsed name", ok().to(format!("x{c}y <c@x.com>")).build(), "To display name");
        check("filename", ok().attachment(evil.as_str(), "text/plain", "x").build(), "attachment filename");
        check("in-reply-to", ok().in_reply_to(format!("x{c}@y")).build(), "In-Reply-To");
        check("references", ok().references(format!("x{c}@y")).build(), "References");
        check("message-id", ok().message_id(format!("x{c}@y")).build(), "Message-ID");
        check(
            "content-id",
            ok().html_body("h").inline_image(format!("x{c}"), "image/png", PNG).build(),
            "Content-ID",
        );
        check("content type", ok().attachment("a", format!("t{c}/x"), "x").build(), "content type");
        // Addresses are refused by the Address validator.
        let err = ok().cc(format!("c{c}@x.com")).build().unwrap_err();
        assert!(matches!(err, MimeError::Address { field: "Cc", .. }), "{b:#x}: {err:?}");
    }
}

#[test]
fn reserved_and_invalid_headers() {
    let ok = || Message::builder().from("a@example.com").to("b@example.com");
    for name in ["Bcc", "bcc", "From", "content-type", "Message-Id", "Date", "MIME-Version"] {
        let err = ok().header(name, "x").build().unwrap_err();
        assert!(matches!(err, MimeError::ReservedHeader(_)), "{name}: {err:?}");
    }
    assert!(matches!(ok().header("X:Y", "v").build(), Err(MimeError::HeaderName { .. })));
    assert!(matches!(ok().header("X-Long", "a".repeat(1200)).build(), Err(MimeError::HeaderTooLong { .. })));
    assert!(matches!(ok().message_id_domain("bad domain").build(), Err(MimeError::Domain(_))));
    assert!(matches!(ok().in_reply_to("no-at-sign").build(), Err(MimeError::InvalidId { .. })));
    assert!(matches!(ok().attachment("", "text/plain", "x").build(), Err(MimeError::EmptyFilename)));
    assert!(matches!(
        ok().attachment("a", "multipart/mixed", "x").build(),
        Err(MimeError::ContentType { .. })
    ));
}

#[test]
fn long_lines_are_folded_or_encoded() {
    let long_word = "x".repeat(5000);
    let long_name = "Zoë ".repeat(300);
    let msg = Message::builder()
        .from((long_name.as_str(), "zoe@example.com"))
        .to("b@example.com")
        .subject("ü".repeat(1500) + &"word ".repeat(400))
        .header("X-Long", "word ".repeat(500).trim_end())
        .header("X-Unicode", "ñ".repeat(2000))
        .text_body(format!("{long_word}\n{}", "short line\n".repeat(3)))
        .html_body(format!("<p>{}</p>", "é".repeat(3000)))
        .attachment("long.txt", "text/plain", long_word.clone())
        .attachment(format!("{}.txt", "é".repeat(200)), "text/plain", "x")
        .build()
        .unwrap();
    assert_wire_clean(&msg);
    let p = parse(&msg);
    assert_eq!(p.from().unwrap().first().unwrap().name(), Some(long_name.as_str()));

    // A long thread: 200 References, folded between identifiers.
    let ids: Vec<String> =
        (0..200).map(|i| format!("message-{i}.{}@lists.example.org", "x".repeat(i % 50))).collect();
    let thread = ids.iter().fold(Message::builder().from("a@example.com").to("b@example.com"), |b, id| {
        b.references(id.as_str())
    });
    let thread = thread.in_reply_to(ids[199].as_str()).build().unwrap();
    assert_wire_clean(&thread);
    let p = parse(&thread);
    let refs: Vec<&str> = p.references().as_text_list().unwrap().iter().map(|s| s.as_ref()).collect();
    assert_eq!(refs, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let head = String::from_utf8_lossy(thread.as_bytes());
    let head = head.split("\r\n\r\n").next().unwrap();
    // RFC 5322 section 2.1.1's 78 octets, except where one identifier alone is longer.
    assert!(head.lines().all(|l| l.len() <= 78 || l.matches('<').count() == 1), "{head}");
    let p = parse(&msg);
    assert_eq!(p.subject().unwrap(), "ü".repeat(1500) + &"word ".repeat(400));
    assert_eq!(custom_header(&p, "X-Long"), Some("word ".repeat(500).trim_end().to_owned()));
    assert_eq!(custom_header(&p, "X-Unicode"), Some("ñ".repeat(2000)));
    assert_eq!(p.body_text(0).unwrap(), format!("{long_word}\r\n{}", "short line\r\n".repeat(3)));
    assert_eq!(p.body_html(0).unwrap(), format!("<p>{}</p>", "é".repeat(3000)));
    assert_eq!(p.attachment(0).unwrap().contents(), long_word.as_bytes());
    assert_eq!(p.attachment(1).unwrap().attachment_name(), Some(format!("{}.txt", "é".repeat(200)).as_str()));
}

#[test]
fn unfoldable_subject_is_encoded_but_custom_header_is_refused() {
    let url = format!("https://example.com/{}", "a".repeat(2000));
    let msg =
        Message::builder().from("a@example.com").to("b@example.com").subject(url.as_str()).build().unwrap();
    assert_wire_clean(&msg);
    assert_eq!(parse(&msg).subject(), Some(url.as_str()));
    let err = Message::builder().from("a@example.com").to("b@example.com").header("X-Url", url).build();
    assert!(
        matches!(err, Err(MimeError::HeaderTooLong { len: 2020, ref name }) if name == "X-Url"),
        "{err:?}"
    );
}

#[test]
fn bodies_with_awkward_bytes_survive() {
    // NUL, bare CR and bare LF would be written raw by mail-builder's 7bit path.
    let attachments: [&[u8]; 5] = [b"a\0b", b"a\rb", b"a\nb\n", b"\r\n.\r\n", b"line \r\n\ttab \r\n"];
    for data in attachments {
        let msg = Message::builder()
            .from("a@example.com")
            .to("b@example.com")
            .text_body("nul \0 here\r.\n.\n")
            .attachment("f.txt", "text/plain", data.to_vec())
            .build()
            .unwrap();
        assert_wire_clean(&msg);
        let p = parse(&msg);
        assert_eq!(p.body_text(0).unwrap(), "nul \0 here\r\n.\r\n.\r\n");
        assert_eq!(p.attachment(0).unwrap().contents(), data, "{data:?}");
    }
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let msg = Message::builder().from("zoë@exämple.de").to("b@example.com").build().unwrap();
    assert!(msg.needs_smtputf8() && msg.needs_8bitmime());
    assert_eq!(parse(&msg).from().unwrap().first().unwrap().address(), Some("zoë@exämple.de"));
    // A UTF-8 Bcc address is only in the envelope, which still needs SMTPUTF8.
    let msg = Message::builder().from("a@example.com").bcc("ü@example.com").build().unwrap();
    assert!(msg.needs_smtputf8() && !msg.needs_8bitmime());
    // Unicode everywhere else is encoded: plain 7-bit.
    let msg = Message::builder()
        .from(("Ünïcödé", "a@example.com"))
        .to(("日本語", "b@example.com"))
        .subject("Ελληνικά")
        .text_body("Кириллица")
        .html_body("<p>עברית</p>")
        .attachment("файл.txt", "text/plain", "данные")
        .header("X-Note", "😀")
        .build()
        .unwrap();
    assert!(!msg.needs_smtputf8() && !msg.needs_8bitmime());
    assert!(msg.as_bytes().is_ascii());
}

#[test]
fn envelope_derivation_and_override() {
    let msg = Message::builder()
        .from("author@example.com")
        .sender("Bot <bot@example.com>")
        .to("x@example.com")
        .cc("X@EXAMPLE.COM")
        .cc("x@example.com")
        .bcc("y@example.com")
        .build()
        .unwrap();
    assert_eq!(msg.envelope().from().unwrap().as_str(), "bot@example.com");
    let rcpts: Vec<_> = msg.envelope().to().iter().map(|a| a.as_str()).collect();
    assert_eq!(rcpts, ["x@example.com", "X@EXAMPLE.COM", "y@example.com"]);
    assert_eq!(parse(&msg).sender().unwrap().first().unwrap().address(), Some("bot@example.com"));

    let explicit = Envelope::parse("bounces@example.com", &["list@example.org"]).unwrap();
    let msg = Message::builder()
        .from("author@example.com")
        .to("x@example.com")
        .envelope(explicit.clone())
        .build()
        .unwrap();
    assert_eq!(msg.envelope(), &explicit);
    // Without To/Cc/Bcc the explicit envelope is enough.
    let msg = Message::builder().from("a@example.com").envelope(explicit.clone()).build().unwrap();
    assert!(parse(&msg).to().is_none());
    let other = Envelope::parse("", &["z@example.com"]).unwrap();
    let rerouted = msg.clone().with_envelope(other.clone());
    assert_eq!(rerouted.envelope(), &other);
    assert_eq!(rerouted.as_bytes(), msg.as_bytes());
}

#[test]
fn message_id_and_date() {
    let msg = Message::builder()
        .from("a@sub.example.com")
        .to("b@example.com")
        .message_id("<given@id.example>")
        .build()
        .unwrap();
    assert_eq!(msg.message_id(), "given@id.example");
    assert_eq!(parse(&msg).message_id(), Some("given@id.example"));
    let a = Message::builder().from("a@sub.example.com").to("b@example.com").build().unwrap();
    let b = Message::builder().from("a@sub.example.com").to("b@example.com").build().unwrap();
    assert!(a.message_id().ends_with("@sub.example.com"));
    assert_ne!(a.message_id(), b.message_id());
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((parse(&a).date().unwrap().to_timestamp() - now).abs() < 5);
}

#[test]
fn attachment_policy() {
    let base = || Message::builder().from("a@example.com").to("b@example.com").html_body("<img src=cid:i>");
    let policy = AttachmentPolicy::default().max_attachment_size(100).max_total_size(150);
    let err = base().policy(policy.clone()).attachment("big.bin", "application/zip", vec![0u8; 101]).build();
    assert!(
        matches!(err, Err(MimeError::AttachmentTooLarge { size: 101, max: 100, ref name }) if name == "big.bin")
    );
    let err = base()
        .policy(policy.clone())
        .inline_image("i", "image/png", vec![0u8; 100])
        .attachment("b", "application/zip", vec![0u8; 51])
        .build();
    assert!(matches!(err, Err(MimeError::TotalTooLarge { size: 151, max: 150 })), "{err:?}");
    assert!(
        base()
            .policy(policy)
            .inline_image("i", "image/png", vec![0u8; 100])
            .attachment("b", "a/b", vec![0u8; 50])
            .build()
            .is_ok()
    );

    let types = AttachmentPolicy::default().allow("image/*").allow("text/plain").deny("image/svg+xml");
    let err = base().policy(types.clone()).inline_image("i", "image/svg+xml", &b"<svg/>"[..]).build();
    assert!(matches!(err, Err(MimeError::ContentTypeRefused { why: "denies", .. })), "{err:?}");
    let err =
        base().policy(types.clone()).attachment("x.exe", "application/x-msdownload", &b"MZ"[..]).build();
    assert!(matches!(err, Err(MimeError::ContentTypeRefused { why: "does not allow", .. })), "{err:?}");
    assert!(
        base()
            .policy(types)
            .inline_image("i", "image/PNG", PNG)
            .attachment("n.txt", "text/plain", "x")
            .build()
            .is_ok()
    );
}

#[test]
fn file_attachments() {
    let dir = std::env::temp_dir().join(format!("smtpkit-mime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("Rechnung März.PDF");
    std::fs::write(&pdf, b"%PDF-1.4 fake").unwrap();
    let unknown = dir.join("data.weird");
    std::fs::write(&unknown, [1u8, 2, 3]).unwrap();
    let big = dir.join("big.png");
    std::fs::write(&big, vec![0u8; 4096]).unwrap();

    let base = || Message::builder().from("a@example.com").to("b@example.com").text_body("see files");
    let msg =
        base().attach_file(&pdf).attach_file(&unknown).attach_file_as(&unknown, "text/csv").build().unwrap();
    assert_wire_clean(&msg);
    let p = parse(&msg);
    assert_eq!(
        structure(&p),
        "multipart/mixed[text/plain,application/pdf,application/octet-stream,text/csv]"
    );
    assert_eq!(p.attachment(0).unwrap().attachment_name(), Some("Rechnung März.PDF"));
    assert_eq!(p.attachment(0).unwrap().contents(), b"%PDF-1.4 fake");
    assert_eq!(p.attachment(2).unwrap().contents(), [1u8, 2, 3]);

    // The size is checked from the metadata, before the file is read.
    let err = base().policy(AttachmentPolicy::default().max_attachment_size(4095)).attach_file(&big).build();
    assert!(matches!(err, Err(MimeError::AttachmentTooLarge { size: 4096, .. })), "{err:?}");
    let err = base().policy(AttachmentPolicy::default().deny("image/*")).attach_file(&big).build();
    assert!(matches!(err, Err(MimeError::ContentTypeRefused { .. })), "{err:?}");
    let err = base().attach_file(dir.join("missing.txt")).build();
    assert!(matches!(err, Err(MimeError::File { .. })), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mailbox_conversions() {
    let addr = smtpkit::Address::new("c@example.com").unwrap();
    let msg = Message::builder()
        .from(Mailbox::try_from("\"Doe, Jane\" <jane@example.com>").unwrap())
        .to(addr.clone())
        .to(("Named", addr))
        .cc(String::from("d@example.com"))
        .cc((String::from("Ö"), String::from("e@example.com")))
        .build()
        .unwrap();
    let p = parse(&msg);
    assert_eq!(p.from().unwrap().first().unwrap().name(), Some("Doe, Jane"));
    let to: Vec<_> = p.to().unwrap().iter().map(|a| (a.name(), a.address())).collect();
    assert_eq!(to, [(None, Some("c@example.com")), (Some("Named"), Some("c@example.com"))]);
    assert_eq!(msg.envelope().to().len(), 3, "c@ once, d@, e@");
}

fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Runs of spaces and tabs as one space, and none at either end.
fn collapse(s: &str) -> String {
    s.split([' ', '\t']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Display names: printable text including the RFC 5322 specials that need quoting, and
/// arbitrary Unicode.
fn display_name() -> impl Strategy<Value = String> {
    prop_oneof![r#"[ -~]{0,40}"#, "\\PC{0,40}", r#"[ ",;:<>@\\()]{0,10}"#]
        .prop_map(|s| s.trim_matches(' ').to_owned())
}

/// Unstructured text without control bytes.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![r#"[!-~][ -~]{0,200}"#, "[^\\p{Cc}]{1,200}"]
}

proptest! {
    /// Whatever goes in comes out of an independent parser unchanged (256 cases; set
    /// PROPTEST_CASES for a longer run). mail-parser trims spaces and tabs around decoded
    /// header text, so header values are compared trimmed of those.
    #[test]
    fn arbitrary_messages_round_trip(
        from_name in display_name(),
        to_name in display_name(),
        subject in header_text(),
        custom in header_text(),
        text in "\\PC{0,600}",
        text_breaks in proptest::collection::vec(0usize..600, 0..8),
        html in proptest::option::of("\\PC{0,300}"),
        filename in "[^\\p{Cc}/\\\\]{1,60}",
        binary in proptest::collection::vec(any::<u8>(), 0..2000),
        text_file in proptest::option::of("(?s).{0,800}"),
    ) {
        // Sprinkle \n, \r\n and \r into the text at random character positions.
        let mut text: Vec<char> = text.chars().collect();
        for (i, at) in text_breaks.iter().enumerate() {
            let at = (*at).min(text.len());
            text.splice(at..at, match i % 3 { 0 => "\n", 1 => "\r\n", _ => "\r" }.chars());
        }
        let text: String = text.into_iter().collect();
        // A text/* attachment holds text (mail-parser decodes it as such), with any
        // control characters; anything else holds arbitrary bytes.
        let (content_type, data) = match text_file {
            Some(t) => ("text/plain", t.into_bytes()),
            None => ("application/octet-stream", binary),
        };
        // Arbitrary names and bytes may look like a program to the default policy; this
        // test is about the round trip, the policy has its own.
        let mut b = Message::builder()
            .policy(AttachmentPolicy::permissive())
            .from((from_name.as_str(), "from@example.com"))
            .to((to_name.as_str(), "to@example.com"))
            .bcc("hidden@example.org")
            .subject(subject.as_str())
            .header("X-Custom", custom.as_str())
            .text_body(text.as_str())
            .attachment(filename.as_str(), content_type, data.clone());
        if let Some(html) = &html {
            b = b.html_body(html.as_str());
        }
        let msg = b.build().unwrap();
        assert_wire_clean(&msg);
        prop_assert!(!msg.needs_8bitmime());
        let p = parse(&msg);

        let from = p.from().unwrap().first().unwrap();
        prop_assert_eq!(trim_wsp(from.name().unwrap_or("")), trim_wsp(&from_name));
        prop_assert_eq!(from.address(), Some("from@example.com"));
        prop_assert_eq!(trim_wsp(p.to().unwrap().first().unwrap().name().unwrap_or("")), trim_wsp(&to_name));
        // mail-parser collapses the whitespace around a fold into one space, so decoded
        // values are compared with whitespace runs collapsed; ASCII values, which are
        // folded rather than encoded, are also compared exactly after RFC 5322 unfolding.
        prop_assert_eq!(collapse(p.subject().unwrap_or("")), collapse(&subject));
        if subject.is_ascii() {
            // RFC 5322 section 2.2.3: "Unfolding is accomplished by simply removing any
            // CRLF that is immediately followed by WSP."
            let raw = p.header_raw("Subject").unwrap().replace("\r\n", "");
            prop_assert_eq!(raw.strip_prefix(' ').unwrap_or(&raw), subject.as_str());
        }
        let custom_back = custom_header(&p, "X-Custom").unwrap_or_default();
        prop_assert_eq!(collapse(&custom_back), collapse(&custom));
        let want_text = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
        prop_assert_eq!(p.body_text(0).unwrap_or_default(), want_text.as_str());
        if let Some(html) = &html {
            let want = html.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
            prop_assert_eq!(p.body_html(0).unwrap_or_default(), want.as_str());
        }
        let file = p.attachments().find(|a| a.attachment_name().is_some()).unwrap();
        prop_assert_eq!(file.attachment_name(), Some(filename.as_str()));
        prop_assert_eq!(file.contents(), data.as_slice());
        prop_assert!(p.bcc().is_none());
        prop_assert_eq!(msg.envelope().to().len(), 2);
    }
}

/// Usually `valid`, otherwise anything matching `arbitrary` (control bytes included),
/// so that both accepted and refused messages are exercised.
fn mostly(valid: &'static str, arbitrary: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(valid.to_owned()), 1 => proptest::string::string_regex(arbitrary).unwrap()]
}

proptest! {
    /// Arbitrary input in every field, control bytes included: the builder returns a
    /// typed error or a message that is wire-clean, parses, and carries no Bcc. Never a
    /// panic, never a header line made of caller input.
    #[test]
    fn arbitrary_input_is_refused_or_clean(
        from in mostly("Zoë", "(?s).{0,30}"),
        to in mostly("b@example.com", "(?s).{0,30}"),
        bcc in mostly("c@example.com", "(?s).{0,30}"),
        subject in mostly("Grüße", "(?s).{0,100}"),
        name in mostly("X-Tag", "(?s).{0,20}"),
        value in mostly("v", "(?s).{0,100}"),
        cid in mostly("logo", "(?s).{0,12}"),
        content_type in mostly("image/png", "(?s).{0,20}"),
        filename in mostly("résumé.txt", "(?s).{0,20}"),
        text in "(?s).{0,200}",
    ) {
        let built = Message::builder()
            .from((from.as_str(), "from@example.com"))
            .to(to.as_str())
            .bcc(("hidden name", bcc.as_str()))
            .subject(subject.as_str())
            .header(name.as_str(), value.as_str())
            .html_body(text.as_str())
            .inline_image(cid.as_str(), content_type.as_str(), text.clone().into_bytes())
            .attachment(filename.as_str(), content_type.as_str(), text.clone().into_bytes())
            .build();
        if let Ok(msg) = built {
            assert_wire_clean(&msg);
            let p = parse(&msg);
            prop_assert!(p.bcc().is_none());
            prop_assert!(!String::from_utf8_lossy(msg.as_bytes()).contains("hidden name"));
            prop_assert_eq!(collapse(p.subject().unwrap_or("")), collapse(&subject));
        }
    }
}

#[test]
fn debug_never_shows_content() {
    let builder = Message::builder()
        .from("a@example.com")
        .to("b@example.com")
        .subject("visible")
        .text_body("SECRET-TEXT")
        .html_body("SECRET-HTML")
        .inline_image("i", "image/png", &b"SECRET-IMAGE"[..])
        .attachment("f.txt", "text/plain", "SECRET-FILE");
    let shown = format!("{builder:?}");
    assert!(shown.contains("visible") && shown.contains("f.txt") && !shown.contains("SECRET"), "{shown}");
    let msg = builder.build().unwrap();
    let shown = format!("{msg:?}");
    assert!(shown.contains(msg.message_id()) && !shown.contains("SECRET"), "{shown}");
}
