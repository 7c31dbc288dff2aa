//! The redacted transcript: AUTH payloads and message data never appear, and a client line
//! appears when its command was written, not when it was queued (a command dropped before
//! it was written, such as an automatic RSET after a lost link, never shows).

use std::collections::VecDeque;

use super::super::code::ReplyCode;
use super::super::command::Command;
use super::super::reply::Reply;
use super::ConnectionId;
use super::events::{Direction, TraceLine};

#[derive(Debug, Default)]
pub(super) struct Trace {
    on: bool,
    /// Stamped on every line.
    connection: ConnectionId,
    /// Lines ready for [`Trace::pop`].
    lines: VecDeque<TraceLine>,
    /// Client lines with the output position just past their command, until written.
    unsent: VecDeque<(u64, TraceLine)>,
}

impl Trace {
    pub(super) fn new(on: bool, connection: ConnectionId) -> Self {
        Self { on, connection, ..Self::default() }
    }

    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// `cmd` was encoded as `line` (with its CRLF) and ends at output position `end`.
    pub(super) fn command(&mut self, cmd: &Command<'_>, line: &[u8], end: u64) {
        if !self.on {
            return;
        }
        let text = match cmd {
            Command::Auth { mechanism, initial: Some(_) } => format!("AUTH {mechanism} [redacted]"),
            Command::AuthResponse(_) => "[redacted]".to_string(),
            _ => String::from_utf8_lossy(line.strip_suffix(b"\r\n").unwrap_or(line)).into_owned(),
        };
        self.client(text, end);
    }

    /// Message data of `octets` octets ending at output position `end`.
    pub(super) fn data(&mut self, octets: usize, end: u64) {
        if self.on {
            self.client(format!("[message data: {octets} octets]"), end);
        }
    }

    fn client(&mut self, text: String, end: u64) {
        self.unsent
            .push_back((end, TraceLine { connection: self.connection, direction: Direction::Client, text }));
    }

    /// A server reply; `in_auth` when it answers an AUTH step.
    pub(super) fn reply(&mut self, reply: &Reply, in_auth: bool) {
        if !self.on {
            return;
        }
        // Server challenges during AUTH can echo secrets (e.g. LOGIN servers that repeat
        // the user name); keep them out too.
        let redact = in_auth && reply.code() == ReplyCode::AUTH_CONTINUE;
        let n = reply.line_count();
        for (i, line) in reply.text().split('\n').enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = if redact { "[redacted]" } else { line };
            let enhanced = match (i, reply.enhanced()) {
                (0, Some(e)) if !redact => format!("{e} "),
                _ => String::new(),
            };
            let text = format!("{}{sep}{enhanced}{text}", reply.code());
            self.lines.push_back(TraceLine {
                connection: self.connection,
                direction: Direction::Server,
                text,
            });
        }
    }

    /// The output up to position `upto` is written: its client lines show.
    pub(super) fn written(&mut self, upto: u64) {
        while self.unsent.front().is_some_and(|(end, _)| *end <= upto) {
            if let Some((_, line)) = self.unsent.pop_front() {
                self.lines.push_back(line);
            }
        }
    }

    /// Output past position `kept` was dropped: its lines never show.
    pub(super) fn dropped_after(&mut self, kept: u64) {
        self.unsent.retain(|(end, _)| *end <= kept);
    }

    pub(super) fn pop(&mut self) -> Option<TraceLine> {
        self.lines.pop_front()
    }

    pub(super) fn len(&self) -> usize {
        self.lines.len() + self.unsent.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_command_shows_once_written_and_never_when_dropped() {
        let mut t = Trace::new(true, ConnectionId::default());
        t.command(&Command::Noop, b"NOOP\r\n", 6);
        t.command(&Command::Rset, b"RSET\r\n", 12);
        assert!(t.pop().is_none(), "queued is not written");
        t.written(6);
        assert_eq!(t.pop().unwrap().to_string(), "C: NOOP");
        assert!(t.pop().is_none());
        t.dropped_after(6);
        t.written(100);
        assert!(t.pop().is_none(), "the dropped RSET never shows");
    }

    #[test]
    fn auth_payloads_are_redacted() {
        let mut t = Trace::new(true, ConnectionId::default());
        let cmd = Command::Auth { mechanism: "PLAIN", initial: Some(b"c2VjcmV0") };
        t.command(&cmd, b"AUTH PLAIN c2VjcmV0\r\n", 21);
        t.command(&Command::AuthResponse(b"c2VjcmV0"), b"c2VjcmV0\r\n", 31);
        t.written(31);
        assert_eq!(t.pop().unwrap().text, "AUTH PLAIN [redacted]");
        assert_eq!(t.pop().unwrap().text, "[redacted]");
        t.reply(&Reply::single(334, "dXNlcg=="), true);
        assert_eq!(t.pop().unwrap().text, "334 [redacted]");
    }

    #[test]
    fn every_line_carries_the_connection_id() {
        let mut t = Trace::new(true, ConnectionId(0xc1a2b3));
        t.command(&Command::Noop, b"NOOP\r\n", 6);
        t.written(6);
        t.reply(&Reply::single(250, "ok"), false);
        let lines: Vec<_> = std::iter::from_fn(|| t.pop()).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.connection == ConnectionId(0xc1a2b3)), "{lines:?}");
    }

    #[test]
    fn off_records_nothing() {
        let mut t = Trace::new(false, ConnectionId::default());
        t.command(&Command::Noop, b"NOOP\r\n", 6);
        t.reply(&Reply::single(250, "ok"), false);
        t.written(6);
        assert_eq!(t.len(), 0);
    }
}
