//! The builder's checks of inline parts, attachments and custom parts against the
//! [`AttachmentPolicy`]: names, types and sizes before any file is read, content after;
//! files read whole, or opened for streaming.

use std::io::{self, Read};

use bytes::Bytes;
use mail_builder::mime::make_boundary;

use super::{MessageBuilder, Source};
use crate::mime::{
    AttachmentPolicy, MimeError, content_type, header, policy,
    stream::{SNIFF_LEN, StreamPart},
    tree::Prepared,
};

/// Readers taken out of the builder's [`Source::Reader`] attachments, by attachment index.
pub(super) type Readers = Vec<Option<Box<dyn Read + Send>>>;

/// Inline parts (named by Content-ID), attachments (named by filename), and the streamed
/// attachments with the placeholder that stands for each in the serialised message.
pub(super) type Prepared3<'a> = (Vec<Prepared<'a>>, Vec<Prepared<'a>>, Vec<(String, StreamPart)>);

impl MessageBuilder {
    /// Validates inline parts and attachments, applies the policy (names, types and sizes
    /// before files are read, content after), and reads files, or with `streaming` opens
    /// them and reads only their first kilobytes.
    pub(super) fn prepare(&self, streaming: bool, mut readers: Readers) -> Result<Prepared3<'_>, MimeError> {
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
            inline.push(Prepared { name: cid, content_type, data: item.data.clone(), streamed: false });
        }
        let mut attachments = Vec::with_capacity(self.attachments.len());
        let mut streams = Vec::new();
        for (index, item) in self.attachments.iter().enumerate() {
            let name = item.filename.as_str();
            if name.is_empty() {
                return Err(MimeError::EmptyFilename);
            }
            header::check_controls(|| "attachment filename".to_owned(), name)?;
            let content_type = match (&item.content_type, &item.source) {
                (Some(ct), _) => content_type::validate(ct)?,
                (None, Source::File(path)) => content_type::validate(content_type::for_path(path))?,
                (None, _) => content_type::validate(content_type::OCTET_STREAM)?,
            };
            let essence = content_type.essence();
            policy.check_type(name, essence)?;
            policy.check_name(name)?;
            let base64 = streaming || !content_type.is_text();
            let (data, stream) = match &item.source {
                Source::Bytes(data) => {
                    sizes.add(policy, name, data.len() as u64, !content_type.is_text())?;
                    policy.check_content(name, essence, data)?;
                    (data.clone(), None)
                }
                Source::File(path) => {
                    let io = |source| MimeError::File { path: path.clone(), source };
                    // From the metadata, so that an oversized file is never read.
                    let size = std::fs::metadata(path).map_err(io)?.len();
                    sizes.add(policy, name, size, base64)?;
                    if streaming {
                        let file = std::fs::File::open(path).map_err(io)?;
                        let reader =
                            sniffed(policy, name, essence, Box::new(file), size).map_err(|e| match e {
                                Sniff::Io(source) => io(source),
                                Sniff::Policy(e) => e,
                            })?;
                        (Bytes::new(), Some(StreamPart { reader, len: size, name: name.to_owned() }))
                    } else {
                        let data = Bytes::from(std::fs::read(path).map_err(io)?);
                        // The file may have grown since.
                        policy.check_size(name, data.len() as u64)?;
                        policy.check_content(name, essence, &data)?;
                        (data, None)
                    }
                }
                Source::Reader(_, len) => {
                    if !streaming {
                        return Err(MimeError::NeedsStreaming(name.to_owned()));
                    }
                    sizes.add(policy, name, *len, true)?;
                    let reader = readers
                        .get_mut(index)
                        .and_then(Option::take)
                        .ok_or(MimeError::NeedsStreaming(name.to_owned()))?;
                    let reader = sniffed(policy, name, essence, reader, *len).map_err(|e| match e {
                        Sniff::Io(source) => MimeError::Reader { name: name.to_owned(), source },
                        Sniff::Policy(e) => e,
                    })?;
                    (Bytes::new(), Some(StreamPart { reader, len: *len, name: name.to_owned() }))
                }
            };
            match stream {
                Some(part) => {
                    // Unique in the message: a boundary-style random token and the index.
                    let placeholder = format!("smtpkit-stream-{}-{index}", make_boundary("_"));
                    let data = Bytes::from(placeholder.clone().into_bytes());
                    attachments.push(Prepared { name, content_type, data, streamed: true });
                    streams.push((placeholder, part));
                }
                None => attachments.push(Prepared { name, content_type, data, streamed: false }),
            }
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
        Ok((inline, attachments, streams))
    }
}

enum Sniff {
    Io(io::Error),
    Policy(MimeError),
}

/// Reads the first [`SNIFF_LEN`] octets (at most `len`) of a streamed attachment, checks
/// them against the policy, and returns a reader that yields them again, then the rest.
fn sniffed(
    policy: &AttachmentPolicy,
    name: &str,
    essence: &str,
    reader: Box<dyn Read + Send>,
    len: u64,
) -> Result<Box<dyn Read + Send>, Sniff> {
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(SNIFF_LEN);
    let mut head = Vec::with_capacity(want);
    let mut reader = reader;
    (&mut reader).take(want as u64).read_to_end(&mut head).map_err(Sniff::Io)?;
    policy.check_content(name, essence, &head).map_err(Sniff::Policy)?;
    Ok(Box::new(io::Cursor::new(head).chain(reader)))
}

/// Running sizes of the parts: raw, and encoded as a lower bound of the message.
#[derive(Default)]
struct Sizes {
    total: u64,
    encoded: u64,
}

impl Sizes {
    /// Adds a part of `size` octets; `base64` when it will be base64 encoded (every
    /// non-text leaf, every streamed part), which makes its encoded size known before it
    /// is read.
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
