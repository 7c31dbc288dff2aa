//! A batch of messages queued at once (`send_many`), whose outcomes are gathered from the
//! session's events in input order. Shared by the tokio and the blocking client, so the
//! bookkeeping is written once.

use bytes::Bytes;

use super::{Event, MessageId, SendReport, Session};
use crate::proto::address::Envelope;
use crate::proto::error::Error;
use crate::proto::params::MessageOptions;

/// The outcomes of a batch, in input order, as they arrive.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The submission handle of each input, or `None` when it was refused before queuing.
    ids: Vec<Option<MessageId>>,
    results: Vec<Option<Result<SendReport, Error>>>,
    missing: usize,
}

impl Batch {
    /// Queues every message on `session`; one refused before `MAIL` (an invalid body, say)
    /// has its error at once and the others still go.
    pub(crate) fn queue(
        session: &mut Session,
        messages: impl IntoIterator<Item = (Envelope, Bytes, MessageOptions)>,
    ) -> Self {
        let mut batch = Self { ids: Vec::new(), results: Vec::new(), missing: 0 };
        for (envelope, body, options) in messages {
            let queued = session.send_message(envelope, body, options);
            batch.missing += usize::from(queued.is_ok());
            let (id, result) = match queued {
                Ok(id) => (Some(id), None),
                Err(e) => (None, Some(Err(e))),
            };
            batch.ids.push(id);
            batch.results.push(result);
        }
        batch
    }

    /// True while some queued message has no outcome yet.
    pub(crate) fn is_waiting(&self) -> bool {
        self.missing > 0
    }

    /// Takes `event` when it is the outcome of one of the batch's messages; any other
    /// event is given back.
    pub(crate) fn take(&mut self, event: Event) -> Option<Event> {
        let Event::Message { id, result } = event else { return Some(event) };
        let slot = self.ids.iter().position(|i| *i == Some(id)).and_then(|pos| self.results.get_mut(pos));
        match slot {
            Some(slot @ None) => {
                *slot = Some(result);
                self.missing -= 1;
                None
            }
            _ => Some(Event::Message { id, result }),
        }
    }

    /// The outcomes in input order; a message the session never reported (it cannot
    /// happen: a close fails every queued message) is `SessionClosed`.
    pub(crate) fn finish(self) -> Vec<Result<SendReport, Error>> {
        self.results.into_iter().map(|r| r.unwrap_or(Err(Error::SessionClosed))).collect()
    }
}
