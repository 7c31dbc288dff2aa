//! The commands awaiting a reply, in the order the server answers them (RFC 2920: replies
//! come in command order, so PIPELINING is a queue).

use std::collections::VecDeque;
use std::time::Instant;

use super::super::error::Phase;
use super::super::timeouts::Timeouts;
use super::events::{MessageId, OpId};

/// What a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail(MessageId),
    Rcpt(MessageId, usize),
    Data(MessageId),
    DataEnd(MessageId),
    /// LMTP: the reply for the n-th accepted recipient after the final dot.
    LmtpEnd(MessageId, usize),
    Bdat(MessageId, bool),
    Rset(Option<OpId>),
    Noop(OpId),
    Vrfy(OpId),
    Custom(OpId),
    /// An EHLO the caller asked for; its reply replaces the capabilities.
    Reehlo(OpId),
    Quit(Option<OpId>),
}

impl Kind {
    pub(super) fn phase(self) -> Phase {
        match self {
            Kind::Greeting => Phase::Greeting,
            Kind::Ehlo | Kind::Reehlo(_) => Phase::Ehlo,
            Kind::Helo => Phase::Helo,
            Kind::StartTls => Phase::StartTls,
            Kind::Auth => Phase::Auth,
            Kind::Mail(_) => Phase::Mail,
            Kind::Rcpt(..) => Phase::Rcpt,
            Kind::Data(_) => Phase::Data,
            Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Bdat(_, true) => Phase::DataEnd,
            Kind::Bdat(_, false) => Phase::Bdat,
            Kind::Rset(_) => Phase::Rset,
            Kind::Noop(_) => Phase::Noop,
            Kind::Vrfy(_) => Phase::Vrfy,
            Kind::Custom(_) => Phase::Custom,
            Kind::Quit(_) => Phase::Quit,
        }
    }

    /// The message this reply belongs to.
    pub(super) fn message(self) -> Option<MessageId> {
        match self {
            Kind::Mail(id)
            | Kind::Rcpt(id, _)
            | Kind::Data(id)
            | Kind::DataEnd(id)
            | Kind::LmtpEnd(id, _)
            | Kind::Bdat(id, _) => Some(id),
            _ => None,
        }
    }

    /// The caller's command this reply answers.
    pub(super) fn op(self) -> Option<OpId> {
        match self {
            Kind::Rset(Some(id))
            | Kind::Noop(id)
            | Kind::Vrfy(id)
            | Kind::Custom(id)
            | Kind::Reehlo(id)
            | Kind::Quit(Some(id)) => Some(id),
            _ => None,
        }
    }

    /// RFC 2920 section 3.1: a new command group may follow these (the transaction is over
    /// whatever the reply, or the state is being reset).
    fn ends_group(self) -> bool {
        matches!(self, Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Rset(None))
    }
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) kind: Kind,
    /// When the write carrying the command's last octet completed.
    pub(super) sent_at: Option<Instant>,
    /// Output position just past the command's last octet.
    end: u64,
}

#[derive(Debug, Default)]
pub(super) struct InFlight {
    queue: VecDeque<Pending>,
}

impl InFlight {
    /// The greeting, awaited from `now`.
    pub(super) fn greeting(now: Instant) -> Self {
        let mut queue = VecDeque::new();
        queue.push_back(Pending { kind: Kind::Greeting, sent_at: Some(now), end: 0 });
        Self { queue }
    }

    /// Awaits a reply to a command that ends at output position `end`.
    pub(super) fn push(&mut self, kind: Kind, end: u64) {
        self.queue.push_back(Pending { kind, sent_at: None, end });
    }

    /// The output up to `upto` was written at `now`: those commands' deadlines start.
    pub(super) fn written(&mut self, upto: u64, now: Instant) {
        for p in self.queue.iter_mut().filter(|p| p.sent_at.is_none() && p.end <= upto) {
            p.sent_at = Some(now);
        }
    }

    pub(super) fn front(&self) -> Option<&Pending> {
        self.queue.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<Pending> {
        self.queue.pop_front()
    }

    pub(super) fn push_front(&mut self, p: Pending) {
        self.queue.push_front(p);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// A new command group may start: nothing is awaited but group enders.
    pub(super) fn only_group_enders(&self) -> bool {
        self.queue.iter().all(|p| p.kind.ends_group())
    }

    /// True while a reply for message `id` is still due.
    pub(super) fn awaits(&self, id: MessageId) -> bool {
        self.queue.iter().any(|p| p.kind.message() == Some(id))
    }

    /// The phase of the first reply due for message `id`.
    pub(super) fn phase_of(&self, id: MessageId) -> Option<Phase> {
        self.queue.iter().find(|p| p.kind.message() == Some(id)).map(|p| p.kind.phase())
    }

    /// The caller commands awaiting a reply.
    pub(super) fn ops(&self) -> impl Iterator<Item = OpId> + '_ {
        self.queue.iter().filter_map(|p| p.kind.op())
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    /// When the reply now awaited is due: its phase's time after the later of its write
    /// and the last reply (a reply to an earlier pipelined command restarts the wait).
    pub(super) fn deadline(&self, timeouts: &Timeouts, last_reply_at: Instant) -> Option<Instant> {
        let head = self.queue.front()?;
        let sent = head.sent_at?;
        Some(sent.max(last_reply_at) + timeouts.for_phase(head.kind.phase()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_starts_when_the_commands_last_octet_is_written() {
        let t0 = Instant::now();
        let mut q = InFlight::default();
        q.push(Kind::Noop(OpId(1)), 6);
        let timeouts = Timeouts::default();
        assert_eq!(q.deadline(&timeouts, t0), None, "handed over is not written");
        q.written(5, t0 + Duration::from_secs(1));
        assert_eq!(q.deadline(&timeouts, t0), None, "one octet short");
        q.written(6, t0 + Duration::from_secs(2));
        assert_eq!(q.deadline(&timeouts, t0), Some(t0 + Duration::from_secs(2) + timeouts.command));
    }

    #[test]
    fn messages_and_ops_are_found_in_the_queue() {
        let mut q = InFlight::default();
        q.push(Kind::DataEnd(MessageId(1)), 10);
        assert!(q.only_group_enders());
        q.push(Kind::Mail(MessageId(2)), 20);
        q.push(Kind::Vrfy(OpId(3)), 30);
        assert!(!q.only_group_enders());
        assert_eq!(q.phase_of(MessageId(2)), Some(Phase::Mail));
        assert!(q.awaits(MessageId(1)) && !q.awaits(MessageId(9)));
        assert_eq!(q.ops().collect::<Vec<_>>(), [OpId(3)]);
    }
}
