//! [`MessageBuilder`]: collects headers, bodies and attachments, validates them and
//! serialises the message through mail-builder.

use std::{
    borrow::Cow,
    fmt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use mail_builder::{
    headers::{HeaderType, address::Address as MbAddress, date::Date, message_id::MessageId},
    mime::make_boundary,
};

use super::{
    AttachmentPolicy, Calendar, Mailbox, Message, MimeError, Part, content_type, encoding, envelope,
    header::{self, check_controls},
    policy,
    tree::{Prepared, Tree},
    unsubscribe::Unsubscribe,
};
use crate::Envelope;

/// Builds a [`Message`]. Create one with [`Message::builder`].
///
/// Setters never fail: an invalid value is remembered and reported by
/// [`build`](Self::build), which validates everything before serialising anything.
///
/// ```
/// use smtpkit::Message;
/// let msg = Message::builder()
///     .from(("Zoë Example", "zoe@example.com"))
///     .to("bob@example.com")
///     .bcc("audit@example.com")
///     .subject("Grüße from smtpkit ✓")
///     .text_body("Hello Bob")
///     .html_body("<p>Hello <b>Bob</b></p>")
///     .build()?;
/// assert_eq!(msg.envelope().to().len(), 2);
/// assert!(!msg.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"bcc:")));
/// assert!(!msg.needs_8bitmime());
/// # Ok::<(), smtpkit::mime::MimeError>(())
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until build() is called"]
pub struct MessageBuilder {
    error: Option<MimeError>,
    from: Option<Mailbox>,
    sender: Option<Mailbox>,
    reply_to: Vec<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    subject: Option<String>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    headers: Vec<(String, String)>,
    message_id: Option<String>,
    message_id_domain: Option<String>,
    date: Option<SystemTime>,
    text: Option<String>,
    html: Option<String>,
    inline: Vec<Inline>,
    attachments: Vec<Attachment>,
    policy: AttachmentPolicy,
    envelope: Option<Envelope>,
    body: Option<Part>,
    alternatives: Vec<Part>,
    parts: Vec<Part>,
    calendar: Option<Calendar>,
    unsubscribe: Unsubscribe,
}

struct Inline {
    content_id: String,
    content_type: String,
    data: Bytes,
}

struct Attachment {
    filename: String,
    content_type: Option<String>,
    source: Source,
}

enum Source {
    Bytes(Bytes),
    File(PathBuf),
}

impl fmt::Debug for MessageBuilder {
    /// Addresses, subject and the sizes of bodies and attachments; never their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes = |items: &[Attachment]| -> Vec<String> {
            items
                .iter()
                .map(|a| match &a.source {
                    Source::Bytes(b) => format!("{:?} ({} octets)", a.filename, b.len()),
                    Source::File(p) => format!("{:?} (file {})", a.filename, p.display()),
                })
                .collect()
        };
        f.debug_struct("MessageBuilder")
            .field("from", &self.from)
            .field("sender", &self.sender)
            .field("to", &self.to)
            .field("cc", &self.cc)
            .field("bcc", &self.bcc)
            .field("subject", &self.subject)
            .field("text_len", &self.text.as_ref().map(String::len))
            .field("html_len", &self.html.as_ref().map(String::len))
            .field("inline", &self.inline.iter().map(|i| (&i.content_id, i.data.len())).collect::<Vec<_>>())
            .field("attachments", &sizes(&self.attachments))
            .field("body", &self.body)
            .field("alternatives", &self.alternatives)
            .field("parts", &self.parts)
            .field("calendar", &self.calendar)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl MessageBuilder {
    /// Converts a mailbox argument, keeping the first error for `build()`.
    fn mailbox<M>(&mut self, field: &'static str, mailbox: M) -> Option<Mailbox>
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        match Mailbox::for_field(field, mailbox.try_into().map_err(MimeError::from)) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Converts a mailbox argument and appends it to the list `list` selects.
    fn push<M>(mut self, field: &'static str, mailbox: M, list: fn(&mut Self) -> &mut Vec<Mailbox>) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        if let Some(m) = self.mailbox(field, mailbox) {
            list(&mut self).push(m);
        }
        self
    }

    /// Sets the author (`From`). Accepts `"a@b.c"`, `"Name <a@b.c>"`, `("Name", "a@b.c")`,
    /// an [`Address`](crate::Address) or a [`Mailbox`]. Required.
    pub fn from<M>(mut self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.from = self.mailbox("From", mailbox);
        self
    }

    /// Sets `Sender`, the mailbox responsible for transmission when it differs from the
    /// author. It becomes the envelope sender.
    pub fn sender<M>(mut self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.sender = self.mailbox("Sender", mailbox);
        self
    }

    /// Adds a `Reply-To` mailbox.
    pub fn reply_to<M>(self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.push("Reply-To", mailbox, |b| &mut b.reply_to)
    }

    /// Adds a `To` recipient.
    pub fn to<M>(self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.push("To", mailbox, |b| &mut b.to)
    }

    /// Adds a `Cc` recipient.
    pub fn cc<M>(self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.push("Cc", mailbox, |b| &mut b.cc)
    }

    /// Adds a blind recipient: in the envelope, never in the transmitted message.
    pub fn bcc<M>(self, mailbox: M) -> Self
    where
        M: TryInto<Mailbox>,
        MimeError: From<M::Error>,
    {
        self.push("Bcc", mailbox, |b| &mut b.bcc)
    }

    /// Sets the subject; non-ASCII text is RFC 2047 encoded.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Adds an `In-Reply-To` identifier (with or without angle brackets).
    pub fn in_reply_to(mut self, message_id: impl Into<String>) -> Self {
        self.in_reply_to.push(message_id.into());
        self
    }

    /// Adds a `References` identifier (with or without angle brackets).
    pub fn references(mut self, message_id: impl Into<String>) -> Self {
        self.references.push(message_id.into());
        self
    }

    /// Adds a custom header. The name must be an RFC 5322 field name and not one the
    /// builder writes itself; the value must hold no control byte. ASCII values are sent
    /// as they are, folded at whitespace (a word, with the spaces before it, too long to
    /// fold within 998 octets is [`MimeError::HeaderTooLong`]), so structured values such
    /// as `<https://...>` stay intact; non-ASCII values are RFC 2047 encoded.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a `mailto:` target to `List-Unsubscribe` (RFC 2369): an address, optionally
    /// with `?subject=...` (percent-encoded), with or without the `mailto:` prefix.
    ///
    /// ```
    /// use smtpkit::Message;
    /// let msg = Message::builder()
    ///     .from("news@example.com")
    ///     .to("reader@example.org")
    ///     .list_unsubscribe_mailto("unsubscribe@example.com?subject=reader%40example.org")
    ///     .list_unsubscribe_url("https://example.com/unsubscribe/3f9a")
    ///     .list_unsubscribe_one_click()
    ///     .text_body("News")
    ///     .build()?;
    /// let text = std::str::from_utf8(msg.as_bytes()).unwrap();
    /// assert!(text.contains("List-Unsubscribe: <mailto:unsubscribe@example.com?subject=reader%40example.org>,\r\n <https://example.com/unsubscribe/3f9a>\r\n"));
    /// assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    /// # Ok::<(), smtpkit::mime::MimeError>(())
    /// ```
    pub fn list_unsubscribe_mailto(mut self, target: impl Into<String>) -> Self {
        self.unsubscribe.mailto = Some(target.into());
        self
    }

    /// Adds an `http`/`https` URL to `List-Unsubscribe` (RFC 2369); it must be
    /// percent-encoded printable ASCII.
    pub fn list_unsubscribe_url(mut self, url: impl Into<String>) -> Self {
        self.unsubscribe.url = Some(url.into());
        self
    }

    /// Adds `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): mail clients
    /// unsubscribe with one POST to the `https` URL given to
    /// [`list_unsubscribe_url`](Self::list_unsubscribe_url), which is required. RFC 8058
    /// section 4 requires a DKIM signature covering both fields; the
    /// [`DkimSigner`](crate::dkim::DkimSigner)'s default header list does.
    pub fn list_unsubscribe_one_click(mut self) -> Self {
        self.unsubscribe.one_click = true;
        self
    }

    /// Sets the `Message-ID` (with or without angle brackets) instead of generating one.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// The domain of the generated `Message-ID`; by default the domain of `From`.
    pub fn message_id_domain(mut self, domain: impl Into<String>) -> Self {
        self.message_id_domain = Some(domain.into());
        self
    }

    /// Sets the `Date` instead of the time of [`build`](Self::build).
    pub fn date(mut self, date: SystemTime) -> Self {
        self.date = Some(date);
        self
    }

    /// Sets the plain-text body. Line breaks may be `\n`; they are sent as CRLF.
    pub fn text_body(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the HTML body; with a text body too, both are sent as `multipart/alternative`.
    pub fn html_body(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Adds an image (or other part) shown inside the HTML body, which refers to it as
    /// `cid:<content_id>`. Inline parts are sent in `multipart/related` with the bodies.
    pub fn inline_image(
        mut self,
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.inline.push(Inline {
            content_id: content_id.into(),
            content_type: content_type.into(),
            data: data.into(),
        });
        self
    }

    /// Adds an attachment from memory. Non-ASCII filenames are sent as RFC 2231
    /// parameters.
    pub fn attachment(
        mut self,
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.attachments.push(Attachment {
            filename: filename.into(),
            content_type: Some(content_type.into()),
            source: Source::Bytes(data.into()),
        });
        self
    }

    /// Adds a file as an attachment, named after the file (its name converted to UTF-8,
    /// lossily if it is not), with the content type of its
    /// extension ([`content_type::for_path`](super::content_type::for_path)). The file is
    /// read by [`build`](Self::build), after its size has been checked against the policy.
    pub fn attach_file(self, path: impl AsRef<Path>) -> Self {
        self.push_file(path.as_ref(), None)
    }

    /// Adds a file as an attachment with an explicit content type.
    pub fn attach_file_as(self, path: impl AsRef<Path>, content_type: impl Into<String>) -> Self {
        self.push_file(path.as_ref(), Some(content_type.into()))
    }

    fn push_file(mut self, path: &Path, content_type: Option<String>) -> Self {
        let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.attachments.push(Attachment { filename, content_type, source: Source::File(path.to_owned()) });
        self
    }

    /// Uses `part` as the whole body instead of the text, HTML and inline parts: a
    /// `multipart/report`, a `multipart/signed` wrapper, any tree the caller builds.
    /// Attachments and [`attach_part`](Self::attach_part) parts still go beside it in
    /// `multipart/mixed`. Combining it with a text or HTML body, inline images, alternatives
    /// or a calendar is [`MimeError::BodyConflict`].
    pub fn body(mut self, part: Part) -> Self {
        self.body = Some(part);
        self
    }

    /// Adds an alternative representation after the text and HTML bodies (inside their
    /// `multipart/alternative`), e.g. `text/x-amp-html` or `text/markdown`.
    pub fn alternative(mut self, part: Part) -> Self {
        self.alternatives.push(part);
        self
    }

    /// Adds a part to `multipart/mixed` after the attachments: a forwarded message
    /// (`Part::message(&original).attachment("original.eml")`), a nested multipart, a
    /// part with its own headers. Its leaves count towards the policy's total size, and
    /// those with a filename are checked like attachments.
    pub fn attach_part(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }

    /// Adds a calendar invitation: a `text/calendar; method=...` alternative of the body and
    /// an `.ics` attachment (see [`Calendar`]). A second call replaces the first.
    pub fn calendar(mut self, calendar: Calendar) -> Self {
        self.calendar = Some(calendar);
        self
    }

    /// Sets the attachment policy (default: no limits).
    pub fn policy(mut self, policy: AttachmentPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses `envelope` instead of deriving it from Sender/From and To/Cc/Bcc.
    pub fn envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Validates everything, applies the attachment policy, reads file attachments and
    /// serialises the message.
    pub fn build(mut self) -> Result<Message, MimeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let custom = self.body.iter_mut().chain(&mut self.alternatives).chain(&mut self.parts);
        if let Some(e) = custom.into_iter().find_map(Part::take_error) {
            return Err(e);
        }
        self.check_body_conflict()?;
        let calendar = self.calendar.as_ref().map(Calendar::parts).transpose()?;
        let explicit_envelope = self.envelope.take();
        let from = self.from.as_ref().ok_or(MimeError::NoFrom)?;

        let unsubscribe = match self.unsubscribe.is_set() {
            true => Some(self.unsubscribe.headers()?),
            false => None,
        };
        // Headers, in the order they are written.
        let mut headers: Vec<(Cow<'_, str>, HeaderType<'_>)> = Vec::with_capacity(12 + self.headers.len());
        headers.push(("From".into(), mailbox_header(std::slice::from_ref(from))));
        if let Some(sender) = &self.sender {
            headers.push(("Sender".into(), mailbox_header(std::slice::from_ref(sender))));
        }
        for (name, list) in [("Reply-To", &self.reply_to), ("To", &self.to), ("Cc", &self.cc)] {
            if !list.is_empty() {
                headers.push((name.into(), mailbox_header(list)));
            }
        }
        if let Some(subject) = &self.subject {
            headers.push(("Subject".into(), header::unstructured_value("Subject", subject)?));
        }
        let secs = self
            .date
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        headers.push(("Date".into(), Date::new(secs).into()));

        let message_id = match &self.message_id {
            Some(id) => header::validate_msg_id("Message-ID", id)?.to_owned(),
            None => {
                let domain = match &self.message_id_domain {
                    Some(d) => {
                        crate::proto::address::validate_domain(d).map_err(MimeError::Domain)?;
                        d.as_str()
                    }
                    None => from.address().domain(),
                };
                // mail-builder's boundary generator: time, a per-thread counter and
                // process entropy in hex, unique enough for a Message-ID's left side.
                format!("{}@{domain}", make_boundary("."))
            }
        };
        headers.push(("Message-ID".into(), MessageId::new(message_id.as_str()).into()));
        for (name, ids) in [("In-Reply-To", &self.in_reply_to), ("References", &self.references)] {
            if !ids.is_empty() {
                let ids =
                    ids.iter().map(|id| header::validate_msg_id(name, id)).collect::<Result<Vec<_>, _>>()?;
                headers.push((name.into(), MessageId::new_list(ids.into_iter()).into()));
            }
        }
        if let Some((list, post)) = &unsubscribe {
            if self.headers.iter().any(|(n, _)| {
                n.eq_ignore_ascii_case("List-Unsubscribe") || n.eq_ignore_ascii_case("List-Unsubscribe-Post")
            }) {
                return Err(MimeError::ListUnsubscribe { reason: "also set through header()" });
            }
            headers.push(("List-Unsubscribe".into(), header::header_value("List-Unsubscribe", list)?));
            if let Some(post) = post {
                headers.push((
                    "List-Unsubscribe-Post".into(),
                    header::header_value("List-Unsubscribe-Post", post)?,
                ));
            }
        }
        for (name, value) in &self.headers {
            header::validate_header_name(name)?;
            headers.push((name.as_str().into(), header::header_value(name, value)?));
        }

        let (inline, attachments) = self.prepare()?;

        let envelope = match explicit_envelope {
            Some(env) => env,
            None => envelope::derive(from, self.sender.as_ref(), &self.to, &self.cc, &self.bcc)?,
        };

        let text = self.text.as_deref().map(encoding::normalize_crlf);
        let html = self.html.as_deref().map(encoding::normalize_crlf);
        let mut extra: Vec<&Part> = calendar.iter().map(|(_, file)| file).collect();
        extra.extend(&self.parts);
        let body = Tree {
            text,
            html,
            custom: self.body.as_ref(),
            calendar: calendar.as_ref().map(|(alternative, _)| alternative),
            alternatives: &self.alternatives,
            inline: &inline,
            attachments: &attachments,
            extra,
        }
        .build()?;

        let mut builder = mail_builder::MessageBuilder::new().body(body);
        builder.headers = headers;
        let mut bytes = Vec::new();
        builder.serialize(&mut bytes);
        let stripped = envelope::strip_bcc(&mut bytes);
        debug_assert_eq!(stripped, 0, "Bcc is never given to mail-builder");
        let eight_bit = encoding::check_wire(&bytes)?;
        self.policy.check_message_size(bytes.len() as u64)?;
        Ok(Message::new(Bytes::from(bytes), envelope, message_id, eight_bit))
    }

    /// A custom body replaces text, HTML, inline parts, alternatives and the calendar.
    fn check_body_conflict(&self) -> Result<(), MimeError> {
        if self.body.is_none() {
            return Ok(());
        }
        let conflict = [
            (self.text.is_some(), "a text body"),
            (self.html.is_some(), "an HTML body"),
            (!self.inline.is_empty(), "inline images"),
            (!self.alternatives.is_empty(), "alternatives"),
            (self.calendar.is_some(), "a calendar invitation"),
        ];
        match conflict.into_iter().find(|(set, _)| *set) {
            Some((_, what)) => Err(MimeError::BodyConflict(what)),
            None => Ok(()),
        }
    }

    /// Validates inline parts and attachments, applies the policy (names, types and sizes
    /// before files are read, content after) and reads files. Returns the inline parts
    /// (named by Content-ID) and the attachments (named by filename).
    fn prepare(&self) -> Result<(Vec<Prepared<'_>>, Vec<Prepared<'_>>), MimeError> {
        let policy = &self.policy;
        let mut sizes = Sizes::default();
        let mut inline = Vec::with_capacity(self.inline.len());
        for item in &self.inline {
            let cid = header::validate_content_id(&item.content_id)?;
            if inline.iter().any(|other: &Prepared<'_>| other.name == cid) {
                return Err(MimeError::DuplicateContentId(cid.to_owned()));
            }
            let content_type = content_type::validate(&item.content_type)?;
            policy.check_type(cid, content_type.essence())?;
            sizes.add(policy, cid, item.data.len() as u64, !content_type.is_text())?;
            policy.check_content(cid, content_type.essence(), &item.data)?;
            inline.push(Prepared { name: cid, content_type, data: item.data.clone() });
        }
        let mut attachments = Vec::with_capacity(self.attachments.len());
        for item in &self.attachments {
            let name = item.filename.as_str();
            if name.is_empty() {
                return Err(MimeError::EmptyFilename);
            }
            check_controls(|| "attachment filename".to_owned(), name)?;
            let content_type = match (&item.content_type, &item.source) {
                (Some(ct), _) => content_type::validate(ct)?,
                (None, Source::File(path)) => content_type::validate(content_type::for_path(path))?,
                (None, Source::Bytes(_)) => content_type::validate(content_type::OCTET_STREAM)?,
            };
            policy.check_type(name, content_type.essence())?;
            policy.check_name(name)?;
            let data = match &item.source {
                Source::Bytes(data) => {
                    sizes.add(policy, name, data.len() as u64, !content_type.is_text())?;
                    data.clone()
                }
                Source::File(path) => {
                    let io = |source| MimeError::File { path: path.clone(), source };
                    // From the metadata, so that an oversized file is never read.
                    let size = std::fs::metadata(path).map_err(io)?.len();
                    sizes.add(policy, name, size, !content_type.is_text())?;
                    let data = Bytes::from(std::fs::read(path).map_err(io)?);
                    // The file may have grown since.
                    policy.check_size(name, data.len() as u64)?;
                    data
                }
            };
            policy.check_content(name, content_type.essence(), &data)?;
            attachments.push(Prepared { name, content_type, data });
        }
        for part in self.body.iter().chain(&self.alternatives).chain(&self.parts) {
            for leaf in part.leaves() {
                let Some(data) = leaf.leaf_data() else { continue };
                let essence = leaf.content_type().map_or(content_type::OCTET_STREAM, |ct| ct.essence());
                let name = leaf.filename().unwrap_or(essence);
                if leaf.filename().is_some() {
                    policy.check_type(name, essence)?;
                    policy.check_name(name)?;
                }
                sizes.add(policy, name, data.len() as u64, false)?;
                policy.check_content(name, essence, data)?;
            }
        }
        Ok((inline, attachments))
    }
}

/// Running sizes of the parts: raw, and base64-encoded as a lower bound of the message.
#[derive(Default)]
struct Sizes {
    total: u64,
    encoded: u64,
}

impl Sizes {
    /// Adds a part of `size` octets; `base64` when it will be base64 encoded (every
    /// non-text leaf), which makes its encoded size known before it is read.
    fn add(
        &mut self,
        policy: &AttachmentPolicy,
        name: &str,
        size: u64,
        base64: bool,
    ) -> Result<(), MimeError> {
        policy.check_size(name, size)?;
        self.total = self.total.saturating_add(size);
        policy.check_total(self.total)?;
        // No transfer encoding is shorter than its content (7bit is the same length,
        // quoted-printable and base64 longer), so this is a lower bound of the message; the
        // check of the serialised bytes is exact.
        let encoded = if base64 { policy::base64_len(size) } else { size };
        self.encoded = self.encoded.saturating_add(encoded);
        policy.check_message_size(self.encoded)
    }
}

/// An address header value: one mailbox or a list.
fn mailbox_header(list: &[Mailbox]) -> HeaderType<'_> {
    fn one(m: &Mailbox) -> MbAddress<'_> {
        MbAddress::new_address(m.name(), m.address().as_str())
    }
    match list {
        [single] => one(single).into(),
        many => MbAddress::new_list(many.iter().map(one).collect()).into(),
    }
}
