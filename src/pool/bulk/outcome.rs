//! What bulk sending takes and gives back: [`Outgoing`] messages, [`BulkOptions`], one
//! [`MessageOutcome`] per message, [`Progress`] as it goes, a [`BulkSummary`] at the end.

use std::time::Duration;

use super::RFC_MIN_RECIPIENTS;
use crate::pool::PoolError;
use crate::proto::session::{RecipientResult, SendReport};
use crate::retry::{Retry, RetryPolicy};

pub use crate::transport::Outgoing;

/// How [`Pool::send_all_with`](crate::pool::Pool::send_all_with) spreads the work.
#[derive(Clone, Debug)]
pub struct BulkOptions {
    pub(super) concurrency: Option<usize>,
    pub(super) batch: usize,
    pub(super) max_recipients: usize,
    pub(super) retry: Option<RetryPolicy>,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self { concurrency: None, batch: 32, max_recipients: RFC_MIN_RECIPIENTS, retry: None }
    }
}

impl BulkOptions {
    /// Connections used at once (default: the pool's maximum, which also caps it).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Messages handed to a connection at a time (default 32), and outcomes handed back
    /// at a time. A connection takes the next batch before the previous one drains, so
    /// it needs one round trip per message whatever the batch size.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Recipients per transaction (default 100, the minimum every server must accept);
    /// a message with more is sent once per chunk.
    pub fn max_recipients(mut self, n: usize) -> Self {
        self.max_recipients = n.max(1);
        self
    }

    /// Retries for this call (see [`crate::retry`]), instead of the pool's
    /// ([`PoolBuilder::retry`](crate::pool::PoolBuilder::retry)).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// What happened to one message of a bulk send.
///
/// A message usually takes one transaction. It takes several when its recipients were
/// split ([`BulkOptions::max_recipients`]), when the server answered `452` (too many
/// recipients) and the rest went in a new transaction, or when recipients refused with a
/// `4xx` were retried; recipients moved to a later transaction are listed only in the
/// transaction that finally carried them. A transaction retried as a whole appears once,
/// with its last attempt's result.
#[derive(Clone, Debug)]
pub struct MessageOutcome {
    /// One result per transaction, in recipient order.
    pub transactions: Vec<Result<SendReport, PoolError>>,
    /// Attempts of the transaction that took the most (1 when nothing was retried).
    pub attempts: u32,
    /// Every retry, in the order they were decided, with why.
    pub retries: Vec<Retry>,
}

impl MessageOutcome {
    /// A message the pool could not even start (it was closed).
    pub(crate) fn closed() -> Self {
        Self { transactions: vec![Err(PoolError::Closed)], attempts: 1, retries: Vec::new() }
    }

    /// True when every transaction was accepted by the server (some recipients may still
    /// have been refused: see [`MessageOutcome::rejected`]).
    pub fn is_sent(&self) -> bool {
        !self.transactions.is_empty() && self.transactions.iter().all(Result::is_ok)
    }

    /// True when a transaction's outcome is unknown (the link failed after its final dot):
    /// the message may have been delivered.
    pub fn is_ambiguous(&self) -> bool {
        self.transactions.iter().any(|t| t.as_ref().is_err_and(PoolError::is_ambiguous))
    }

    /// The first failed transaction's error.
    pub fn error(&self) -> Option<&PoolError> {
        self.transactions.iter().find_map(|t| t.as_ref().err())
    }

    /// Recipients that will get the message.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientResult> {
        self.reports().flat_map(SendReport::accepted)
    }

    /// Recipients the server refused in transactions that went through. Recipients of a
    /// failed transaction are in its error ([`Error::recipients`](crate::Error::recipients)).
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.reports().flat_map(SendReport::rejected)
    }

    fn reports(&self) -> impl Iterator<Item = &SendReport> {
        self.transactions.iter().filter_map(|t| t.as_ref().ok())
    }
}

/// Passed to the progress callback each time a message is finished. Building it costs a
/// few additions; the callback runs on the caller's task.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// The message's position in the input.
    pub index: usize,
    /// Whether it was sent ([`MessageOutcome::is_sent`]).
    pub sent: bool,
    /// Messages finished so far, this one included.
    pub completed: usize,
    /// Of those, how many failed (ambiguous ones included).
    pub failed: usize,
    /// Of the failed ones, how many may have been delivered ([`MessageOutcome::is_ambiguous`]).
    pub ambiguous: usize,
    /// Messages read from the input and not finished yet (in flight or waiting to retry).
    pub in_flight: usize,
    /// Time since the bulk send started.
    pub elapsed: Duration,
}

impl Progress {
    /// Messages accepted so far.
    pub fn sent_so_far(&self) -> usize {
        self.completed - self.failed
    }

    /// Finished messages per second since the start.
    pub fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.completed as f64 / secs } else { 0.0 }
    }
}

/// How many messages a [`Pool::send_each`](crate::pool::Pool::send_each) call sent and
/// how many failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkSummary {
    /// Messages whose every transaction was accepted ([`MessageOutcome::is_sent`]).
    pub sent: usize,
    /// The others, ambiguous ones included.
    pub failed: usize,
    /// Of the failed ones, those whose outcome is unknown.
    pub ambiguous: usize,
    /// Messages with at least one retry.
    pub retried: usize,
}
