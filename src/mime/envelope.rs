//! The SMTP envelope of a message, derived from its headers, and the removal of `Bcc`.
//!
//! RFC 5322 section 3.6.3: "The "Bcc:" field (where the "Bcc" means "Blind Carbon Copy")
//! contains addresses of recipients of the message whose addresses are not to be revealed
//! to other recipients of the message." Bcc recipients therefore go into the envelope
//! (`RCPT TO`) and never into the transmitted header.

use super::{Mailbox, MimeError};
use crate::{Envelope, EnvelopeError};

/// The envelope for a message: the reverse-path is `Sender` when set, otherwise `From`
/// (RFC 5322 section 3.6.2: the sender field "specifies the mailbox of the agent
/// responsible for the actual transmission"); the recipients are To, Cc and Bcc in that
/// order, de-duplicated by [`Envelope::new`].
pub(crate) fn derive(
    from: &Mailbox,
    sender: Option<&Mailbox>,
    to: &[Mailbox],
    cc: &[Mailbox],
    bcc: &[Mailbox],
) -> Result<Envelope, MimeError> {
    let reverse_path = sender.unwrap_or(from).address().clone();
    let recipients = to.iter().chain(cc).chain(bcc).map(|m| m.address().clone()).collect();
    Envelope::new(Some(reverse_path), recipients).map_err(|e| match e {
        EnvelopeError::NoRecipients => MimeError::NoRecipients,
        other => MimeError::Envelope(other),
    })
}

/// Removes every `Bcc` field, with its folded continuation lines, from the header section
/// of `message` (everything before the first empty line). Returns how many were removed.
///
/// The builder never hands Bcc to mail-builder, which would write it; this is the second
/// line of defence, run on every serialised message so that no code path can leak blind
/// copies.
pub(crate) fn strip_bcc(message: &mut Vec<u8>) -> usize {
    let header_end = memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let mut removed = 0;
    let mut kept = Vec::new();
    let mut pos = 0;
    let mut dropping = false;
    while pos < header_end {
        let line_end =
            memchr::memmem::find(&message[pos..header_end], b"\r\n").map_or(header_end, |i| pos + i + 2);
        let line = &message[pos..line_end];
        // RFC 5322 section 2.2.3: a folded field continues on lines that begin with WSP.
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = line.len() > 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
            removed += usize::from(dropping);
        }
        if !dropping {
            kept.extend_from_slice(line);
        }
        pos = line_end;
    }
    if removed > 0 {
        kept.extend_from_slice(&message[header_end..]);
        *message = kept;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn derives_sender_and_deduplicated_recipients() {
        let env = derive(
            &mb("Zoë <zoe@example.com>"),
            None,
            &[mb("a@x.y"), mb("b@x.y")],
            &[mb("A@X.y"), mb("a@X.Y")],
            &[mb("c@x.y"), mb("b@x.y")],
        )
        .unwrap();
        assert_eq!(env.from().unwrap().as_str(), "zoe@example.com");
        let to: Vec<_> = env.to().iter().map(|a| a.as_str()).collect();
        assert_eq!(to, ["a@x.y", "b@x.y", "A@X.y", "c@x.y"]);

        let env =
            derive(&mb("zoe@example.com"), Some(&mb("bot@example.com")), &[], &[], &[mb("c@x.y")]).unwrap();
        assert_eq!(env.from().unwrap().as_str(), "bot@example.com");
        assert!(matches!(derive(&mb("z@x.y"), None, &[], &[], &[]), Err(MimeError::NoRecipients)));
    }

    #[test]
    fn strips_bcc_fields_with_continuations() {
        let mut m = b"From: a@b\r\nBcc: <x@y>,\r\n <z@w>\r\nbCC:q@r\r\nSubject: Bcc: not a field\r\n\r\nBcc: body stays\r\n"
            .to_vec();
        assert_eq!(strip_bcc(&mut m), 2);
        assert_eq!(m, b"From: a@b\r\nSubject: Bcc: not a field\r\n\r\nBcc: body stays\r\n");
        let mut clean = b"From: a@b\r\nX-Bcc: kept\r\n\r\nbody".to_vec();
        assert_eq!(strip_bcc(&mut clean), 0);
        assert_eq!(clean, b"From: a@b\r\nX-Bcc: kept\r\n\r\nbody");
    }

    #[test]
    fn strips_what_mail_builder_writes() {
        // mail-builder writes Bcc when asked to: the reason this module exists.
        let mut raw = mail_builder::MessageBuilder::new()
            .from("a@example.com")
            .to("b@example.com")
            .bcc(vec![("Hidden Name", "hidden@example.com"), ("Other", "other@example.com")])
            .subject("s")
            .text_body("hello")
            .write_to_vec()
            .unwrap();
        assert!(memchr::memmem::find(&raw, b"hidden@example.com").is_some());
        assert_eq!(strip_bcc(&mut raw), 1);
        assert!(memchr::memmem::find(&raw, b"hidden@example.com").is_none());
        assert!(memchr::memmem::find(&raw, b"other@example.com").is_none());
        assert!(memchr::memmem::find(&raw, b"b@example.com").is_some());
    }
}
