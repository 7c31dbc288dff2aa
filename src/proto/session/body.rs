//! Streaming a message body into the output: DATA (dot-stuffed, with the terminator) or
//! BDAT chunks, a bounded amount at a time.

use super::super::command::Command;
use super::super::dot_stuff::{DotStuffer, Normalizer};
use super::Session;
use super::events::MessageId;
use super::in_flight::Kind;
use super::transaction::End;

/// Input pieces encoded per step while streaming DATA.
const DATA_PIECE: usize = 64 * 1024;
/// Spare room reserved beside a DATA piece in the output buffer (see `fill_body`).
const FLIGHT_SLACK: usize = 1024;
/// A body piece at least this long that goes on the wire unchanged is written from the
/// caller's buffer; a shorter one is cheaper to copy than to write separately.
const ZERO_COPY_MIN: usize = 16 * 1024;
/// Stop filling the output past this many octets not yet handed over.
const OUT_HIGH_WATER: u64 = 256 * 1024;

#[derive(Debug)]
pub(super) enum Encoder {
    Data(DotStuffer),
    Bdat(Normalizer),
}

/// The body being streamed: whose, how far, and with which encoder (its state holds no
/// message data, so `Debug` shows none).
#[derive(Debug)]
pub(super) struct BodyState {
    pub(super) id: MessageId,
    offset: usize,
    encoder: Encoder,
    /// Without PIPELINING each BDAT chunk waits for its reply.
    pub(super) paused: bool,
}

impl BodyState {
    pub(super) fn data(id: MessageId) -> Self {
        Self { id, offset: 0, encoder: Encoder::Data(DotStuffer::new()), paused: false }
    }

    pub(super) fn bdat(id: MessageId) -> Self {
        Self { id, offset: 0, encoder: Encoder::Bdat(Normalizer::default()), paused: false }
    }
}

impl Session {
    /// Streams the current body into the output up to the high-water mark.
    pub(super) fn fill_body(&mut self) {
        while self.output.unhanded() < OUT_HIGH_WATER {
            match self.body.as_ref() {
                Some(state) if !state.paused => {}
                _ => return,
            }
            if !self.fill_step() {
                return;
            }
        }
    }

    /// Encodes one piece of the body; false when the session broke.
    fn fill_step(&mut self) -> bool {
        let Some(state) = self.body.as_mut() else { return false };
        let id = state.id;
        let Some(tx) = self.txs.iter_mut().find(|t| t.id == id) else {
            self.fatal(crate::proto::error::Error::Internal("a body without its transaction"));
            return false;
        };
        let start = state.offset;
        match &mut state.encoder {
            Encoder::Data(stuffer) => {
                let end = (start + DATA_PIECE).min(tx.body.len());
                let piece = tx.body.get(start..end).unwrap_or_default();
                // A large piece that goes on the wire as it is is written from the
                // caller's buffer instead of a copy.
                let direct =
                    tx.info.verbatim() && piece.len() >= ZERO_COPY_MIN && stuffer.sent_verbatim(piece);
                if !direct {
                    // Room for the piece, its stuffing, the terminator and the next
                    // message's commands, which usually join this write: one allocation
                    // per flight instead of one per growth step.
                    let out = self.output.buf();
                    out.reserve(end - start + FLIGHT_SLACK);
                    stuffer.encode_analyzed(&tx.info, piece, out);
                }
                let direct = direct.then(|| tx.body.slice(start..end));
                state.offset = end;
                let octets = tx.body.len();
                if let Some(piece) = direct {
                    self.output.push_segment(piece);
                }
                if end == octets {
                    self.finish_data(octets);
                }
            }
            Encoder::Bdat(normalizer) => {
                let end = (start + self.config.bdat_chunk_size.max(1)).min(tx.body.len());
                let last = end == tx.body.len();
                let mut chunk = Vec::with_capacity(end - start + 16);
                normalizer.encode(tx.body.get(start..end).unwrap_or_default(), &mut chunk);
                state.offset = end;
                if last {
                    std::mem::take(normalizer).finish(&mut chunk);
                }
                self.emit_bdat_chunk(id, chunk, last);
            }
        }
        !self.is_closed()
    }

    /// Writes the terminator after the last piece of a DATA body.
    fn finish_data(&mut self, octets: usize) {
        let Some(state) = self.body.take() else {
            return self.fatal(crate::proto::error::Error::Internal("end of data without a body"));
        };
        if let Encoder::Data(stuffer) = state.encoder {
            stuffer.finish(self.output.buf());
        }
        self.end_queued(state.id);
        self.push_end_of_data(state.id);
        let end = self.output.queued_end();
        self.trace.data(octets, end);
        self.current = None;
        // Pipelining: the next message's commands join the same write.
        self.advance();
    }

    /// RFC 2033 section 4.2: after the final dot an LMTP server sends "one reply for each
    /// successful RCPT command", in the order of the RCPT commands; SMTP sends one.
    pub(super) fn push_end_of_data(&mut self, id: MessageId) {
        let accepted = match self.tx(id) {
            Some(tx) if self.config.lmtp => tx.accepted(),
            _ => 0,
        };
        if accepted == 0 {
            self.expect_reply(Kind::DataEnd(id));
        }
        for i in 0..accepted {
            self.expect_reply(Kind::LmtpEnd(id, i));
        }
    }

    fn emit_bdat_chunk(&mut self, id: MessageId, chunk: Vec<u8>, last: bool) {
        if last {
            self.body = None;
            self.current = None;
        } else if !self.pipelining() {
            if let Some(state) = self.body.as_mut() {
                state.paused = true;
            }
        }
        let size = chunk.len() as u64;
        self.put_command(&Command::Bdat { size, last });
        self.output.buf().extend_from_slice(&chunk);
        // The chunk's reply is due once its last octet is written.
        self.expect_reply(Kind::Bdat(id, last));
        if last {
            self.end_queued(id);
        }
        let end = self.output.queued_end();
        self.trace.data(chunk.len(), end);
    }

    /// The end of data of `id` was just put in the output.
    pub(super) fn end_queued(&mut self, id: MessageId) {
        let at = self.output.queued_end();
        match self.tx_mut(id) {
            Some(tx) if tx.end == End::Open => tx.end = End::Queued(at),
            Some(_) => {}
            None => self.fatal(crate::proto::error::Error::Internal("end of data for an unknown message")),
        }
    }
}
