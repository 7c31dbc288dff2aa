//! Custom parts, content type parameters and calendar invitations, parsed back by
//! mail-parser (an independent parser).

use mail_parser::{MessageParser, MimeHeaders, PartType};
use smtpkit::{
    Message,
    mime::{Calendar, ContentType, MimeError, Part},
};

fn base() -> smtpkit::mime::MessageBuilder {
    Message::builder().from("zoe@example.com").to("bob@example.com").subject("parts")
}

fn parse(msg: &Message) -> mail_parser::Message<'_> {
    MessageParser::default().parse(msg.as_bytes()).expect("mail-parser accepts the message")
}

/// The MIME tree as `type/subtype[child,child]`.
fn structure(parsed: &mail_parser::Message<'_>) -> String {
    fn tree(parsed: &mail_parser::Message<'_>, part: &mail_parser::MessagePart<'_>) -> String {
        let ct = part.content_type().map_or("text/plain".to_owned(), |ct| {
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
        });
        match &part.body {
            PartType::Multipart(children) => {
                let children: Vec<_> =
                    children.iter().map(|&i| tree(parsed, &parsed.parts[i as usize])).collect();
                format!("{ct}[{}]", children.join(","))
            }
            _ => ct,
        }
    }
    tree(parsed, &parsed.parts[0])
}

#[test]
fn parameters_on_attachments_and_parts_round_trip() {
    let long = "Jahresabschluß und Ausblick für das kommende Geschäftsjahr (endgültige Fassung)".repeat(2);
    let msg = base()
        .text_body("see attached")
        .attachment("notes.txt", "text/plain; format=flowed; charset=us-ascii", "flowed text \r\n")
        .attachment("report.pdf", format!("application/pdf; name=\"{long}\"").as_str(), &b"%PDF-1.7\n"[..])
        .build()
        .unwrap();
    let p = parse(&msg);
    let notes = p.attachments().find(|a| a.attachment_name() == Some("notes.txt")).unwrap();
    let ct = notes.content_type().unwrap();
    assert_eq!((ct.attribute("format"), ct.attribute("charset")), (Some("flowed"), Some("us-ascii")));
    let pdf = p.attachments().find(|a| a.attachment_name() == Some("report.pdf")).unwrap();
    assert_eq!(pdf.content_type().unwrap().attribute("name"), Some(long.as_str()));
    // RFC 2231 for the long non-ASCII value: no raw 8-bit octet, no encoded-word.
    assert!(!msg.needs_8bitmime());
    let head = String::from_utf8_lossy(msg.as_bytes());
    assert!(head.contains("name*0*=utf-8''") || head.contains("name*0*=UTF-8''"), "{head}");
}

#[test]
fn bad_parameters_are_typed_errors() {
    for (ct, want) in [
        ("text/plain; charset=utf-8\r\nBcc: x@y.z", "control"),
        ("text/plain; boundary=abc", "parameter"),
        ("text/plain; a=1; a=2", "parameter"),
        ("text/plain; na*me=1", "parameter"),
        ("text/plain; x=\"unterminated", "type"),
        ("multipart/mixed; x=1", "type"),
    ] {
        let err = base().text_body("x").attachment("a.txt", ct, "x").build().unwrap_err();
        let ok = match want {
            "control" => matches!(err, MimeError::ControlByte { byte: b'\r', .. }),
            "parameter" => matches!(err, MimeError::Parameter { .. }),
            _ => matches!(err, MimeError::ContentType { .. }),
        };
        assert!(ok, "{ct:?}: {err:?}");
        let shown = err.to_string();
        assert!(!shown.contains(['\r', '\n']), "{shown:?}");
    }
    // A control byte given through the typed constructor never reaches a header either.
    let err = ContentType::new("text/plain").unwrap().with_param("x", "a\nb").unwrap_err();
    assert!(matches!(err, MimeError::ControlByte { byte: b'\n', .. }));
    let err = base().body(Part::text("text/plain; charset=iso-8859-1", "x")).build().unwrap_err();
    assert!(matches!(err, MimeError::Parameter { ref name, .. } if name == "charset"), "{err:?}");
}

/// A delivery status notification (RFC 3464 in RFC 6522's multipart/report) with the
/// original message attached.
#[test]
fn multipart_report_with_the_original_message() {
    let original = base().subject("the original").text_body("hello\n").build().unwrap();
    let status = "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 5.1.1\n";
    let msg = Message::builder()
        .from("mailer-daemon@example.com")
        .to("zoe@example.com")
        .subject("Undeliverable")
        .body(Part::multipart(
            "multipart/report; report-type=delivery-status",
            [
                Part::text("text/plain", "Your message could not be delivered.\n"),
                Part::text("message/delivery-status", status),
                Part::message(&original),
            ],
        ))
        .build()
        .unwrap();
    let p = parse(&msg);
    assert_eq!(structure(&p), "multipart/report[text/plain,message/delivery-status,message/rfc822]");
    assert_eq!(p.parts[0].content_type().unwrap().attribute("report-type"), Some("delivery-status"));
    let text = String::from_utf8_lossy(msg.as_bytes());
    // message/* parts are never base64 (RFC 2046 section 5.2.1), and keep CRLF lines.
    assert!(text.contains("Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: 7bit\r\n"));
    assert!(text.contains(&status.replace('\n', "\r\n")));
    assert!(memchr::memmem::find(msg.as_bytes(), original.as_bytes()).is_some());
    let inner = p.parts.iter().find_map(|part| part.message()).expect("inner message");
    assert_eq!(inner.subject(), Some("the original"));
}

/// A `multipart/signed` wrapper (RFC 1847): the signed entity goes out byte for byte, so
/// a signature over it still verifies.
#[test]
fn signed_wrapper_keeps_the_signed_entity_verbatim() {
    let signed =
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSigned text.\r\n";
    let msg = base()
        .body(Part::multipart(
            "multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256",
            [
                Part::entity(&signed[..]),
                Part::binary("application/pgp-signature", &b"-----BEGIN PGP SIGNATURE-----\n...\n"[..])
                    .header("Content-Description", "OpenPGP digital signature"),
            ],
        ))
        .build()
        .unwrap();
    let bytes = msg.as_bytes();
    let at = memchr::memmem::find(bytes, signed).expect("the signed entity is there verbatim");
    // It follows its boundary line directly.
    assert!(
        bytes[..at].ends_with(b"\r\n")
            && bytes[..at - 2].rsplit(|&b| b == b'\n').next().unwrap().starts_with(b"--")
    );
    let p = parse(&msg);
    assert_eq!(structure(&p), "multipart/signed[text/plain,application/pgp-signature]");
    assert_eq!(p.parts[0].content_type().unwrap().attribute("protocol"), Some("application/pgp-signature"));
    assert_eq!(p.parts[1].text_contents(), Some("Signed text.\r\n"));
}

#[test]
fn custom_alternatives_and_nesting() {
    let msg = base()
        .text_body("text")
        .html_body("<p>html</p>")
        .alternative(Part::text("text/x-amp-html", "<html amp4email></html>"))
        .attach_part(Part::multipart(
            "multipart/mixed",
            [Part::binary("application/octet-stream", vec![1u8, 2, 3]).attachment("data.bin")],
        ))
        .build()
        .unwrap();
    let p = parse(&msg);
    assert_eq!(
        structure(&p),
        "multipart/mixed[multipart/alternative[text/plain,text/html,text/x-amp-html],multipart/mixed[application/octet-stream]]"
    );
    assert_eq!(
        p.attachments().find(|a| a.attachment_name() == Some("data.bin")).unwrap().contents(),
        [1, 2, 3]
    );
}

#[test]
fn invalid_parts_are_typed_errors() {
    let cases: Vec<(Part, &str)> = vec![
        (Part::multipart("multipart/mixed", []), "at least one"),
        (Part::multipart("text/plain", [Part::text("text/plain", "x")]), "multipart/* type"),
        (Part::text("multipart/mixed", "x"), "needs Part::multipart"),
        (Part::entity(&b"no header section"[..]), "header section"),
        (Part::entity(&b"A: b\r\n\r\nbare\nLF"[..]), "bare LF"),
        (Part::entity(&b"\r\nbody"[..]).attachment("x"), "own headers"),
        (Part::rfc822(format!("Subject: x\r\n\r\n{}", "a".repeat(999))), "998"),
    ];
    for (part, want) in cases {
        let err = base().body(part).build().unwrap_err();
        assert!(
            matches!(&err, MimeError::InvalidPart { reason } if reason.contains(want)),
            "{want}: {err:?}"
        );
    }
    let mut deep = Part::text("text/plain", "leaf");
    for _ in 0..40 {
        deep = Part::multipart("multipart/mixed", [deep]);
    }
    assert!(matches!(base().body(deep).build(), Err(MimeError::InvalidPart { .. })));
    assert!(matches!(base().body(Part::text("bad", "x")).build(), Err(MimeError::ContentType { .. })));
    for conflict in [
        base().text_body("x").body(Part::text("text/plain", "y")),
        base().html_body("x").body(Part::text("text/plain", "y")),
        base().alternative(Part::text("text/plain", "x")).body(Part::text("text/plain", "y")),
    ] {
        assert!(matches!(conflict.build(), Err(MimeError::BodyConflict(_))));
    }
    // A forwarded raw message loses its Bcc field.
    let msg = base()
        .text_body("fwd")
        .attach_part(Part::rfc822(
            &b"From: a@b.c\r\nBcc: secret@example.com\r\nSubject: s\r\n\r\nbody\r\n"[..],
        ))
        .build()
        .unwrap();
    assert!(memchr::memmem::find(msg.as_bytes(), b"secret@example.com").is_none());
}

const ICS: &str = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//x//EN\nMETHOD:CANCEL\nBEGIN:VEVENT\nUID:1@example.com\nDTSTAMP:20260101T000000Z\nSTATUS:CANCELLED\nEND:VEVENT\nEND:VCALENDAR\n";

#[test]
fn calendar_layouts() {
    let msg =
        base().text_body("t").html_body("<p>h</p>").calendar(Calendar::new("cancel", ICS)).build().unwrap();
    let p = parse(&msg);
    assert_eq!(
        structure(&p),
        "multipart/mixed[multipart/alternative[text/plain,text/calendar,text/html],application/ics]"
    );
    let cal = p.parts.iter().find(|x| x.is_content_type("text", "calendar")).unwrap();
    assert_eq!(cal.content_type().unwrap().attribute("method"), Some("CANCEL"));
    assert_eq!(cal.text_contents(), Some(ICS.replace('\n', "\r\n").as_str()));
    assert_eq!(
        p.attachments().find(|a| a.attachment_name().is_some()).unwrap().attachment_name(),
        Some("invite.ics")
    );

    // The calendar alone, and with inline images under the HTML.
    let msg = base().calendar(Calendar::new("CANCEL", ICS)).build().unwrap();
    assert_eq!(structure(&parse(&msg)), "multipart/mixed[text/calendar,application/ics]");
    let msg = base()
        .html_body("<img src=cid:i>")
        .inline_image("i", "image/gif", &b"GIF89a\x01\0\x01\0\0\0\0;"[..])
        .calendar(Calendar::new("CANCEL", ICS))
        .build()
        .unwrap();
    assert_eq!(
        structure(&parse(&msg)),
        "multipart/mixed[multipart/related[multipart/alternative[text/calendar,text/html],image/gif],application/ics]"
    );
    let err = base().calendar(Calendar::new("REQUEST", ICS)).build().unwrap_err();
    assert!(matches!(err, MimeError::Calendar { reason } if reason.contains("METHOD")), "{err:?}");
}

/// RFC 2369 `List-Unsubscribe` and RFC 8058 one-click, as bulk senders must send them.
#[test]
fn list_unsubscribe_headers() {
    let msg = base()
        .text_body("news")
        .list_unsubscribe_mailto("mailto:leave@example.com?subject=unsubscribe")
        .list_unsubscribe_url("https://example.com/u?id=42&t=abc")
        .list_unsubscribe_one_click()
        .build()
        .unwrap();
    let p = parse(&msg);
    let unfolded = p.header_raw("List-Unsubscribe").unwrap().replace("\r\n", "");
    assert_eq!(
        unfolded.trim(),
        "<mailto:leave@example.com?subject=unsubscribe>, <https://example.com/u?id=42&t=abc>"
    );
    assert_eq!(p.header_raw("List-Unsubscribe-Post").map(str::trim), Some("List-Unsubscribe=One-Click"));
    let err =
        base().list_unsubscribe_one_click().list_unsubscribe_url("http://example.com/u").build().unwrap_err();
    assert!(matches!(err, MimeError::ListUnsubscribe { reason } if reason.contains("https")), "{err:?}");
    let err = base()
        .list_unsubscribe_url("https://example.com/u")
        .header("List-Unsubscribe", "<https://other.example/>")
        .build()
        .unwrap_err();
    assert!(matches!(err, MimeError::ListUnsubscribe { .. }), "{err:?}");
    let err = base().list_unsubscribe_url("https://example.com/u\r\nBcc: x@y.z").build().unwrap_err();
    assert!(matches!(err, MimeError::ListUnsubscribe { .. }), "{err:?}");
    // Setting it through header() alone still works, as before.
    assert!(base().header("List-Unsubscribe", "<https://example.com/u>").build().is_ok());
}
