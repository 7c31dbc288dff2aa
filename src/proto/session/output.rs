//! The output queue: everything the session wants written, in order, and where the driver
//! is in it.
//!
//! Commands and small body pieces are encoded into one growing buffer; a large body piece
//! that goes on the wire unchanged is queued as a segment of the caller's buffer, without
//! a copy. Positions are octets over the concatenation of all output ever queued, so
//! "everything up to here is written" is one comparison, whatever the pieces were.
//!
//! ```text
//!   written ≤ handed ≤ out_base ≤ queued_end
//!   [ written | handed, not written | segments ... | out ]
//! ```

use std::collections::VecDeque;

use bytes::Bytes;

/// Largest written buffer kept for reuse ([`Output::recycle`]).
const RECYCLE_MAX: usize = 128 * 1024;

/// The driver reported more octets written than it was handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Overwritten;

#[derive(Default)]
pub(super) struct Output {
    /// Output being encoded: goes after every segment.
    out: Vec<u8>,
    /// Output that goes before `out`: sealed copies of it and pieces sent without a copy.
    segments: VecDeque<Bytes>,
    /// An emptied buffer given back with [`Output::recycle`], for the next output.
    spare: Vec<u8>,
    /// Octets queued before `out` (handed over or in `segments`).
    out_base: u64,
    /// Octets handed over by [`Output::take`].
    handed: u64,
    /// Octets reported written.
    written: u64,
}

/// Lengths only: the output can hold an AUTH line with credentials or a message body.
impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("out_len", &self.out.len())
            .field("segments", &self.segments.len())
            .field("handed", &self.handed)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Output {
    /// The buffer to encode the next output into.
    pub(super) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The position just past everything queued so far.
    pub(super) fn queued_end(&self) -> u64 {
        self.out_base + self.out.len() as u64
    }

    /// Octets queued and not yet handed over.
    pub(super) fn unhanded(&self) -> u64 {
        self.queued_end() - self.handed
    }

    /// Octets the driver reported written.
    #[cfg(test)]
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// True when nothing is waiting to be handed over.
    pub(super) fn is_empty(&self) -> bool {
        self.out.is_empty() && self.segments.is_empty()
    }

    /// Queues `piece` after everything queued so far, without copying it.
    pub(super) fn push_segment(&mut self, piece: Bytes) {
        self.seal();
        self.out_base += piece.len() as u64;
        self.segments.push_back(piece);
    }

    /// Moves what `out` holds into a segment of its own, so later segments follow it.
    fn seal(&mut self) {
        if !self.out.is_empty() {
            self.out_base += self.out.len() as u64;
            let spare = std::mem::take(&mut self.spare);
            let sealed = Bytes::from(std::mem::replace(&mut self.out, spare));
            self.segments.push_back(sealed);
        }
    }

    /// The next bytes to write, in order.
    pub(super) fn take(&mut self) -> Option<Bytes> {
        let next = match self.segments.pop_front() {
            Some(segment) => segment,
            None if self.out.is_empty() => return None,
            None => {
                self.out_base += self.out.len() as u64;
                let spare = std::mem::take(&mut self.spare);
                Bytes::from(std::mem::replace(&mut self.out, spare))
            }
        };
        self.handed += next.len() as u64;
        Some(next)
    }

    /// `octets` more were written; the new written position.
    pub(super) fn wrote(&mut self, octets: usize) -> Result<u64, Overwritten> {
        let written = self.written + octets as u64;
        if written > self.handed {
            return Err(Overwritten);
        }
        self.written = written;
        Ok(written)
    }

    /// Drops every byte not yet handed over; the position of the last octet kept.
    pub(super) fn clear(&mut self) -> u64 {
        self.out.clear();
        self.segments.clear();
        self.out_base = self.handed;
        self.handed
    }

    /// Takes back a written buffer for reuse: true when kept. A buffer still shared (a
    /// piece of a caller's message) or a large one is dropped.
    pub(super) fn recycle(&mut self, written: Bytes) -> bool {
        if self.spare.capacity() > 0 {
            return false;
        }
        let Ok(buffer) = written.try_into_mut() else { return false };
        let mut buffer = Vec::from(buffer);
        if buffer.capacity() > RECYCLE_MAX {
            return false;
        }
        buffer.clear();
        if self.out.capacity() == 0 {
            self.out = buffer;
        } else {
            self.spare = buffer;
        }
        true
    }

    /// Lets go of the capacity kept for reuse while nothing is queued: an idle connection
    /// holds as little memory as it can.
    pub(super) fn release_idle(&mut self) {
        if self.is_empty() {
            self.out = Vec::new();
            self.spare = Vec::new();
            self.segments = VecDeque::new();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn drain(o: &mut Output) -> Vec<u8> {
        let mut wire = Vec::new();
        while let Some(b) = o.take() {
            wire.extend_from_slice(&b);
        }
        wire
    }

    #[test]
    fn copies_and_zero_copy_pieces_leave_in_queue_order() {
        let mut o = Output::default();
        o.buf().extend_from_slice(b"MAIL\r\n");
        let piece = Bytes::from_static(b"caller's body");
        o.push_segment(piece.clone());
        o.buf().extend_from_slice(b".\r\n");
        assert_eq!(o.queued_end(), 6 + 13 + 3);
        let first = o.take().unwrap();
        assert_eq!(&first[..], b"MAIL\r\n");
        let second = o.take().unwrap();
        assert_eq!(second.as_ptr(), piece.as_ptr(), "the caller's buffer, not a copy");
        assert_eq!(&o.take().unwrap()[..], b".\r\n");
        assert!(o.take().is_none() && o.is_empty());
    }

    #[test]
    fn positions_count_octets_over_all_output() {
        let mut o = Output::default();
        o.buf().extend_from_slice(b"abc");
        let end_abc = o.queued_end();
        o.push_segment(Bytes::from_static(b"defg"));
        let end_defg = o.queued_end();
        o.buf().extend_from_slice(b"hi");
        assert_eq!((end_abc, end_defg, o.queued_end()), (3, 7, 9));
        assert_eq!(o.unhanded(), 9);
        assert_eq!(drain(&mut o), b"abcdefghi");
        assert_eq!(o.unhanded(), 0);
        assert_eq!(o.wrote(2), Ok(2));
        assert_eq!(o.wrote(5), Ok(7));
        assert_eq!(o.wrote(3), Err(Overwritten), "9 handed, 10 reported");
        assert_eq!(o.written(), 7);
        assert_eq!(o.wrote(2), Ok(9));
    }

    #[test]
    fn clearing_drops_only_what_was_not_handed_over() {
        let mut o = Output::default();
        o.buf().extend_from_slice(b"first");
        assert_eq!(&o.take().unwrap()[..], b"first");
        o.buf().extend_from_slice(b"never");
        o.push_segment(Bytes::from_static(b"sent"));
        assert_eq!(o.clear(), 5);
        assert!(o.take().is_none());
        o.buf().extend_from_slice(b"QUIT\r\n");
        assert_eq!(o.queued_end(), 11, "positions continue after what was handed over");
    }

    #[test]
    fn recycled_buffers_carry_later_output() {
        let mut o = Output::default();
        o.buf().extend_from_slice(b"one");
        let first = o.take().unwrap();
        let at = first.as_ptr();
        assert!(o.recycle(first));
        o.buf().extend_from_slice(b"two");
        let second = o.take().unwrap();
        assert_eq!(second.as_ptr(), at);
        let shared = second.clone();
        assert!(!o.recycle(second), "still shared");
        drop(shared);
        o.release_idle();
        assert_eq!(o.buf().capacity(), 0);
    }
}
