//! Why a message could not be composed.

use std::path::PathBuf;

use crate::{AddressError, EnvelopeError};

/// Why [`MessageBuilder::build`](super::MessageBuilder::build) refused a message.
///
/// Every variant is raised before a byte is serialised, let alone sent: a message either
/// builds completely and correctly or not at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// A header value, display name, filename or identifier holds a control byte (C0 or
    /// DEL). Passing it on could start a new header line, so it is refused.
    #[error("control byte 0x{byte:02x} at offset {offset} in {field}")]
    ControlByte {
        /// The header or item the byte was found in, e.g. `Subject`, `To display name`.
        field: String,
        /// The offending byte.
        byte: u8,
        /// Its offset in the value.
        offset: usize,
    },
    /// A custom header name is not an RFC 5322 field name.
    #[error("invalid header name {name:?}: {reason}")]
    HeaderName {
        /// The name as given (control bytes escaped by `Debug`).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A custom header would replace one the builder writes itself (From, Bcc, Date,
    /// Content-Type, ...); use the dedicated builder method.
    #[error("header {0:?} is set by the builder, not through header()")]
    ReservedHeader(String),
    /// A header value has a word too long to fit the 998-octet line limit of RFC 5322.
    #[error("header {name} has a word of {len} octets, which cannot be folded under 998 per line")]
    HeaderTooLong {
        /// The header.
        name: String,
        /// Length of its longest unbreakable part: a word with the run of spaces before it,
        /// and for the last word the spaces after it.
        len: usize,
    },
    /// An address in a header or the envelope is invalid.
    #[error("invalid address in {field}: {source}")]
    Address {
        /// Where the address was given (`From`, `To`, ...).
        field: &'static str,
        /// Why it was refused.
        source: AddressError,
    },
    /// A Message-ID, In-Reply-To, References or Content-ID value is malformed.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidId {
        /// Which identifier.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A domain (for generated Message-IDs) is invalid.
    #[error("invalid Message-ID domain: {0}")]
    Domain(AddressError),
    /// A content type is not `type/subtype` made of RFC 2045 tokens, or is multipart.
    #[error("invalid content type {value:?}: {reason}")]
    ContentType {
        /// The content type as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A content type parameter is refused: its name is not an RFC 2231 attribute token, is
    /// given twice, is `boundary` (the builder writes boundaries), or its value is too long.
    #[error("invalid content type parameter {name:?}: {reason}")]
    Parameter {
        /// The parameter name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A custom [`Part`](super::Part) cannot be written as given.
    #[error("invalid MIME part: {reason}")]
    InvalidPart {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`body`](super::MessageBuilder::body) replaces the text, HTML and inline parts, so it
    /// cannot be combined with them, with alternatives or with a calendar invitation.
    #[error("a custom body cannot be combined with {0}")]
    BodyConflict(&'static str),
    /// A calendar invitation is not an iCalendar object whose `METHOD` is the method given.
    #[error("invalid calendar invitation: {reason}")]
    Calendar {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `List-Unsubscribe` targets are invalid (RFC 2369, RFC 8058).
    #[error("invalid List-Unsubscribe: {reason}")]
    ListUnsubscribe {
        /// What is wrong.
        reason: &'static str,
    },
    /// Two inline parts share one Content-ID.
    #[error("Content-ID {0:?} is used twice")]
    DuplicateContentId(String),
    /// Inline images were added but there is no HTML body to refer to them.
    #[error("inline images need an HTML body that refers to them")]
    InlineWithoutHtml,
    /// An attachment filename is empty.
    #[error("an attachment needs a filename")]
    EmptyFilename,
    /// No From header was given; RFC 5322 section 3.6 requires one.
    #[error("a message needs a From address")]
    NoFrom,
    /// Neither To, Cc, Bcc nor an explicit envelope names a recipient.
    #[error("a message needs at least one recipient")]
    NoRecipients,
    /// The explicit envelope could not be built.
    #[error(transparent)]
    Envelope(EnvelopeError),
    /// One attachment is larger than the policy allows.
    #[error("attachment {name:?} is {size} octets, the limit is {max}")]
    AttachmentTooLarge {
        /// Filename or Content-ID of the attachment.
        name: String,
        /// Its size in octets (before transfer encoding).
        size: u64,
        /// The per-attachment limit.
        max: u64,
    },
    /// All attachments together are larger than the policy allows.
    #[error("attachments total {size} octets, the limit is {max}")]
    TotalTooLarge {
        /// Their total size in octets (before transfer encoding).
        size: u64,
        /// The total limit.
        max: u64,
    },
    /// An attachment's content type is denied, or not in the allowed list.
    #[error("attachment {name:?} has content type {content_type}, which the policy {why}")]
    ContentTypeRefused {
        /// Filename or Content-ID of the attachment.
        name: String,
        /// Its content type.
        content_type: String,
        /// `denies` or `does not allow`.
        why: &'static str,
    },
    /// The policy refused an attachment by its name or content (see [`PolicyRule`](super::PolicyRule)).
    #[error("attachment {name:?} is refused: {rule}")]
    AttachmentRefused {
        /// Filename or Content-ID of the attachment.
        name: String,
        /// The rule that refused it.
        rule: super::PolicyRule,
    },
    /// The serialised message (after transfer encoding) is larger than the policy allows.
    #[error("the encoded message is {size} octets or more, the limit is {max}")]
    MessageTooLarge {
        /// Its size, or a lower bound of it when refused before files were read.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A file given to [`attach_file`](super::MessageBuilder::attach_file) could not be read.
    #[error("cannot read attachment {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The serialised message has a line over 998 octets (RFC 5322 section 2.1.1), or a
    /// CR, LF or NUL outside a CRLF pair. The builder chooses encodings that prevent this;
    /// the final check makes sure a malformed message is never handed out.
    #[error("serialised message is malformed at line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl From<std::convert::Infallible> for MimeError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
