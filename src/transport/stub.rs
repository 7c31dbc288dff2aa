//! An in-memory transport for unit tests: it records every message and answers with
//! scripted outcomes, so retry logic can be tested without a server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BlockingTransport, Outgoing, SendFuture, Transport, all_accepted};
use crate::proto::address::Address;
use crate::proto::error::{Error, Phase};
use crate::proto::reply::Reply;
use crate::proto::session::{MessageId, RecipientResult, SendReport};

/// What the stub answers to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StubOutcome {
    /// Every recipient accepted (`250 2.0.0 Ok: queued`).
    Accept,
    /// These recipients refused with `550 5.1.1`, the others accepted; when none is left
    /// the message fails with [`Error::RecipientsRejected`].
    RejectRecipients(Vec<Address>),
    /// The whole message refused with this reply at `MAIL` (a `451` for a transient
    /// failure, a `554` for a permanent one): [`Error::Rejected`].
    Reject(Reply),
    /// The connection broke after the final dot: [`Error::Ambiguous`].
    Ambiguous,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<StubOutcome>,
    sent: Vec<Outgoing>,
    attempts: usize,
}

/// Records messages in memory and answers with [`StubOutcome`]s: the scripted ones first
/// (one per message, in order), then the default (accept everything).
///
/// ```
/// use smtpkit::transport::{BlockingTransport, StubOutcome, StubTransport};
/// use smtpkit::{Envelope, Outgoing, Reply};
///
/// let stub = StubTransport::new().then(StubOutcome::Reject(Reply::single(451, "4.3.0 try later")));
/// let msg = Outgoing::new(Envelope::parse("a@example.com", &["b@example.org"]).unwrap(), "Subject: x\r\n\r\n");
/// let first = BlockingTransport::send(&stub, msg.clone());
/// assert!(first.unwrap_err().is_transient());
/// assert!(BlockingTransport::send(&stub, msg).is_ok());
/// assert_eq!((stub.attempts(), stub.messages().len()), (2, 1));
/// ```
#[derive(Clone, Debug, Default)]
pub struct StubTransport {
    state: Arc<Mutex<State>>,
    fallback: Arc<Mutex<Option<StubOutcome>>>,
}

impl StubTransport {
    /// A stub that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `outcome` for the next message not yet scripted.
    pub fn then(self, outcome: StubOutcome) -> Self {
        self.lock().script.push_back(outcome);
        self
    }

    /// What to answer once the script is used up (default [`StubOutcome::Accept`]).
    pub fn otherwise(self, outcome: StubOutcome) -> Self {
        *self.fallback.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self
    }

    /// The messages the stub accepted (fully or for some recipients), in order.
    pub fn messages(&self) -> Vec<Outgoing> {
        self.lock().sent.clone()
    }

    /// How many sends were attempted, accepted or not.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, message: Outgoing) -> Result<SendReport, Error> {
        let mut state = self.lock();
        state.attempts += 1;
        let id = state.attempts as u64;
        let outcome = match state.script.pop_front() {
            Some(outcome) => outcome,
            None => {
                self.fallback.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(StubOutcome::Accept)
            }
        };
        let result = outcome_for(id, &message, outcome);
        if result.is_ok() {
            state.sent.push(message);
        }
        result
    }
}

fn outcome_for(id: u64, message: &Outgoing, outcome: StubOutcome) -> Result<SendReport, Error> {
    let queued = Reply::single(250, &format!("2.0.0 Ok: queued as STUB{id}"));
    match outcome {
        StubOutcome::Accept => Ok(all_accepted(id, message, queued)),
        StubOutcome::RejectRecipients(refused) => {
            let recipients: Vec<RecipientResult> = message
                .envelope
                .to()
                .iter()
                .map(|address| {
                    let reply = if refused.contains(address) {
                        Reply::single(550, "5.1.1 Recipient address rejected: stub")
                    } else {
                        Reply::single(250, "2.1.5 Ok")
                    };
                    RecipientResult { address: address.clone(), reply }
                })
                .collect();
            if recipients.iter().all(|r| !r.accepted()) {
                return Err(Error::RecipientsRejected { recipients });
            }
            Ok(SendReport { id: MessageId(id), reply: queued, recipients })
        }
        StubOutcome::Reject(reply) => {
            Err(Error::Rejected { phase: Phase::Mail, reply, recipients: Vec::new() })
        }
        StubOutcome::Ambiguous => {
            let recipients = all_accepted(id, message, Reply::single(250, "2.1.5 Ok")).recipients;
            Err(Error::Ambiguous { cause: Box::new(Error::ConnectionClosed(Phase::DataEnd)), recipients })
        }
    }
}

impl Transport for StubTransport {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        let result = self.answer(message);
        Box::pin(async move { result })
    }
}

impl BlockingTransport for StubTransport {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        self.answer(message)
    }
}
