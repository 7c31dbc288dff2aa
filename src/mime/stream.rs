//! [`StreamedMessage`]: a composed message whose attachments are read and base64-encoded
//! piece by piece while it is consumed, so a 200 MB file composes in constant memory.
//!
//! mail-builder writes the headers and the MIME structure, with a unique placeholder as
//! the body of each streamed part; the serialised message is cut at the placeholders into
//! fixed segments, and each placeholder is replaced by the part's content, encoded here.

use std::{
    collections::VecDeque,
    fmt,
    io::{self, Read},
};

use base64::Engine as _;
use bytes::Bytes;

use crate::Envelope;

/// RFC 2045 section 6.8: "The encoded output stream must be represented in lines of no more
/// than 76 characters each." 57 input octets make one 76-character line.
const LINE_INPUT: usize = 57;
/// Lines encoded per chunk: about 80 KB of output per [`Bytes`].
const LINES_PER_CHUNK: usize = 1024;
const CHUNK_INPUT: usize = LINE_INPUT * LINES_PER_CHUNK;

/// Octets read from a streamed attachment at build time to check its content against the
/// policy (magic numbers live in the first few hundred octets; OOXML needs a few KB).
pub(crate) const SNIFF_LEN: usize = 8 << 10;

/// One streamed attachment: its reader (the sniffed prefix chained in front), the length
/// it must have, and its name for errors.
pub(crate) struct StreamPart {
    pub(crate) reader: Box<dyn Read + Send>,
    pub(crate) len: u64,
    pub(crate) name: String,
}

enum Segment {
    Fixed(Bytes),
    Stream(Base64Stream),
}

/// A message composed with [`MessageBuilder::build_streamed`](super::MessageBuilder::build_streamed):
/// an iterator of [`Bytes`] chunks (and a [`Read`]) that reads each streamed attachment
/// only as far as it has been consumed. Its length is known up front, for `SIZE=`.
///
/// An attachment that turns out shorter or longer than its length at build time (a file
/// changed meanwhile) ends the stream with an [`io::Error`] naming it, rather than sending
/// a message whose `SIZE=` was wrong.
pub struct StreamedMessage {
    segments: VecDeque<Segment>,
    pending: Bytes,
    envelope: Envelope,
    message_id: String,
    len: u64,
    eight_bit: bool,
    headers_utf8: bool,
    failed: bool,
}

impl fmt::Debug for StreamedMessage {
    /// The identifier, envelope and size; never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamedMessage")
            .field("message_id", &self.message_id)
            .field("envelope", &self.envelope)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Splits `bytes` at each placeholder into fixed segments and streams, in order.
pub(crate) fn assemble(
    bytes: Vec<u8>,
    parts: Vec<(String, StreamPart)>,
    envelope: Envelope,
    message_id: String,
    eight_bit: bool,
) -> Result<StreamedMessage, super::MimeError> {
    let headers_utf8 = eight_bit && crate::proto::header_scan::first_non_ascii_header_octet(&bytes).is_some();
    let bytes = Bytes::from(bytes);
    let mut segments = VecDeque::with_capacity(parts.len() * 2 + 1);
    let mut len = 0u64;
    let mut at = 0;
    for (placeholder, part) in parts {
        let found = memchr::memmem::find(bytes.get(at..).unwrap_or_default(), placeholder.as_bytes())
            .ok_or(super::MimeError::InvalidPart { reason: "a streamed part lost its place" })?;
        segments.push_back(Segment::Fixed(bytes.slice(at..at + found)));
        len += found as u64 + super::policy::base64_len(part.len);
        segments.push_back(Segment::Stream(Base64Stream::new(part)));
        at += found + placeholder.len();
    }
    len += (bytes.len() - at) as u64;
    segments.push_back(Segment::Fixed(bytes.slice(at..)));
    Ok(StreamedMessage {
        segments,
        pending: Bytes::new(),
        envelope,
        message_id,
        len,
        eight_bit,
        headers_utf8,
        failed: false,
    })
}

impl StreamedMessage {
    /// The envelope (as for [`Message::envelope`](super::Message::envelope)).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The `Message-ID`, without angle brackets.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The size in octets of the whole message, streamed parts encoded.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a message has at least a header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// As [`Message::needs_8bitmime`](super::Message::needs_8bitmime).
    pub fn needs_8bitmime(&self) -> bool {
        self.eight_bit
    }

    /// As [`Message::needs_smtputf8`](super::Message::needs_smtputf8).
    pub fn needs_smtputf8(&self) -> bool {
        self.headers_utf8 || self.envelope.needs_smtputf8()
    }
}

impl Iterator for StreamedMessage {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.failed {
            return None;
        }
        loop {
            match self.segments.front_mut()? {
                Segment::Fixed(bytes) => {
                    let bytes = std::mem::take(bytes);
                    self.segments.pop_front();
                    if !bytes.is_empty() {
                        return Some(Ok(bytes));
                    }
                }
                Segment::Stream(stream) => match stream.next_chunk() {
                    Ok(Some(chunk)) => return Some(Ok(chunk)),
                    Ok(None) => {
                        self.segments.pop_front();
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

impl Read for StreamedMessage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.next() {
                Some(chunk) => self.pending = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// Base64 of one reader, in whole 76-character lines per chunk, checked against the
/// length the message declared.
struct Base64Stream {
    part: StreamPart,
    read: u64,
    buffer: Vec<u8>,
    done: bool,
}

impl Base64Stream {
    fn new(part: StreamPart) -> Self {
        Self { part, read: 0, buffer: Vec::new(), done: false }
    }

    fn changed(&self, how: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "attachment {:?} {how} since the message was built ({} octets)",
                self.part.name, self.part.len
            ),
        )
    }

    /// Fills the buffer with up to [`CHUNK_INPUT`] octets (short reads are retried, so
    /// that every chunk but the last is whole lines) and encodes it.
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.buffer.resize(CHUNK_INPUT, 0);
        let mut filled = 0;
        while filled < CHUNK_INPUT {
            match self.part.reader.read(&mut self.buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.read += filled as u64;
        if self.read > self.part.len {
            return Err(self.changed("grew"));
        }
        if filled < CHUNK_INPUT {
            self.done = true;
            if self.read < self.part.len {
                return Err(self.changed("shrank"));
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        Ok(Some(encode_lines(&self.buffer[..filled])))
    }
}

/// Base64 in lines of 76 characters, each ending in CRLF.
pub(crate) fn encode_lines(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len().div_ceil(LINE_INPUT) * 78);
    let mut line = [0u8; 76];
    for chunk in data.chunks(LINE_INPUT) {
        let n = base64::engine::general_purpose::STANDARD.encode_slice(chunk, &mut line).unwrap_or_default();
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` octets per call.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn stream(data: &[u8], step: usize, len: u64) -> io::Result<Vec<u8>> {
        let reader = Box::new(Trickle { data: data.to_vec(), at: 0, step });
        let mut s = Base64Stream::new(StreamPart { reader, len, name: "f".into() });
        let mut out = Vec::new();
        while let Some(chunk) = s.next_chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    #[test]
    fn short_reads_give_whole_lines_and_lengths_are_checked() {
        let data: Vec<u8> = (0..CHUNK_INPUT * 2 + 100).map(|i| (i * 7) as u8).collect();
        let whole = encode_lines(&data);
        assert_eq!(stream(&data, 1000, data.len() as u64).unwrap(), whole);
        assert_eq!(stream(&data, 7, data.len() as u64).unwrap(), whole);
        assert_eq!(whole.len() as u64, crate::mime::policy::base64_len(data.len() as u64));
        let err = stream(&data, 1000, data.len() as u64 - 1).unwrap_err();
        assert!(err.to_string().contains("grew"), "{err}");
        let err = stream(&data, 1000, data.len() as u64 + 1).unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
        assert!(stream(b"", 1, 0).unwrap().is_empty());
    }

    /// The streamed encoder writes exactly what mail-builder writes for the same content.
    fn mail_builder_base64(data: &[u8]) -> Vec<u8> {
        use mail_builder::mime::{BodyPart, MimePart};
        let mut out = Vec::new();
        MimePart::new("application/octet-stream", BodyPart::Binary(data.into())).write_part(&mut out);
        let body = memchr::memmem::find(&out, b"\r\n\r\n").map_or(0, |i| i + 4);
        out[body..].to_vec()
    }

    proptest::proptest! {
        #[test]
        fn matches_mail_builder(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000), step in 1usize..400) {
            let streamed = stream(&data, step, data.len() as u64).unwrap();
            proptest::prop_assert_eq!(streamed, mail_builder_base64(&data));
        }
    }

    #[test]
    fn matches_mail_builder_across_chunks() {
        for len in [CHUNK_INPUT - 1, CHUNK_INPUT, CHUNK_INPUT + 1, 3 * CHUNK_INPUT + 57 * 5 + 2] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7) as u8).collect();
            assert_eq!(stream(&data, 4096, len as u64).unwrap(), mail_builder_base64(&data), "{len}");
        }
    }
}
