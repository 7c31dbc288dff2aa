//! `smtpkit::Message` delivered through the real Postfix and aiosmtpd of
//! `scripts/test.sh` (see `support::interop`), read back from their maildirs and parsed
//! with mail-parser: the delivered bytes are exactly what was composed, no copy holds a
//! `Bcc:` field, and the Bcc recipients are in the envelope.
//!
//! The message goes through [`submit`], a few lines of blocking SMTP written here, so that
//! these tests prove the composed message and envelope apart from smtpkit's client.

use std::{
    collections::BTreeSet,
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use mail_parser::{MessageParser, MimeHeaders};
use smtpkit::{
    Message,
    mime::{Calendar, Part},
};

use crate::support::interop::{self, Server};

/// Reads one reply (all its lines) and checks its code.
fn expect(reader: &mut impl BufRead, code: u16, after: &str) -> io::Result<()> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("closed after {after}")));
        }
        if !line.starts_with(&code.to_string()) {
            return Err(io::Error::other(format!("after {after}: expected {code}, got {line:?}")));
        }
        // RFC 5321 section 4.2.1: the last line of a reply has a space after the code.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// Submits `msg` with its envelope over plain SMTP, one command per round trip (Postfix
/// refuses unauthorised pipelining), with `SMTPUTF8` and `BODY=8BITMIME` when the message
/// says it needs them.
fn submit(addr: SocketAddr, msg: &Message) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    expect(&mut reader, 220, "connect")?;
    let mut command = |line: &[u8], code: u16| -> io::Result<()> {
        stream.write_all(line)?;
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).trim_end().to_owned();
        expect(&mut reader, code, &shown)
    };
    command(b"EHLO client.example.test\r\n", 250)?;
    let mut params = String::new();
    if msg.needs_8bitmime() {
        params.push_str(" BODY=8BITMIME");
    }
    if msg.needs_smtputf8() {
        params.push_str(" SMTPUTF8");
    }
    let from = msg.envelope().from().map_or("", |a| a.as_str());
    command(format!("MAIL FROM:<{from}>{params}\r\n").as_bytes(), 250)?;
    for rcpt in msg.envelope().to() {
        command(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), 250)?;
    }
    command(b"DATA\r\n", 354)?;
    // RFC 5321 section 4.5.2: "If the first character [of a line] is a period, one
    // additional period is inserted at the beginning of the line."
    let mut data = Vec::with_capacity(msg.len() + 64);
    for line in msg.as_bytes().split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    command(&data, 250)?;
    command(b"QUIT\r\n", 221)
}

/// `label` goes into the subject; deliveries are matched by the Message-ID, which is
/// unique per run (maildirs keep the mail of earlier runs when servers are reused).
fn composed(from: (&str, &str), label: &str) -> Message {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    Message::builder()
        .from(from)
        .to(("Bob Example", "bob@example.test"))
        .cc("carol@example.test")
        .bcc(("Secret Auditor", "dave@example.test"))
        .bcc("erin@example.com")
        .subject(format!("Grüße from smtpkit ✓ {label}"))
        .text_body(format!("Hello Bob,\n.\nA line starting with a dot, in {label}.\n"))
        .html_body("<p>Hello Bob,</p><img src=\"cid:logo\">")
        .inline_image("logo", "image/png", PNG)
        .attachment("résumé.txt", "text/plain", "Zoë's résumé\r\n.\r\n")
        .build()
        .expect("message builds")
}

/// Sends the message to `server` and checks every delivered copy.
fn deliver_and_check(server: &Server, msg: &Message, label: &str) {
    let marker = msg.message_id();
    submit(server.starttls, msg).unwrap_or_else(|e| panic!("{}: submit: {e}", server.name));
    let want: Vec<&str> = msg.envelope().to().iter().map(|a| a.as_str()).collect();
    let delivered = interop::wait_for_recipients(server, marker, &want, Duration::from_secs(20));

    let recipients: BTreeSet<&str> =
        delivered.iter().flat_map(|d| d.recipients.iter().map(String::as_str)).collect();
    assert_eq!(recipients, want.iter().copied().collect(), "{}: envelope recipients", server.name);
    assert!(recipients.contains("dave@example.test") && recipients.contains("erin@example.com"));
    let sender = msg.envelope().from().map_or("", |a| a.as_str());
    for copy in &delivered {
        assert_eq!(copy.sender, sender, "{}", server.name);
        // Byte-exact: the servers keep everything but Bcc/Return-Path/Content-Length
        // (Postfix), and the message has none of those.
        assert!(
            copy.data == msg.as_bytes(),
            "{}: delivered bytes differ from the composed message",
            server.name
        );
        let text = String::from_utf8_lossy(&copy.data);
        for leak in ["dave@example.test", "erin@example.com", "Secret Auditor"] {
            assert!(!text.contains(leak), "{}: {leak} leaked into a delivered copy", server.name);
        }
        let parsed = MessageParser::default().parse(&copy.data).expect("parses");
        assert!(parsed.bcc().is_none(), "{}: Bcc header delivered", server.name);
        assert_eq!(parsed.subject(), Some(format!("Grüße from smtpkit ✓ {label}").as_str()));
        assert_eq!(parsed.from().and_then(|a| a.first()).and_then(|a| a.name()), Some("Zoë Example"));
        assert!(parsed.body_text(0).is_some_and(|t| t.contains("\r\n.\r\nA line starting")));
        let file = parsed.attachments().find(|a| a.attachment_name().is_some()).expect("attachment");
        assert_eq!(file.attachment_name(), Some("résumé.txt"));
        assert_eq!(file.contents(), "Zoë's résumé\r\n.\r\n".as_bytes());
        let image = parsed.attachments().find(|a| a.content_id() == Some("logo")).expect("inline image");
        assert!(image.contents().starts_with(b"\x89PNG"));
    }
}

#[test]
fn composed_message_delivered_by_postfix() {
    let Some(server) = interop::postfix_or_skip("composed_message_delivered_by_postfix") else { return };
    let msg = composed(("Zoë Example", "zoe@example.test"), "mime-postfix-ascii");
    assert!(!msg.needs_smtputf8() && !msg.needs_8bitmime());
    deliver_and_check(&server, &msg, "mime-postfix-ascii");
}

#[test]
fn composed_message_delivered_by_aiosmtpd() {
    let Some(server) = interop::aiosmtpd_or_skip("composed_message_delivered_by_aiosmtpd") else { return };
    let msg = composed(("Zoë Example", "zoe@example.test"), "mime-aiosmtpd-ascii");
    deliver_and_check(&server, &msg, "mime-aiosmtpd-ascii");
}

/// A non-ASCII author address: the message says it needs SMTPUTF8 and 8BITMIME, and
/// both servers, which offer them, deliver it unchanged.
#[test]
fn utf8_address_message_delivered_with_smtputf8() {
    let servers = [
        interop::postfix_or_skip("utf8_address_message_delivered_with_smtputf8 (postfix)"),
        interop::aiosmtpd_or_skip("utf8_address_message_delivered_with_smtputf8 (aiosmtpd)"),
    ];
    for server in servers.into_iter().flatten() {
        let label = format!("mime-{}-utf8", server.name);
        let msg = composed(("Zoë Example", "zoë@example.test"), &label);
        assert!(msg.needs_smtputf8() && msg.needs_8bitmime());
        deliver_and_check(&server, &msg, &label);
    }
}

/// An iTIP REQUEST (RFC 5546) as Outlook and Google Calendar write one: folded lines,
/// parameters, non-ASCII text.
fn invitation_ics(uid: &str) -> String {
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//smtpkit//tests//EN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20260101T080000Z",
        "DTSTART:20260115T090000Z",
        "DTEND:20260115T100000Z",
        "SUMMARY:Planung Q1 – Grüße ✓",
        "DESCRIPTION:A long description that an iCalendar writer folds at seventy-fi",
        " ve octets\\, as RFC 5545 section 3.1 says.",
        "ORGANIZER;CN=Zoë Example:mailto:zoe@example.test",
        "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.test",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    .join("\r\n")
}

/// Reads a delivered message with Python's `email` package and its calendar parts with
/// the `icalendar` package, both independent of smtpkit and mail-parser. Prints, per
/// calendar part, `where|content type|method param|filename|METHOD|UID|SUMMARY|attendees`.
const CALENDAR_PY: &str = r#"
import sys, email, email.policy, icalendar
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
for part in msg.walk():
    ct = part.get_content_type()
    if ct not in ("text/calendar", "application/ics"):
        continue
    where = "attachment" if part.get_content_disposition() == "attachment" else "alternative"
    cal = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    event = cal.walk("VEVENT")[0]
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    print("|".join([where, ct, str(part.get_param("method")), str(part.get_filename()),
        str(cal["METHOD"]), str(event["UID"]), str(event["SUMMARY"]),
        ",".join(str(a) for a in attendees)]))
"#;

/// The venv python of `scripts/interop/install.sh`, which installs icalendar into it.
fn python() -> std::path::PathBuf {
    std::env::var_os("SMTPKIT_PYTHON")
        .filter(|p| !p.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".interop/venv/bin/python"))
}

fn python_calendar_parts(message: &[u8]) -> Vec<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(python())
        .args(["-c", CALENDAR_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the interop venv's python (scripts/interop/install.sh)");
    child.stdin.take().expect("piped").write_all(message).expect("write message");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").lines().map(str::to_owned).collect()
}

/// A calendar invitation through both real servers: the delivered copy is byte-exact,
/// mail-parser finds the `text/calendar; method=REQUEST` alternative and the `.ics`
/// attachment, and Python's email and icalendar packages read both as the same event.
#[test]
fn calendar_invitation_delivered_and_parsed() {
    let servers = [
        interop::postfix_or_skip("calendar_invitation_delivered_and_parsed (postfix)"),
        interop::aiosmtpd_or_skip("calendar_invitation_delivered_and_parsed (aiosmtpd)"),
    ];
    for server in servers.into_iter().flatten() {
        // A UID unique per run, as maildirs keep earlier runs' mail.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let uid = format!("{}-{}-{}@example.test", server.name, std::process::id(), nanos.as_nanos());
        let msg = Message::builder()
            .from(("Zoë Example", "zoe@example.test"))
            .to(("Bob", "bob@example.test"))
            .subject(format!("Invitation: Planung Q1 ({})", server.name))
            .text_body("You are invited to Planung Q1.\n")
            .html_body("<p>You are invited to <b>Planung Q1</b>.</p>")
            .calendar(Calendar::new("REQUEST", invitation_ics(&uid)).filename("planung.ics"))
            .build()
            .expect("builds");
        submit(server.starttls, &msg).unwrap_or_else(|e| panic!("{}: submit: {e}", server.name));
        let delivered = interop::wait_for_recipients(
            &server,
            msg.message_id(),
            &["bob@example.test"],
            Duration::from_secs(20),
        );
        let copy = delivered.first().unwrap_or_else(|| panic!("{}: not delivered", server.name));
        assert!(copy.data == msg.as_bytes(), "{}: delivered bytes differ", server.name);

        let parsed = MessageParser::default().parse(&copy.data).expect("parses");
        let calendar = parsed
            .parts
            .iter()
            .find(|p| p.is_content_type("text", "calendar"))
            .unwrap_or_else(|| panic!("{}: no text/calendar part", server.name));
        assert_eq!(calendar.content_type().and_then(|c| c.attribute("method")), Some("REQUEST"));
        let ics = invitation_ics(&uid);
        assert_eq!(calendar.text_contents(), Some(ics.as_str()));
        let file =
            parsed.attachments().find(|a| a.attachment_name() == Some("planung.ics")).expect("ics file");
        assert_eq!(file.contents(), ics.as_bytes());
        assert!(parsed.body_html(0).is_some_and(|h| h.contains("<b>Planung Q1</b>")));

        let mut seen = python_calendar_parts(&copy.data);
        seen.sort();
        let event = format!("REQUEST|{uid}|Planung Q1 – Grüße ✓|mailto:bob@example.test");
        assert_eq!(
            seen,
            [
                format!("alternative|text/calendar|REQUEST|None|{event}"),
                format!("attachment|application/ics|None|planung.ics|{event}"),
            ],
            "{}",
            server.name
        );
    }
}

/// A message forwarded as `message/rfc822` beside a `multipart/report`-style body, through
/// both real servers: the inner message parses back whole, unencoded (RFC 2046 section
/// 5.2.1 allows only 7bit, 8bit or binary for it).
#[test]
fn forwarded_message_delivered_and_parsed() {
    let servers = [
        interop::postfix_or_skip("forwarded_message_delivered_and_parsed (postfix)"),
        interop::aiosmtpd_or_skip("forwarded_message_delivered_and_parsed (aiosmtpd)"),
    ];
    for server in servers.into_iter().flatten() {
        let original = composed(("Zoë Example", "zoe@example.test"), &format!("original-{}", server.name));
        let msg = Message::builder()
            .from("carol@example.test")
            .to(("Bob", "bob@example.test"))
            .subject(format!("Fwd: Grüße ({})", server.name))
            .body(Part::multipart(
                "multipart/alternative",
                [Part::text("text/plain; format=flowed", "See the message below. \nIt is attached whole.\n")],
            ))
            .attach_part(Part::message(&original).attachment("original.eml"))
            .build()
            .expect("builds");
        assert!(!msg.needs_8bitmime());
        submit(server.starttls, &msg).unwrap_or_else(|e| panic!("{}: submit: {e}", server.name));
        let delivered = interop::wait_for_recipients(
            &server,
            msg.message_id(),
            &["bob@example.test"],
            Duration::from_secs(20),
        );
        let copy = delivered.first().unwrap_or_else(|| panic!("{}: not delivered", server.name));
        assert!(copy.data == msg.as_bytes(), "{}: delivered bytes differ", server.name);
        assert!(
            memchr::memmem::find(&copy.data, original.as_bytes()).is_some(),
            "{}: the forwarded message is not there verbatim",
            server.name
        );
        let parsed = MessageParser::default().parse(&copy.data).expect("parses");
        let text = parsed.parts.iter().find(|p| p.is_content_type("text", "plain")).expect("text part");
        assert_eq!(text.content_type().and_then(|c| c.attribute("format")), Some("flowed"));
        let attached = parsed.attachments().find(|a| a.is_message()).expect("message/rfc822 part");
        assert_eq!(attached.attachment_name(), Some("original.eml"));
        let inner = attached.message().expect("inner message parses");
        assert_eq!(inner.subject(), Some(format!("Grüße from smtpkit ✓ original-{}", server.name).as_str()));
        assert_eq!(inner.message_id(), Some(original.message_id()));
        assert!(inner.attachments().any(|a| a.attachment_name() == Some("résumé.txt")));
    }
}
