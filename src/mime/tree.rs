//! The MIME tree of a built message: `mixed > [related > [alternative > [text, calendar,
//! html, alternatives...], inline...], attachments...]`, each level present only when
//! needed, or the caller's own body in place of the related/alternative part.

use std::borrow::Cow;

use mail_builder::{
    headers::content_type::ContentType as MbContentType,
    mime::{BodyPart, MimePart},
};

use super::{MimeError, Part, encoding};

/// An attachment or inline image after validation, with its Content-ID or filename.
pub(crate) struct Prepared<'a> {
    pub(crate) name: &'a str,
    pub(crate) content_type: super::ContentType,
    pub(crate) data: bytes::Bytes,
}

/// What goes into the tree, all validated.
pub(crate) struct Tree<'a> {
    pub(crate) text: Option<Cow<'a, str>>,
    pub(crate) html: Option<Cow<'a, str>>,
    /// The caller's body, replacing text, HTML, alternatives and inline parts.
    pub(crate) custom: Option<&'a Part>,
    /// Alternatives after text and HTML; a calendar invitation's comes first of them.
    pub(crate) calendar: Option<&'a Part>,
    pub(crate) alternatives: &'a [Part],
    pub(crate) inline: &'a [Prepared<'a>],
    pub(crate) attachments: &'a [Prepared<'a>],
    /// Parts after the attachments in `multipart/mixed`: the calendar file, attached parts.
    pub(crate) extra: Vec<&'a Part>,
}

/// Depth of a custom part below the top of the tree (mixed > related > alternative).
const CUSTOM_DEPTH: usize = 3;

impl<'a> Tree<'a> {
    /// The body part of the message.
    pub(crate) fn build(mut self) -> Result<MimePart<'a>, MimeError> {
        let has_html = self.html.is_some();
        let mut body = match self.custom {
            Some(custom) => Some(custom.to_mime(1)?),
            None => self.alternative()?,
        };
        if !self.inline.is_empty() {
            let Some(root) = body.take().filter(|_| has_html && self.custom.is_none()) else {
                return Err(MimeError::InlineWithoutHtml);
            };
            // RFC 2387 section 3.1: "The type parameter must be specified and its value is
            // the MIME media type of the "root" body part."
            let root_type = match &root.contents {
                BodyPart::Multipart(_) => "multipart/alternative",
                _ => "text/html",
            };
            let mut parts = vec![root];
            for item in self.inline {
                parts.push(
                    encoding::data_part(item.content_type.to_header(), &item.data).inline().cid(item.name),
                );
            }
            let related = MbContentType::new("multipart/related").attribute("type", root_type);
            body = Some(MimePart::new(related, BodyPart::Multipart(parts)));
        }
        if self.attachments.is_empty() && self.extra.is_empty() {
            return Ok(body.unwrap_or_else(|| encoding::utf8_text_part("text/plain", Cow::Borrowed(""))));
        }
        let mut parts: Vec<MimePart<'a>> = body.into_iter().collect();
        for item in self.attachments {
            parts.push(encoding::data_part(item.content_type.to_header(), &item.data).attachment(item.name));
        }
        for part in self.extra {
            parts.push(part.to_mime(1)?);
        }
        Ok(MimePart::new("multipart/mixed", parts))
    }

    /// Text, calendar, HTML and further alternatives, as `multipart/alternative` when
    /// there are two or more. RFC 2046 section 5.1.4: "the alternatives appear in an order of
    /// increasing faithfulness to the original content"; the calendar goes before the HTML
    /// (as Nodemailer puts it), so HTML-capable clients show the HTML and calendar-aware
    /// ones find the invitation.
    fn alternative(&mut self) -> Result<Option<MimePart<'a>>, MimeError> {
        let mut parts = Vec::new();
        if let Some(text) = self.text.take() {
            parts.push(encoding::utf8_text_part("text/plain", text));
        }
        if let Some(calendar) = self.calendar {
            parts.push(calendar.to_mime(CUSTOM_DEPTH)?);
        }
        if let Some(html) = self.html.take() {
            parts.push(encoding::utf8_text_part("text/html", html));
        }
        for part in self.alternatives {
            parts.push(part.to_mime(CUSTOM_DEPTH)?);
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(MimePart::new("multipart/alternative", parts)),
        })
    }
}
