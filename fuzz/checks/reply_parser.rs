//! Reply parser: parsing a stream of replies in chunks (split points derived from the input)
//! gives the same replies, the same consumed lengths and the same error as parsing it with
//! all bytes present; every reply obeys the limits and its text is printable.
//!
//! Input: one control byte, then the server's bytes. Control bit 0 picks tiny limits (so
//! the limit errors are reachable), bits 1-7 seed the chunk sizes (0 = one byte per read).

use smtpkit::proto::reply::{Reply, ReplyError, ReplyLimits, ReplyParser};

/// Replies parsed, octets consumed by them, and how the stream ended: `Ok(n)` with `n`
/// octets of an unfinished reply left over, or the error.
type Outcome = (Vec<(Reply, usize)>, Result<usize, ReplyError>);

/// Parses `stream` as a driver would, feeding it `chunks` (sizes, cycled) at a time.
fn parse_chunked(limits: ReplyLimits, stream: &[u8], mut next_chunk: impl FnMut() -> usize) -> Outcome {
    let mut parser = ReplyParser::new(limits);
    let mut input: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut replies = Vec::new();
    loop {
        let n = next_chunk().clamp(1, stream.len() - fed + 1);
        let end = (fed + n).min(stream.len());
        input.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            match parser.parse(&input) {
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= input.len(), "used {used} of {}", input.len());
                    input.drain(..used);
                    replies.push((reply, used));
                }
                Ok(None) => break,
                Err(e) => return (replies, Err(e)),
            }
        }
        if fed == stream.len() {
            return (replies, Ok(input.len()));
        }
    }
}

fn parse_one_shot(limits: ReplyLimits, stream: &[u8]) -> Outcome {
    let mut pos = 0;
    let mut replies = Vec::new();
    loop {
        // A fresh parser per reply, each seeing everything that is left.
        match ReplyParser::new(limits).parse(&stream[pos..]) {
            Ok(Some((reply, used))) => {
                pos += used;
                replies.push((reply, used));
            }
            Ok(None) => return (replies, Ok(stream.len() - pos)),
            Err(e) => return (replies, Err(e)),
        }
    }
}

fn check_reply(limits: &ReplyLimits, reply: &Reply, used: usize) {
    let code = reply.code().0;
    assert!((200..=559).contains(&code) && code % 100 <= 59, "code {code}");
    assert!(reply.line_count() >= 1 && reply.line_count() <= limits.max_lines);
    assert!(used <= limits.max_reply);
    let raw: usize = reply.lines().map(|l| l.len() + 4).sum();
    assert!(raw <= used, "lines {raw} > used {used}");
    for line in reply.lines() {
        assert!(!line.contains(&b'\n'));
        assert!(line.len() + 4 <= limits.max_line);
    }
    let text = reply.text();
    assert!(text.chars().all(|c| c == '\n' || !c.is_control()), "{text:?}");
    assert_eq!(text.matches('\n').count() + 1, reply.line_count());
    let shown = reply.to_string();
    assert!(shown.chars().all(|c| !c.is_control()), "{shown:?}");
    assert!(shown.starts_with(&code.to_string()));
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let Some((&ctrl, stream)) = data.split_first() else { return };
    let limits = if ctrl & 1 == 1 {
        ReplyLimits { max_line: 24, max_lines: 4, max_reply: 64 }
    } else {
        ReplyLimits::default()
    };
    let expected = parse_one_shot(limits, stream);
    for (reply, used) in &expected.0 {
        check_reply(&limits, reply, *used);
    }
    let consumed: usize = expected.0.iter().map(|(_, u)| u).sum();
    if let Ok(left) = expected.1 {
        assert_eq!(consumed + left, stream.len());
    }

    // One byte per read.
    assert_eq!(parse_chunked(limits, stream, || 1), expected, "one byte per read");
    // Split points derived from the control byte and the input itself.
    let mut state = u32::from(ctrl >> 1) | (stream.len() as u32) << 8 | 1;
    let mut sizes = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        match state % 8 {
            0 => 1,
            1..=5 => (state >> 8) as usize % 16 + 1,
            _ => (state >> 8) as usize % 300 + 1,
        }
    };
    assert_eq!(parse_chunked(limits, stream, &mut sizes), expected, "random chunks");
    // Split at every line ending: the parser's own framing points.
    let mut ends = stream.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i);
    let mut last = 0usize;
    let at_lines = parse_chunked(limits, stream, || match ends.next() {
        Some(i) => {
            let n = i + 1 - last;
            last = i + 1;
            n
        }
        None => usize::MAX,
    });
    assert_eq!(at_lines, expected, "split at line ends");
}
