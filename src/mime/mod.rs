//! MIME composition: [`Message`] and its [`MessageBuilder`], on the `mail-builder` crate.
//!
//! mail-builder does the serialisation (RFC 2047 headers, RFC 2231 parameters,
//! quoted-printable and base64, folding). This module covers what it gets wrong or leaves
//! out:
//!
//! - **Bcc is never transmitted.** Bcc recipients go into the [`Envelope`] only, and every
//!   serialised message is scanned for a `Bcc:` field, which is removed.
//! - **Caller input cannot inject headers.** Header names, values, display names,
//!   filenames, identifiers and content types are validated; a control byte is a
//!   [`MimeError::ControlByte`] naming the field and the byte, never a new line.
//! - **Inline images are `multipart/related`**, with the bodies as root, inside
//!   `multipart/mixed` when there are attachments:
//!   `mixed > [related > [alternative > [text, html], images...], attachments...]`.
//! - **No 8-bit body, no long line.** Bodies are 7bit, quoted-printable or base64; text
//!   with NUL or stray CR/LF is base64 encoded; every line is checked to be at most 998
//!   octets. Only non-ASCII *addresses* make a message need `SMTPUTF8` (and so 8BITMIME).
//! - **Envelope derivation**: from `Sender` or `From`, to To + Cc + Bcc, de-duplicated;
//!   an explicit envelope overrides.
//! - **Attachment policy**: sizes (checked before any file is read), types by pattern, and by
//!   default a mail provider's rules: no programs or scripts by content, extension or
//!   declared type, no disguised names, no type the content contradicts.
//!
//! ```
//! use smtpkit::{Message, mime::AttachmentPolicy};
//! # let png: &[u8] = b"\x89PNG\r\n\x1a\n";
//! let msg = Message::builder()
//!     .from(("Zoë Example", "zoe@example.com"))
//!     .to("bob@example.com")
//!     .subject("Grüße from smtpkit ✓")
//!     .text_body("Hello!")
//!     .html_body("<p>Hello!</p><img src=\"cid:logo\">")
//!     .inline_image("logo", "image/png", png)
//!     .attachment("résumé.txt", "text/plain", "CV\n")
//!     .header("X-Campaign", "spring")
//!     .message_id_domain("example.com")
//!     .policy(AttachmentPolicy::default().max_total_size(10 << 20))
//!     .build()?;
//! assert!(msg.message_id().ends_with("@example.com"));
//! assert!(!msg.needs_smtputf8());
//! # Ok::<(), smtpkit::mime::MimeError>(())
//! ```

mod builder;
mod calendar;
pub mod content_type;
mod encoding;
mod envelope;
mod error;
mod header;
mod mailbox;
mod part;
mod policy;
mod sniff;
mod tree;
mod unsubscribe;

use std::fmt;

use bytes::Bytes;

pub use builder::MessageBuilder;
pub use calendar::Calendar;
pub use content_type::ContentType;
pub use error::MimeError;
pub use mailbox::Mailbox;
pub use part::Part;
pub use policy::{AttachmentPolicy, PolicyRule};

use crate::Envelope;

/// A composed message: its serialised bytes (CRLF line endings, no `Bcc:`) and the
/// envelope to send it with.
///
/// Cloning is cheap: the bytes are shared.
#[derive(Clone)]
pub struct Message {
    bytes: Bytes,
    envelope: Envelope,
    message_id: String,
    headers_utf8: bool,
    eight_bit: bool,
}

impl Message {
    /// Starts building a message.
    pub fn builder() -> MessageBuilder {
        MessageBuilder::default()
    }

    /// `eight_bit`: whether any octet is 8-bit (found by the wire check).
    pub(crate) fn new(bytes: Bytes, envelope: Envelope, message_id: String, eight_bit: bool) -> Self {
        let headers_utf8 =
            eight_bit && crate::proto::header_scan::first_non_ascii_header_octet(&bytes).is_some();
        Self { bytes, envelope, message_id, headers_utf8, eight_bit }
    }

    /// The same message with a signature header in front (DKIM): the DKIM-Signature field
    /// is ASCII, so the 8-bit and SMTPUTF8 needs are unchanged.
    #[cfg(feature = "dkim")]
    pub(crate) fn with_signed_bytes(mut self, bytes: Bytes) -> Self {
        self.bytes = bytes;
        self
    }

    /// The envelope: derived from the headers, or the one given to
    /// [`MessageBuilder::envelope`] or [`with_envelope`](Self::with_envelope).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The same message with another envelope, e.g. to send one message to recipients
    /// in batches.
    pub fn with_envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = envelope;
        self
    }

    /// The serialised message, as it goes into `DATA` before dot-stuffing: header,
    /// empty line, body, CRLF line endings, no `Bcc:` field.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The serialised message as shared [`Bytes`] (no copy).
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The size in octets, for the `SIZE=` parameter of `MAIL FROM` (RFC 1870).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a message has at least a header. Present for symmetry with
    /// [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The `Message-ID`, without angle brackets.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// True when the message holds 8-bit octets, so it must be sent with
    /// `BODY=8BITMIME` (RFC 6152) to a server that offers `8BITMIME`. Bodies are always
    /// 7-bit encoded, so this is true only when a header holds UTF-8 (a non-ASCII
    /// address), which also makes [`needs_smtputf8`](Self::needs_smtputf8) true.
    pub fn needs_8bitmime(&self) -> bool {
        self.eight_bit
    }

    /// True when the envelope or a header holds a non-ASCII address, so the message may
    /// go only to a server that offers `SMTPUTF8` (RFC 6531), with the `SMTPUTF8`
    /// parameter on `MAIL FROM`. Display names and subjects are RFC 2047 encoded and
    /// never need it.
    pub fn needs_smtputf8(&self) -> bool {
        self.headers_utf8 || self.envelope.needs_smtputf8()
    }
}

impl fmt::Debug for Message {
    /// The identifier, envelope and size; never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("message_id", &self.message_id)
            .field("envelope", &self.envelope)
            .field("len", &self.bytes.len())
            .field("needs_8bitmime", &self.eight_bit)
            .field("needs_smtputf8", &self.needs_smtputf8())
            .finish()
    }
}

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}
