//! `MessageBuilder::build_streamed`: file and reader attachments base64-encoded while the
//! message is consumed. The streamed bytes parse back (mail-parser) to the files' content,
//! their length is the one announced, and a file that changes after the build ends the
//! stream with an error instead of a wrong message.

use std::io::Read;

use mail_parser::{MessageParser, MimeHeaders};
use smtpkit::{
    Message,
    mime::{AttachmentPolicy, MimeError, PolicyRule, StreamedMessage},
};

fn dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpkit-stream-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn collect(msg: StreamedMessage) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for chunk in msg {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

#[test]
fn streamed_files_and_readers_parse_back() {
    let dir = dir("parse");
    let big = content(3 << 20, 1);
    let path = dir.join("archive.bin");
    std::fs::write(&path, &big).unwrap();
    let small = content(1000, 2);
    let msg = Message::builder()
        .from(("Zoë", "zoe@example.com"))
        .to("bob@example.com")
        .bcc("audit@example.com")
        .subject("Grüße, streamed")
        .text_body("two files\n")
        .attach_file(&path)
        .attach_reader("report.dat", "application/octet-stream", std::io::Cursor::new(small.clone()), 1000)
        .attachment("inline.txt", "text/plain", "in memory\n")
        .build_streamed()
        .unwrap();
    assert_eq!(msg.envelope().to().len(), 2);
    assert!(!msg.needs_8bitmime() && !msg.needs_smtputf8());
    let announced = msg.len();
    let bytes = collect(msg).unwrap();
    assert_eq!(bytes.len() as u64, announced, "len() is the streamed length");
    assert!(memchr::memmem::find(&bytes, b"audit@example.com").is_none(), "Bcc stays out");
    assert!(memchr::memmem::find(&bytes, b"smtpkit-stream-").is_none(), "no placeholder left");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        assert!(line.len() <= 999 && line.ends_with(b"\r"), "line {i}: CRLF, at most 998 octets");
    }
    let p = MessageParser::default().parse(&bytes).expect("parses");
    assert_eq!(p.subject(), Some("Grüße, streamed"));
    let file =
        |name: &str| p.attachments().find(|a| a.attachment_name() == Some(name)).unwrap().contents().to_vec();
    assert!(file("archive.bin") == big);
    assert_eq!(file("report.dat"), small);
    assert_eq!(file("inline.txt"), b"in memory\n");

    // The same builder, built in memory, carries the same parts.
    let in_memory =
        Message::builder().from("zoe@example.com").to("bob@example.com").attach_file(&path).build().unwrap();
    let q = MessageParser::default().parse(in_memory.as_bytes()).unwrap();
    assert!(q.attachments().next().unwrap().contents() == big.as_slice());

    // Read gives the same bytes as the iterator.
    let mut read = Vec::new();
    Message::builder()
        .from("zoe@example.com")
        .to("bob@example.com")
        .attach_file(&path)
        .build_streamed()
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    let p = MessageParser::default().parse(&read).unwrap();
    assert!(p.attachments().next().unwrap().contents() == big.as_slice());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_changes_after_the_build_fails_the_stream() {
    let dir = dir("changes");
    let path = dir.join("log.bin");
    std::fs::write(&path, content(200_000, 3)).unwrap();
    let build = || {
        Message::builder()
            .from("a@example.com")
            .to("b@example.com")
            .attach_file(&path)
            .build_streamed()
            .unwrap()
    };
    let shrinks = build();
    std::fs::write(&path, content(100_000, 3)).unwrap();
    let err = collect(shrinks).unwrap_err();
    assert!(err.to_string().contains("log.bin") && err.to_string().contains("shrank"), "{err}");
    let grows = build();
    std::fs::write(&path, content(300_000, 3)).unwrap();
    let err = collect(grows).unwrap_err();
    assert!(err.to_string().contains("grew"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn streamed_attachments_meet_the_policy_before_they_are_read() {
    let dir = dir("policy");
    let huge = dir.join("huge.iso.pdf");
    std::fs::File::create(&huge).unwrap().set_len(200 << 30).unwrap();
    let base = || Message::builder().from("a@example.com").to("b@example.com");
    let err = base()
        .policy(AttachmentPolicy::default().max_attachment_size(25 << 20))
        .attach_file(&huge)
        .build_streamed();
    assert!(matches!(err, Err(MimeError::AttachmentTooLarge { .. })), "{err:?}");
    let err = base()
        .policy(AttachmentPolicy::default().max_message_size(1 << 30))
        .attach_file(&huge)
        .build_streamed();
    assert!(matches!(err, Err(MimeError::MessageTooLarge { .. })), "{err:?}");
    // A program disguised as a PDF, caught from its first octets.
    let mut exe = vec![0u8; 0x40];
    exe[..2].copy_from_slice(b"MZ");
    exe[0x3c] = 0x40;
    exe.extend_from_slice(b"PE\0\0");
    exe.resize(1 << 20, 0);
    let disguised = dir.join("invoice.pdf");
    std::fs::write(&disguised, &exe).unwrap();
    let err = base().attach_file(&disguised).build_streamed();
    assert!(
        matches!(err, Err(MimeError::AttachmentRefused { rule: PolicyRule::ExecutableContent { .. }, .. })),
        "{err:?}"
    );
    let err = base()
        .attach_reader("x.pdf", "application/pdf", std::io::Cursor::new(exe.clone()), exe.len() as u64)
        .build_streamed();
    assert!(matches!(err, Err(MimeError::AttachmentRefused { .. })), "{err:?}");
    // A reader attachment cannot be built in memory.
    let err = base().attach_reader("a.bin", "application/octet-stream", std::io::empty(), 0).build();
    assert!(matches!(err, Err(MimeError::NeedsStreaming(ref n)) if n == "a.bin"), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
