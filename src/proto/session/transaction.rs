//! One message: its envelope and body, the replies to its MAIL and RCPTs, and how far its
//! end of data got.

use bytes::Bytes;

use super::super::address::Envelope;
use super::super::code::ReplyCode;
use super::super::dot_stuff::BodyInfo;
use super::super::error::{Error, Phase};
use super::super::params::MessageOptions;
use super::super::reply::Reply;
use super::events::{MessageId, RecipientResult, SendReport};

/// How far the end of data (the final dot, or the last BDAT chunk) got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Not in the output yet.
    Open,
    /// In the output, ending at this position; not written yet.
    Queued(u64),
    /// The write carrying its last octet completed: from here on a lost link is
    /// ambiguous.
    Written,
    /// RFC 2920 section 3.1: DATA got 354 although no recipient was accepted, so only the
    /// terminator is sent; nothing can be delivered, whatever happens to it.
    Aborted,
}

pub(super) struct Tx {
    pub(super) id: MessageId,
    pub(super) envelope: Envelope,
    pub(super) body: Bytes,
    pub(super) info: BodyInfo,
    pub(super) opts: MessageOptions,
    pub(super) bdat: bool,
    pub(super) mail: Option<Reply>,
    pub(super) rcpts: Vec<Option<Reply>>,
    /// A negative reply to a BDAT chunk: the transaction has failed.
    pub(super) bdat_failed: Option<Reply>,
    pub(super) end: End,
    /// LMTP per-recipient replies after the final dot, in RCPT order of the accepted ones.
    pub(super) lmtp: Vec<Reply>,
}

/// The body shows as its length only: `Debug` of a session never prints message data.
impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("id", &self.id)
            .field("envelope", &self.envelope)
            .field("body_len", &self.body.len())
            .field("opts", &self.opts)
            .field("bdat", &self.bdat)
            .field("mail", &self.mail)
            .field("rcpts", &self.rcpts)
            .field("bdat_failed", &self.bdat_failed)
            .field("end", &self.end)
            .field("lmtp", &self.lmtp)
            .finish()
    }
}

impl Tx {
    pub(super) fn new(
        id: MessageId,
        envelope: Envelope,
        body: Bytes,
        info: BodyInfo,
        opts: MessageOptions,
    ) -> Self {
        let rcpts = vec![None; envelope.to().len()];
        Self {
            id,
            envelope,
            body,
            info,
            opts,
            bdat: false,
            mail: None,
            rcpts,
            bdat_failed: None,
            end: End::Open,
            lmtp: Vec::new(),
        }
    }

    pub(super) fn mail_ok(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_positive)
    }

    pub(super) fn accepted(&self) -> usize {
        self.rcpts.iter().flatten().filter(|r| r.is_positive()).count()
    }

    pub(super) fn all_rcpts_known(&self) -> bool {
        self.rcpts.iter().all(Option::is_some)
    }

    pub(super) fn results(&self) -> Vec<RecipientResult> {
        self.envelope
            .to()
            .iter()
            .zip(&self.rcpts)
            .filter_map(|(a, r)| r.as_ref().map(|r| RecipientResult { address: a.clone(), reply: r.clone() }))
            .collect()
    }

    /// The output up to `upto` is written.
    pub(super) fn written(&mut self, upto: u64) {
        if let End::Queued(at) = self.end {
            if at <= upto {
                self.end = End::Written;
            }
        }
    }

    /// The replies received so far rule out delivery: MAIL was refused, or every RCPT
    /// reply is in and none accepted.
    pub(super) fn envelope_refused(&self) -> bool {
        let mail_refused = self.mail.as_ref().is_some_and(|r| !r.is_positive());
        mail_refused || (self.all_rcpts_known() && self.accepted() == 0)
    }

    /// The error for a transaction that cannot deliver to anyone.
    pub(super) fn envelope_failure(&self) -> Error {
        match &self.mail {
            Some(r) if !r.is_positive() => {
                Error::Rejected { phase: Phase::Mail, reply: r.clone(), recipients: Vec::new() }
            }
            _ => Error::RecipientsRejected { recipients: self.results() },
        }
    }

    /// The outcome when the session ends with `err` before this message's final reply;
    /// `phase` is where the message itself was (its first reply still due), `None` when
    /// none of its commands is out.
    pub(super) fn lost(&self, err: &Error, phase: Option<Phase>) -> Error {
        match self.end {
            // The replies already in prove nothing can be delivered (e.g. a pipelined BDAT
            // LAST went out, then every RCPT was refused): not ambiguous.
            End::Written if self.envelope_refused() => self.envelope_failure(),
            End::Written => Error::Ambiguous { cause: Box::new(err.clone()), recipients: self.results() },
            End::Open | End::Queued(_) | End::Aborted => match phase {
                Some(phase) => rephase(err, phase),
                // Not started: the session's failure is this message's failure.
                None => err.clone(),
            },
        }
    }

    /// LMTP (RFC 2033 section 4.2): the per-recipient replies after the dot, each
    /// replacing its recipient's RCPT reply; `rest` stands for the accepted recipients
    /// whose reply never came (a 421 instead). `None` when no recipient was accepted.
    pub(super) fn lmtp_report(&mut self, rest: Option<&Reply>) -> Option<Result<SendReport, Error>> {
        let mut finals = std::mem::take(&mut self.lmtp).into_iter();
        let mut recipients = self.results();
        for r in recipients.iter_mut().filter(|r| r.accepted()) {
            match (finals.next(), rest) {
                (Some(f), _) => r.reply = f,
                (None, Some(rest)) => r.reply = rest.clone(),
                (None, None) => {}
            }
        }
        if let Some(first) = recipients.iter().find(|r| r.accepted()) {
            return Some(Ok(SendReport { id: self.id, reply: first.reply.clone(), recipients }));
        }
        let reply = recipients.last()?.reply.clone();
        Some(Err(Error::Rejected { phase: Phase::DataEnd, reply, recipients }))
    }
}

/// `err` as seen by a message that was in `phase`: a 421 or a closed connection names
/// where this message was, not where the session's head was (a second pipelined message
/// after a 421 to the first dot was at its MAIL, and nothing of it was committed).
fn rephase(err: &Error, phase: Phase) -> Error {
    match err {
        // Only a 421 speaks for every command ("service not available"); any other reply
        // answered one command, and stays with it.
        Error::Rejected { reply, recipients, .. } if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE => {
            Error::Rejected { phase, reply: reply.clone(), recipients: recipients.clone() }
        }
        Error::ConnectionClosed(_) => Error::ConnectionClosed(phase),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::dot_stuff::{LineEndings, analyze};

    fn tx() -> Tx {
        let envelope = Envelope::parse("a@x.test", &["b@y.test", "c@y.test"]).unwrap();
        let body = Bytes::from_static(b"secret body\r\n");
        let info = analyze(&body, LineEndings::Normalize).unwrap();
        Tx::new(MessageId(1), envelope, body, info, MessageOptions::default())
    }

    #[test]
    fn ambiguous_only_once_the_end_is_written() {
        let mut t = tx();
        t.mail = Some(Reply::single(250, "ok"));
        t.rcpts = vec![Some(Reply::single(250, "ok")), Some(Reply::single(250, "ok"))];
        let err = Error::ConnectionClosed(Phase::DataEnd);
        t.end = End::Queued(100);
        t.written(99);
        assert!(!t.lost(&err, Some(Phase::DataEnd)).is_ambiguous());
        t.written(100);
        assert_eq!(t.end, End::Written);
        assert!(t.lost(&err, Some(Phase::DataEnd)).is_ambiguous());
    }

    #[test]
    fn a_lost_message_keeps_its_own_phase() {
        let t = tx();
        let err =
            Error::Rejected { phase: Phase::DataEnd, reply: Reply::single(421, "bye"), recipients: vec![] };
        match t.lost(&err, Some(Phase::Mail)) {
            Error::Rejected { phase: Phase::Mail, .. } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lmtp_replies_that_came_stay_delivered() {
        let mut t = tx();
        t.mail = Some(Reply::single(250, "ok"));
        t.rcpts = vec![Some(Reply::single(250, "ok")), Some(Reply::single(250, "ok"))];
        t.lmtp = vec![Reply::single(250, "delivered to b")];
        let report = t.lmtp_report(Some(&Reply::single(421, "bye"))).unwrap().unwrap();
        assert_eq!(report.accepted().count(), 1);
        assert_eq!(report.rejected().next().unwrap().reply.code().0, 421);
    }

    #[test]
    fn debug_never_shows_the_body() {
        assert!(!format!("{:?}", tx()).contains("secret"));
    }
}
