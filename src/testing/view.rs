//! What a person would read in a captured message: decoded headers, addresses, the text
//! and HTML bodies, and the attachments, so tests assert on mail without a MIME parser
//! of their own.
//!
//! Parsing is mail-parser's (RFC 5322 headers, RFC 2047 encoded words, RFC 2231
//! parameters, MIME trees, base64 and quoted-printable, charsets). Every accessor parses
//! [`ReceivedMessage::data`] afresh: the record stays plain data that is cheap to clone
//! and compare, and tests rarely read the same message twice.

use std::fmt;
use std::time::{Duration, SystemTime};

use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};

use super::record::ReceivedMessage;

/// One mailbox of an address header (`From`, `To`, `Cc`, `Reply-To`...), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mailbox {
    /// The display name as text (`Zoë Chen`, not `=?utf-8?q?Zo=C3=AB?= Chen`), if any.
    pub name: Option<String>,
    /// The address (`zoe@example.com`); empty when the header names a group or a bare
    /// display name without one.
    pub address: String,
}

impl fmt::Display for Mailbox {
    /// `Name <address>`, or the address alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.address),
            None => f.write_str(&self.address),
        }
    }
}

/// One attachment (or inline part with a file name or content id) of a captured message,
/// decoded from its transfer encoding.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attachment {
    /// The file name (`报告.pdf`), decoded from RFC 2231 or RFC 2047 form, if the part
    /// names one.
    pub file_name: Option<String>,
    /// The content type without parameters, lower case (`application/pdf`);
    /// `application/octet-stream` when the part declares none.
    pub content_type: String,
    /// `Content-Disposition: inline`.
    pub inline: bool,
    /// The `Content-ID` without angle brackets, if any (what `cid:` URLs point at).
    pub content_id: Option<String>,
    /// The decoded content.
    pub content: Vec<u8>,
}

impl Attachment {
    /// Size of the decoded content in octets.
    pub fn size(&self) -> usize {
        self.content.len()
    }
}

impl fmt::Debug for Attachment {
    // The content can be megabytes of binary: show its size instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("inline", &self.inline)
            .field("content_id", &self.content_id)
            .field("size", &self.size())
            .finish()
    }
}

impl ReceivedMessage {
    fn parsed(&self) -> Option<Message<'_>> {
        parser().parse(&self.data)
    }

    /// The `Subject` as text: encoded words decoded and the field unfolded.
    ///
    /// ```
    /// # use smtpkit::testing::ReceivedMessage;
    /// # fn check(msg: &ReceivedMessage) {
    /// // On the wire: `Subject: =?utf-8?b?5pyI5bqm5oql5ZGK?=`
    /// assert_eq!(msg.subject().as_deref(), Some("月度报告"));
    /// # }
    /// ```
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// The first header field called `name` (case-insensitive) as a person reads it:
    /// unstructured text with its encoded words decoded, an address list as
    /// `Name <address>, ...`, a date in RFC 3339 form; any other structured field as
    /// [`header`](Self::header) gives it. `None` without such a field.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        let message = self.parsed()?;
        let value = message.header(name)?;
        let text = match value {
            HeaderValue::Text(text) => text.to_string(),
            HeaderValue::TextList(list) => list.join(", "),
            HeaderValue::Address(address) => {
                mailboxes(address).iter().map(Mailbox::to_string).collect::<Vec<_>>().join(", ")
            }
            HeaderValue::DateTime(date) => date.to_rfc3339(),
            _ => return self.header(name),
        };
        Some(text)
    }

    /// The mailboxes of `From`.
    pub fn from(&self) -> Vec<Mailbox> {
        self.parsed().and_then(|m| m.from().map(mailboxes)).unwrap_or_default()
    }

    /// The mailboxes of `To`.
    pub fn to(&self) -> Vec<Mailbox> {
        self.parsed().and_then(|m| m.to().map(mailboxes)).unwrap_or_default()
    }

    /// The mailboxes of `Cc`.
    pub fn cc(&self) -> Vec<Mailbox> {
        self.parsed().and_then(|m| m.cc().map(mailboxes)).unwrap_or_default()
    }

    /// The mailboxes of `Reply-To`.
    pub fn reply_to(&self) -> Vec<Mailbox> {
        self.parsed().and_then(|m| m.reply_to().map(mailboxes)).unwrap_or_default()
    }

    /// The `Date` as a point in time; `None` without one, or when it does not parse or
    /// lies before 1970.
    pub fn date(&self) -> Option<SystemTime> {
        let seconds = u64::try_from(self.parsed()?.date()?.to_timestamp()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }

    /// The `Message-ID` without angle brackets.
    pub fn message_id(&self) -> Option<String> {
        self.parsed()?.message_id().map(str::to_owned)
    }

    /// The first plain-text body, decoded to text (transfer encoding and charset); for an
    /// HTML-only message, mail-parser's text rendering of the HTML.
    pub fn text_body(&self) -> Option<String> {
        self.parsed()?.body_text(0).map(|text| text.into_owned())
    }

    /// The first HTML body, decoded to text; for a text-only message, mail-parser's HTML
    /// rendering of the text.
    pub fn html_body(&self) -> Option<String> {
        self.parsed()?.body_html(0).map(|html| html.into_owned())
    }

    /// The attachments and inline parts (images referenced by `cid:`, for example), in
    /// message order, each with its file name, content type and decoded content.
    ///
    /// ```
    /// # use smtpkit::testing::ReceivedMessage;
    /// # fn check(msg: &ReceivedMessage) {
    /// let files = msg.attachments();
    /// assert_eq!(files[0].file_name.as_deref(), Some("报告.pdf"));
    /// assert_eq!(files[0].content_type, "application/pdf");
    /// assert_eq!(files[0].size(), 48_213);
    /// # }
    /// ```
    pub fn attachments(&self) -> Vec<Attachment> {
        let Some(message) = self.parsed() else { return Vec::new() };
        message
            .attachments()
            .map(|part| {
                let content_type = part.content_type().map_or_else(
                    || "application/octet-stream".to_owned(),
                    |ct| match ct.subtype() {
                        Some(sub) => format!("{}/{sub}", ct.ctype()).to_ascii_lowercase(),
                        None => ct.ctype().to_ascii_lowercase(),
                    },
                );
                let inline =
                    part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
                Attachment {
                    file_name: part.attachment_name().map(str::to_owned),
                    content_type,
                    inline,
                    content_id: part.content_id().map(str::to_owned),
                    content: part.contents().to_vec(),
                }
            })
            .collect()
    }
}

/// mail-parser's usual field parsers, plus unknown fields (`X-...`) as unstructured text,
/// so their encoded words are decoded too. (Asking for a default parser switches off the
/// built-in table, so the standard fields are named again.)
fn parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .with_date_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_comma_separated(HeaderName::Keywords)
        .header_comma_separated(HeaderName::ContentLanguage)
        .header_received(HeaderName::Received)
        .header_raw(HeaderName::MimeVersion)
        .header_id(HeaderName::ReturnPath)
        .default_header_text()
}

fn mailboxes(address: &Address<'_>) -> Vec<Mailbox> {
    address
        .iter()
        .map(|a| Mailbox {
            name: a.name().map(str::to_owned),
            address: a.address().unwrap_or_default().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(data: &str) -> ReceivedMessage {
        ReceivedMessage {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            rcpt_params: Vec::new(),
            mail_params: Vec::new(),
            data: data.replace('\n', "\r\n").into_bytes(),
            tls: false,
            authenticated_as: None,
            authenticated_with: None,
            via_bdat: false,
            connection: 0,
            queue_id: "TS000001".into(),
            committed: true,
        }
    }

    #[test]
    fn encoded_words_and_addresses_are_decoded() {
        let m = msg("From: =?utf-8?q?Zo=C3=AB?= Chen <zoe@example.com>\n\
             To: a@example.com, \"B, Bee\" <b@example.com>\n\
             Subject: =?utf-8?b?5pyI5bqm5oql5ZGK?= =?utf-8?q?_=E2=80=94_Q4?=\n\
             X-Note: =?iso-8859-1?q?caf=E9?= =?utf-8?q?_na=C3=AFve?=\n\
             Date: Fri, 04 Dec 2026 19:00:00 +0000\n\
             Message-ID: <abc@example.com>\n\n\
             Hello\n");
        assert_eq!(m.subject().as_deref(), Some("月度报告 — Q4"));
        assert_eq!(
            m.header("subject").as_deref(),
            Some("=?utf-8?b?5pyI5bqm5oql5ZGK?= =?utf-8?q?_=E2=80=94_Q4?=")
        );
        assert_eq!(m.decoded_header("x-note").as_deref(), Some("café naïve"));
        assert_eq!(m.decoded_header("from").as_deref(), Some("Zoë Chen <zoe@example.com>"));
        assert_eq!(m.from(), [Mailbox { name: Some("Zoë Chen".into()), address: "zoe@example.com".into() }]);
        let to: Vec<String> = m.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["a@example.com", "B, Bee <b@example.com>"]);
        assert!(m.cc().is_empty());
        assert_eq!(m.date(), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_410_800)));
        assert_eq!(m.message_id().as_deref(), Some("abc@example.com"));
        assert_eq!(m.text_body().as_deref(), Some("Hello\r\n"));
        assert!(m.attachments().is_empty());
    }

    #[test]
    fn attachments_have_names_types_and_decoded_sizes() {
        let m = msg("Subject: files\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b\"\n\n\
             --b\nContent-Type: text/plain; charset=utf-8\n\nSee attached.\n\
             --b\nContent-Type: application/pdf\n\
             Content-Disposition: attachment; filename*=utf-8''%E6%8A%A5%E5%91%8A.pdf\n\
             Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n\
             --b\nContent-Type: image/PNG\nContent-Disposition: inline\nContent-ID: <logo@x>\n\
             Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n\
             --b--\n");
        let files = m.attachments();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].file_name.as_deref(), Some("报告.pdf"));
        assert_eq!(files[0].content_type, "application/pdf");
        assert_eq!((files[0].size(), &files[0].content[..]), (9, &b"%PDF-1.4\n"[..]));
        assert!(!files[0].inline);
        assert_eq!(files[1].content_type, "image/png");
        assert!(files[1].inline);
        assert_eq!(files[1].content_id.as_deref(), Some("logo@x"));
        assert_eq!(files[1].size(), 8);
        assert_eq!(m.text_body().as_deref(), Some("See attached."));
        assert!(format!("{:?}", files[0]).contains("size: 9"));
    }

    #[test]
    fn unparsable_or_missing_parts_are_none() {
        let m = msg("no header here\n");
        assert_eq!(m.subject(), None);
        assert!(m.from().is_empty());
        assert_eq!(m.date(), None);
        assert_eq!(m.decoded_header("x-missing"), None);
    }
}
