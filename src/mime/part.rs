//! [`Part`]: a MIME entity the caller builds, for trees the builder's
//! `mixed > related > alternative` layout does not cover: `multipart/report`, a forwarded
//! `message/rfc822`, a `multipart/signed` or `multipart/encrypted` wrapper, a calendar
//! alternative.

use std::{borrow::Cow, fmt};

use bytes::Bytes;
use mail_builder::{
    headers::raw::Raw,
    mime::{BodyPart, MimePart},
};

use super::{
    ContentType, Message, MimeError, encoding, envelope,
    header::{self, check_controls},
};

/// How deep parts may nest. RFC 2046 sets no limit; receivers do (mail-parser stops at a
/// few dozen levels), and a bound keeps the recursive conversion from exhausting the stack.
pub(crate) const MAX_DEPTH: usize = 32;

/// One MIME entity: a leaf with its content type and content, a multipart with children, or
/// a complete entity written verbatim.
///
/// Constructors never fail: an invalid argument is kept and reported by
/// [`MessageBuilder::build`](super::MessageBuilder::build), like the builder's setters.
///
/// - Text ([`Part::text`]) is UTF-8, line breaks sent as CRLF, `charset=utf-8` added to
///   `text/*` types that do not name one; mail-builder picks 7bit, quoted-printable or base64.
/// - Binary content ([`Part::binary`]) is base64 encoded, or quoted-printable for `text/*`.
/// - `message/*` content ([`Part::message`], [`Part::rfc822`], or `message/delivery-status`
///   in a report) is written as it is, `7bit` or `8bit`: RFC 2046 section 5.2.1 says of
///   `message/rfc822`, "No encoding other than "7bit", "8bit", or "binary" is permitted".
///   It must have CRLF line endings and lines of at most 998 octets.
/// - [`Part::entity`] is a complete entity, headers included, written byte for byte: the
///   content of a `multipart/signed` wrapper, whose signature covers those exact bytes.
///
/// ```
/// use smtpkit::{Message, mime::Part};
/// // A delivery status notification (RFC 3464) forwarding the original message.
/// let original = Message::builder().from("a@example.com").to("b@example.com").text_body("hi").build()?;
/// let report = Part::multipart(
///     "multipart/report; report-type=delivery-status",
///     [
///         Part::text("text/plain", "Your message could not be delivered."),
///         Part::text("message/delivery-status", "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; b@example.com\nAction: failed\nStatus: 5.1.1\n"),
///         Part::message(&original),
///     ],
/// );
/// let msg = Message::builder()
///     .from("mailer-daemon@example.com")
///     .to("a@example.com")
///     .subject("Undeliverable")
///     .body(report)
///     .build()?;
/// assert!(std::str::from_utf8(msg.as_bytes()).unwrap().contains("report-type=\"delivery-status\""));
/// # Ok::<(), smtpkit::mime::MimeError>(())
/// ```
pub struct Part {
    kind: Kind,
    content_type: Option<ContentType>,
    disposition: Option<Disposition>,
    content_id: Option<String>,
    headers: Vec<(String, String)>,
    error: Option<MimeError>,
}

enum Kind {
    Text(String),
    Binary(Bytes),
    Multipart(Vec<Part>),
    Entity(Bytes),
}

#[derive(Clone)]
enum Disposition {
    Inline,
    Attachment(String),
}

impl fmt::Debug for Part {
    /// The content type, disposition and size; never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Part");
        d.field("content_type", &self.content_type.as_ref().map(ContentType::to_string));
        match &self.kind {
            Kind::Text(t) => d.field("text_len", &t.len()),
            Kind::Binary(b) => d.field("len", &b.len()),
            Kind::Multipart(children) => d.field("parts", children),
            Kind::Entity(b) => d.field("entity_len", &b.len()),
        };
        if let Some(Disposition::Attachment(name)) = &self.disposition {
            d.field("filename", name);
        }
        d.field("error", &self.error).finish_non_exhaustive()
    }
}

/// Converts a content type argument, keeping the error for `build()`.
fn convert<C>(content_type: C) -> Result<ContentType, MimeError>
where
    C: TryInto<ContentType>,
    MimeError: From<C::Error>,
{
    content_type.try_into().map_err(MimeError::from)
}

impl Part {
    fn new(kind: Kind, content_type: Result<ContentType, MimeError>) -> Self {
        let (content_type, error) = match content_type {
            Ok(ct) => (Some(ct), None),
            Err(e) => (None, Some(e)),
        };
        Self { kind, content_type, disposition: None, content_id: None, headers: Vec::new(), error }
    }

    /// A text part: `text/plain`, `text/calendar; method=REQUEST`, `application/json`, ...
    /// The text is UTF-8: a `charset` other than `utf-8` or `us-ascii` is refused (use
    /// [`Part::binary`] for text already in another charset).
    pub fn text<C>(content_type: C, text: impl Into<String>) -> Self
    where
        C: TryInto<ContentType>,
        MimeError: From<C::Error>,
    {
        Self::new(Kind::Text(text.into()), convert(content_type))
    }

    /// A part holding `data` as given: base64 encoded, or quoted-printable for `text/*`.
    pub fn binary<C>(content_type: C, data: impl Into<Bytes>) -> Self
    where
        C: TryInto<ContentType>,
        MimeError: From<C::Error>,
    {
        Self::new(Kind::Binary(data.into()), convert(content_type))
    }

    /// A `multipart/*` part (`multipart/report; report-type=delivery-status`,
    /// `multipart/signed; protocol=...`) holding `parts`; the builder writes the boundary.
    /// RFC 2046 section 5.1.1: a multipart has one or more body parts.
    pub fn multipart<C>(content_type: C, parts: impl IntoIterator<Item = Part>) -> Self
    where
        C: TryInto<ContentType>,
        MimeError: From<C::Error>,
    {
        Self::new(Kind::Multipart(parts.into_iter().collect()), convert(content_type))
    }

    /// A `message/rfc822` part holding `message`, e.g. to forward it as an attachment. The
    /// forwarded message keeps its bytes (its `Bcc` was never serialised).
    pub fn message(message: &Message) -> Self {
        Self::rfc822(message.to_bytes())
    }

    /// A `message/rfc822` part holding a complete message (CRLF line endings, lines of at
    /// most 998 octets), e.g. one received earlier. A `Bcc` field in its header is removed.
    pub fn rfc822(message: impl Into<Bytes>) -> Self {
        let mut bytes: Bytes = message.into();
        let mut owned = bytes.to_vec();
        if envelope::strip_bcc(&mut owned) > 0 {
            bytes = Bytes::from(owned);
        }
        Self::new(Kind::Binary(bytes), ContentType::new("message/rfc822"))
    }

    /// A complete MIME entity, its header section, an empty line and its body, written byte
    /// for byte: what a caller signed for `multipart/signed` (RFC 1847 section 2.1).
    /// RFC 2046 section 5.1.1: "The CRLF preceding the boundary delimiter line is
    /// conceptually attached to the boundary", so the entity's last line break is part of
    /// its content. Content type, disposition and headers cannot be set on it.
    pub fn entity(bytes: impl Into<Bytes>) -> Self {
        Self::new(Kind::Entity(bytes.into()), ContentType::new("application/octet-stream"))
    }

    /// Marks the part as an attachment named `filename` (`Content-Disposition: attachment`).
    pub fn attachment(mut self, filename: impl Into<String>) -> Self {
        self.disposition = Some(Disposition::Attachment(filename.into()));
        self
    }

    /// Marks the part as shown inline (`Content-Disposition: inline`).
    pub fn inline(mut self) -> Self {
        self.disposition = Some(Disposition::Inline);
        self
    }

    /// Sets the part's `Content-ID` (with or without angle brackets).
    pub fn content_id(mut self, id: impl Into<String>) -> Self {
        self.content_id = Some(id.into());
        self
    }

    /// Adds a header to the part (`Content-Description`, `Content-Language`, ...). The name
    /// must not be one the builder writes (`Content-Type`, `Content-Disposition`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The content type (`None` for an [`entity`](Self::entity) or an invalid one).
    pub fn content_type(&self) -> Option<&ContentType> {
        match self.kind {
            Kind::Entity(_) => None,
            _ => self.content_type.as_ref(),
        }
    }

    /// The attachment filename, if [`attachment`](Self::attachment) set one.
    pub fn filename(&self) -> Option<&str> {
        match &self.disposition {
            Some(Disposition::Attachment(name)) => Some(name),
            _ => None,
        }
    }

    /// The content octets of a leaf part (text or binary), before transfer encoding.
    pub(crate) fn leaf_data(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Text(t) => Some(t.as_bytes()),
            Kind::Binary(b) => Some(b),
            Kind::Multipart(_) | Kind::Entity(_) => None,
        }
    }

    /// The first invalid argument given to this part or a part inside it, taken out so
    /// that `build()` can return it.
    pub(crate) fn take_error(&mut self) -> Option<MimeError> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        match &mut self.kind {
            Kind::Multipart(children) => children.iter_mut().find_map(Part::take_error),
            _ => None,
        }
    }

    /// Every leaf of this part, depth first (the part itself when it is a leaf).
    pub(crate) fn leaves(&self) -> Vec<&Part> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(part) = stack.pop() {
            match &part.kind {
                Kind::Multipart(children) => stack.extend(children.iter().rev()),
                _ => out.push(part),
            }
        }
        out
    }

    /// Validates the part and its children and converts them for mail-builder.
    pub(crate) fn to_mime(&self, depth: usize) -> Result<MimePart<'_>, MimeError> {
        if depth >= MAX_DEPTH {
            return Err(MimeError::InvalidPart { reason: "parts nest more than 32 levels deep" });
        }
        let ct = self.content_type.as_ref().ok_or(MimeError::InvalidPart { reason: "no content type" })?;
        let mut part = match &self.kind {
            Kind::Entity(bytes) => return self.entity_part(bytes),
            Kind::Multipart(children) => {
                if !ct.is_multipart() {
                    return Err(MimeError::InvalidPart {
                        reason: "Part::multipart needs a multipart/* type",
                    });
                }
                if children.is_empty() {
                    return Err(MimeError::InvalidPart { reason: "a multipart needs at least one part" });
                }
                let children =
                    children.iter().map(|c| c.to_mime(depth + 1)).collect::<Result<Vec<_>, _>>()?;
                MimePart::new(ct.to_header(), BodyPart::Multipart(children))
            }
            _ if ct.is_multipart() => {
                return Err(MimeError::InvalidPart { reason: "a multipart/* type needs Part::multipart" });
            }
            Kind::Text(text) if ct.top_level() == "message" => {
                verbatim_part(ct, Cow::Owned(encoding::normalize_crlf(text).into_owned().into_bytes()))?
            }
            Kind::Binary(data) if ct.top_level() == "message" => verbatim_part(ct, Cow::Borrowed(data))?,
            Kind::Text(text) => text_part(ct, text)?,
            Kind::Binary(data) => encoding::data_part(ct.to_header(), data),
        };
        match &self.disposition {
            Some(Disposition::Attachment(name)) => {
                if name.is_empty() {
                    return Err(MimeError::EmptyFilename);
                }
                check_controls(|| "attachment filename".to_owned(), name)?;
                part = part.attachment(name.as_str());
            }
            Some(Disposition::Inline) => part = part.inline(),
            None => {}
        }
        if let Some(id) = &self.content_id {
            part = part.cid(header::validate_content_id(id)?);
        }
        for (name, value) in &self.headers {
            header::validate_header_name(name)?;
            part = part.header(name.as_str(), header::header_value(name, value)?);
        }
        Ok(part)
    }

    fn entity_part<'a>(&self, bytes: &'a Bytes) -> Result<MimePart<'a>, MimeError> {
        if self.disposition.is_some() || self.content_id.is_some() || !self.headers.is_empty() {
            return Err(MimeError::InvalidPart { reason: "an entity carries its own headers" });
        }
        // A header section, then the empty line (RFC 2045 section 3: an entity is "header
        // fields and contents"); an entity without headers starts with the empty line.
        if !bytes.starts_with(b"\r\n") && memchr::memmem::find(bytes, b"\r\n\r\n").is_none() {
            return Err(MimeError::InvalidPart {
                reason: "an entity needs a header section and an empty line",
            });
        }
        check_lines(bytes)?;
        Ok(MimePart::raw(BodyPart::Binary(Cow::Borrowed(bytes))))
    }
}

/// A `text` part body: UTF-8, CRLF line breaks, `charset=utf-8` unless `us-ascii` is given.
fn text_part<'a>(ct: &'a ContentType, text: &'a str) -> Result<MimePart<'a>, MimeError> {
    if let Some(charset) = ct.param("charset") {
        if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("us-ascii") {
            return Err(MimeError::Parameter {
                name: "charset".to_owned(),
                reason: "Part::text holds UTF-8; use Part::binary for text in another charset",
            });
        }
        if charset.eq_ignore_ascii_case("us-ascii") && !text.is_ascii() {
            return Err(MimeError::Parameter {
                name: "charset".to_owned(),
                reason: "us-ascii text is not ASCII",
            });
        }
    }
    if !ct.is_text() {
        return Ok(encoding::text_part(ct.to_header(), Cow::Borrowed(text)));
    }
    let ct = ct.clone().with_default("charset", "utf-8").into_header();
    Ok(encoding::text_part(ct, encoding::normalize_crlf(text)))
}

/// A `message/*` body written as it is: RFC 2046 section 5.2.1 permits no other encoding
/// than 7bit, 8bit or binary, and binary needs BINARYMIME, so it is 7bit or 8bit.
fn verbatim_part<'a>(ct: &'a ContentType, data: Cow<'a, [u8]>) -> Result<MimePart<'a>, MimeError> {
    check_lines(&data)?;
    let cte = if data.is_ascii() { "7bit" } else { "8bit" };
    Ok(MimePart::new(ct.to_header(), BodyPart::Binary(data))
        .header("Content-Transfer-Encoding", Raw::new(cte)))
}

/// Verbatim content must already be wire-clean: CRLF line endings, no NUL, lines of at most
/// 998 octets (RFC 5322 section 2.1.1).
fn check_lines(data: &[u8]) -> Result<(), MimeError> {
    encoding::check_wire(data).map(|_| ()).map_err(|e| match e {
        MimeError::Malformed { reason, .. } => MimeError::InvalidPart { reason },
        other => other,
    })
}
