//! Bulk sending: many messages over the pool's connections, each connection streaming
//! them with [`Client::submit`](crate::Client::submit) and
//! [`Client::next_outcome`](crate::Client::next_outcome), with the pool's rate limit,
//! retries and metrics.

mod outcome;
mod worker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Pool, PoolError};
use crate::metrics::{Counter, Histogram};
use crate::proto::address::{Address, Envelope};
use crate::proto::code::ReplyCode;
use crate::proto::error::{Error, Phase};
use crate::proto::session::{RecipientResult, SendReport};
use crate::retry::{self, Retry, RetryPolicy, RetryReason};

pub use outcome::{BulkOptions, BulkSummary, MessageOutcome, Outgoing, Progress};

/// RFC 5321 4.5.3.1.8: "recipients buffer: The minimum total number of recipients that
/// MUST be buffered is 100 recipients." More than that may be refused, so larger
/// envelopes are split.
const RFC_MIN_RECIPIENTS: usize = 100;

/// RFC 5321 4.5.3.1.10: a server out of recipient slots answers `452`; "the client SHOULD
/// ... send the remaining recipients in a new transaction".
const TOO_MANY_RECIPIENTS: ReplyCode = ReplyCode(452);

/// One transaction to run.
struct Job {
    index: usize,
    /// (recipient chunk, continuation generation): sorts the message's transactions.
    order: (usize, usize),
    /// The recipients of this transaction; `None`: all of the message's (the usual case,
    /// which saves copying the envelope once more per message).
    envelope: Option<Envelope>,
    message: Arc<Outgoing>,
    /// Without a retry policy: retried once after a failure that provably sent nothing
    /// (see `nothing_committed`).
    retried: bool,
    /// This transaction's attempt, 1 for the first.
    attempt: u32,
    /// When the message was read: retries stop at the policy's deadline after it.
    first_at: Instant,
    /// Time from submission to outcome (when metrics are on).
    latency: Option<Duration>,
}

impl Job {
    fn envelope(&self) -> &Envelope {
        self.envelope.as_ref().unwrap_or(&self.message.envelope)
    }

    /// A message's first transaction.
    fn first(index: usize, order: (usize, usize), envelope: Option<Envelope>, message: Arc<Outgoing>) -> Job {
        Job {
            index,
            order,
            envelope,
            message,
            retried: false,
            attempt: 1,
            first_at: Instant::now(),
            latency: None,
        }
    }

    /// The next transaction of the same message, for `envelope`'s recipients.
    fn follow_up(&self, envelope: Envelope, attempt: u32) -> Job {
        Job {
            index: self.index,
            order: (self.order.0, self.order.1 + 1),
            envelope: Some(envelope),
            message: self.message.clone(),
            retried: false,
            attempt,
            first_at: self.first_at,
            latency: None,
        }
    }
}

struct Done {
    job: Job,
    result: Result<SendReport, PoolError>,
}

struct Slot {
    transactions: Vec<((usize, usize), Result<SendReport, PoolError>)>,
    pending: usize,
    attempts: u32,
    retries: Vec<Retry>,
    /// Recipients refused for good in an attempt whose other recipients went again: they
    /// are reported with the message's outcome (see `Slot::outcome`).
    refused: Vec<RecipientResult>,
}

impl Slot {
    fn new(pending: usize) -> Self {
        Self { transactions: Vec::new(), pending, attempts: 1, retries: Vec::new(), refused: Vec::new() }
    }

    /// The finished message. Recipients refused for good on an earlier attempt join the
    /// first accepted transaction's report (as refused recipients of an accepted
    /// transaction always are); if none was accepted, they are one more failed
    /// transaction.
    fn outcome(mut self) -> MessageOutcome {
        self.transactions.sort_by_key(|(order, _)| *order);
        let mut transactions: Vec<_> = self.transactions.into_iter().map(|(_, r)| r).collect();
        if !self.refused.is_empty() {
            match transactions.iter_mut().find_map(|t| t.as_mut().ok()) {
                Some(report) => report.recipients.append(&mut self.refused),
                None => transactions
                    .push(Err(PoolError::Smtp(Error::RecipientsRejected { recipients: self.refused }))),
            }
        }
        MessageOutcome { transactions, attempts: self.attempts, retries: self.retries }
    }
}

/// Transactions waiting out a retry delay, by when they are due (and a sequence number,
/// so equal times stay distinct).
#[derive(Default)]
struct Delayed {
    jobs: BTreeMap<(Instant, u64), Job>,
    seq: u64,
}

impl Delayed {
    fn push(&mut self, due: Instant, job: Job) {
        self.seq += 1;
        self.jobs.insert((due, self.seq), job);
    }

    fn next_due(&self) -> Option<Instant> {
        self.jobs.keys().next().map(|(due, _)| *due)
    }

    /// Moves every job due by `now` to the front of `ready`.
    fn release(&mut self, now: Instant, ready: &mut VecDeque<Job>) {
        while let Some(entry) = self.jobs.first_entry() {
            if entry.key().0 > now {
                return;
            }
            ready.push_front(entry.remove());
        }
    }
}

/// Decides the retries of one bulk call: the policy and a jitter source.
struct Retrier {
    policy: Option<RetryPolicy>,
    random: u64,
}

impl Retrier {
    fn next_random(&mut self) -> u64 {
        // xorshift64: spreads jitter, nothing more is asked of it.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    /// When a failed transaction goes again: its delay, and the retry to report.
    fn plan(
        &mut self,
        job: &Job,
        reason: RetryReason,
        error: Option<&PoolError>,
    ) -> Option<(Duration, Retry)> {
        let policy = self.policy?;
        let next = job.attempt + 1;
        let delay = policy.delay(next, self.next_random());
        if !policy.allows(next, job.first_at.elapsed(), delay) {
            return None;
        }
        let reply = error.and_then(PoolError::smtp).and_then(Error::reply).cloned();
        Some((delay, Retry { attempt: job.attempt, reason, delay, reply }))
    }
}

/// Whether a failed transaction may go again ([`retry::classify`]); a busy pool counts as
/// a connection failure, a closed pool or a rate-limit refusal does not.
fn retry_reason(e: &PoolError) -> Option<RetryReason> {
    match e {
        PoolError::Smtp(e) => retry::classify(e),
        PoolError::Timeout(_) => Some(RetryReason::Connection),
        _ => None,
    }
}

impl Pool {
    /// Sends every message over the pool with default [`BulkOptions`]; one outcome per
    /// message, in input order. See [`Pool::send_all_with`].
    pub async fn send_all<I>(&self, messages: I) -> Vec<MessageOutcome>
    where
        I: IntoIterator,
        I::Item: Into<Outgoing>,
    {
        self.send_all_with(messages, &BulkOptions::default(), |_| {}).await
    }

    /// Sends every message over up to `options.concurrency` pooled connections and returns
    /// one outcome per message, in input order; `progress` is called (on the caller's
    /// task) as each message finishes.
    ///
    /// Each connection takes up to `options.batch` transactions at a time and pipelines
    /// them with [`Client::submit`](crate::Client::submit): on a reused connection that
    /// is one round trip per message. Envelopes with more than `options.max_recipients`
    /// recipients are split into several transactions, and recipients a server defers
    /// with `452` go in a new transaction once the others are through.
    ///
    /// Without a retry policy, a transaction that failed before anything could be
    /// committed (the connection broke or closed before its end of data was written) is
    /// retried once on another connection. With one ([`BulkOptions::retry`],
    /// [`PoolBuilder::retry`](crate::pool::PoolBuilder::retry)), what [`crate::retry`]
    /// deems safe is retried with backoff, and recipients refused with a `4xx` go again
    /// alone. Nothing is ever resent after its final dot was written.
    ///
    /// The pool's rate limit ([`PoolBuilder::rate_limiter`](crate::pool::PoolBuilder::rate_limiter))
    /// applies to every transaction, retries included.
    ///
    /// The input is read lazily, a bounded number of messages ahead of the connections,
    /// but every outcome is kept until the end: for very large sends use
    /// [`Pool::send_each`], which hands each outcome over as it is known. Dropping the
    /// returned future stops the work; connections in mid-transaction are then closed,
    /// not pooled.
    pub async fn send_all_with<I, F>(
        &self,
        messages: I,
        options: &BulkOptions,
        mut progress: F,
    ) -> Vec<MessageOutcome>
    where
        I: IntoIterator,
        I::Item: Into<Outgoing>,
        F: FnMut(&Progress),
    {
        let mut outcomes: Vec<Option<MessageOutcome>> = Vec::new();
        self.send_with_progress(messages, options, |index, outcome, p| {
            progress(p);
            if outcomes.len() <= index {
                outcomes.resize_with(index + 1, || None);
            }
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        })
        .await;
        // Every message read is finished, so no slot is empty.
        outcomes.into_iter().map(|o| o.unwrap_or_else(MessageOutcome::closed)).collect()
    }

    /// Like [`Pool::send_all_with`], but hands each message's outcome to `finished`, with
    /// its input position, as soon as it is known (in completion order) instead of keeping
    /// them all: memory stays bounded by the messages in flight, whatever the input size.
    /// Returns how many messages were sent and how many failed.
    pub async fn send_each<I, F>(&self, messages: I, options: &BulkOptions, mut finished: F) -> BulkSummary
    where
        I: IntoIterator,
        I::Item: Into<Outgoing>,
        F: FnMut(usize, MessageOutcome),
    {
        self.send_with_progress(messages, options, |index, outcome, _| finished(index, outcome)).await
    }

    /// [`Pool::send_each`] that also hands over the [`Progress`] after each message.
    pub async fn send_with_progress<I, F>(
        &self,
        messages: I,
        options: &BulkOptions,
        mut finished: F,
    ) -> BulkSummary
    where
        I: IntoIterator,
        I::Item: Into<Outgoing>,
        F: FnMut(usize, MessageOutcome, &Progress),
    {
        let started = Instant::now();
        let policy = self.policy().clone();
        let mut summary = BulkSummary::default();
        let mut finish = |index: usize, slot: Slot, in_flight: usize| {
            let outcome = slot.outcome();
            super::policy::record_message(&policy, &outcome);
            if outcome.is_sent() {
                summary.sent += 1;
            } else {
                summary.failed += 1;
                summary.ambiguous += usize::from(outcome.is_ambiguous());
            }
            summary.retried += usize::from(!outcome.retries.is_empty());
            let progress = Progress {
                index,
                sent: outcome.is_sent(),
                completed: summary.sent + summary.failed,
                failed: summary.failed,
                ambiguous: summary.ambiguous,
                in_flight,
                elapsed: started.elapsed(),
            };
            finished(index, outcome, &progress);
        };
        let mut retrier =
            Retrier { policy: options.retry.or(policy.retry), random: retry::jitter_seed() | 1 };

        let workers = options.concurrency.unwrap_or(usize::MAX).min(self.inner.config.max_connections).max(1);
        let batch = options.batch;
        // Jobs travel in batches: a worker takes a whole batch at once, so its connection
        // pipelines them, and the tasks meet once per batch rather than once per message.
        let (job_tx, job_rx) = mpsc::channel::<Vec<Job>>(workers);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<Done>>();
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
        // A JoinSet aborts its tasks when dropped: if the caller drops this future, no
        // worker goes on sending.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            tasks.spawn(worker::worker(self.clone(), job_rx.clone(), done_tx.clone(), batch));
        }
        drop(done_tx);

        let mut input = messages.into_iter();
        let mut exhausted = false;
        let mut next_index = 0usize;
        let mut ready: VecDeque<Job> = VecDeque::new();
        let mut delayed = Delayed::default();
        // Messages read and not finished yet, by input position.
        let mut slots: HashMap<usize, Slot, BuildHasherDefault<PositionHasher>> = HashMap::default();
        let mut in_flight = 0usize;
        let mut stop = false;
        loop {
            // A batch is at most `batch` jobs, and smaller when the input looks short, so
            // a few messages still spread over the connections.
            let fill = batch.min(input.size_hint().0.div_ceil(workers)).max(1);
            while ready.len() < fill && !exhausted {
                match input.next() {
                    Some(m) => {
                        let index = next_index;
                        next_index += 1;
                        let pending = split(&mut ready, index, Arc::new(m.into()), options.max_recipients);
                        slots.insert(index, Slot::new(pending));
                        policy.count(Counter::MessagesSubmitted);
                    }
                    None => exhausted = true,
                }
            }
            if (ready.is_empty() && exhausted && in_flight == 0 && delayed.jobs.is_empty()) || stop {
                break;
            }
            let due = delayed.next_due();
            tokio::select! {
                // Results first: they free room and may add continuations.
                biased;
                done = done_rx.recv() => {
                    let Some(done) = done else {
                        // Every worker is gone (a panic): fail what is left below.
                        stop = true;
                        continue;
                    };
                    for Done { job, result } in done {
                        in_flight -= 1;
                        if let Some(latency) = job.latency {
                            policy.observe(Histogram::SendLatency, latency);
                        }
                        let Some(slot) = slots.get_mut(&job.index) else { continue };
                        let Some((job, result)) =
                            settle(job, result, slot, &mut retrier, &mut ready, &mut delayed, &policy)
                        else {
                            continue;
                        };
                        slot.attempts = slot.attempts.max(job.attempt);
                        slot.transactions.push((job.order, result));
                        slot.pending -= 1;
                        if slot.pending == 0 {
                            if let Some(slot) = slots.remove(&job.index) {
                                finish(job.index, slot, slots.len());
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    delayed.release(Instant::now(), &mut ready);
                }
                permit = job_tx.reserve(), if !ready.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            let jobs: Vec<Job> = ready.drain(..fill.min(ready.len())).collect();
                            in_flight += jobs.len();
                            permit.send(jobs);
                        }
                        Err(_) => stop = true,
                    }
                }
            }
        }
        drop(job_tx);
        while tasks.join_next().await.is_some() {}

        // Only if the workers are gone (a panic): whatever is unfinished gets an error
        // rather than vanishing. Transactions still in flight are unknown, hence Closed.
        let mut left: Vec<(usize, Slot)> = slots.into_iter().collect();
        left.sort_by_key(|(index, _)| *index);
        for (index, mut slot) in left {
            for _ in 0..slot.pending {
                slot.transactions.push(((usize::MAX, 0), Err(PoolError::Closed)));
            }
            finish(index, slot, 0);
        }
        summary
    }
}

/// What a finished transaction leads to: `None` when it goes again (now or after a
/// delay), else its final result. Accepted transactions may add follow-ups for recipients
/// deferred with `452` or, with a retry policy, refused with another `4xx`.
fn settle(
    mut job: Job,
    result: Result<SendReport, PoolError>,
    slot: &mut Slot,
    retrier: &mut Retrier,
    ready: &mut VecDeque<Job>,
    delayed: &mut Delayed,
    policy: &super::policy::Policy,
) -> Option<(Job, Result<SendReport, PoolError>)> {
    match result {
        Err(e) if retrier.policy.is_some() => {
            let Some(reason) = retry_reason(&e) else { return Some((job, Err(e))) };
            let Some((delay, retry)) = retrier.plan(&job, reason, Some(&e)) else {
                return Some((job, Err(e)));
            };
            if let RetryReason::Recipients { .. } = reason {
                // Only the recipients that may succeed later go again; the others are
                // kept for the outcome.
                let (again, refused): (Vec<&RecipientResult>, Vec<&RecipientResult>) = e
                    .smtp()
                    .map(Error::recipients)
                    .unwrap_or_default()
                    .iter()
                    .partition(|r| retry::waiting_helps(&r.reply));
                let again = again.into_iter().map(|r| r.address.clone()).collect();
                let Ok(envelope) = Envelope::new(job.envelope().from().cloned(), again) else {
                    return Some((job, Err(e)));
                };
                job.envelope = Some(envelope);
                slot.refused.extend(refused.into_iter().cloned());
            }
            slot.retries.push(retry);
            policy.count(Counter::MessagesRetried);
            job.attempt += 1;
            delayed.push(Instant::now() + delay, job);
            None
        }
        Err(e) if !job.retried && nothing_committed(&e) => {
            job.retried = true;
            ready.push_front(job);
            None
        }
        Err(e) => Some((job, Err(e))),
        Ok(mut report) => {
            if let Some(next) = continuation(&job, &mut report) {
                slot.pending += 1;
                ready.push_front(next);
            }
            if let Some((due, next, retry)) = recipient_retry(&job, &mut report, retrier) {
                slot.pending += 1;
                slot.retries.push(retry);
                policy.count(Counter::MessagesRetried);
                delayed.push(due, next);
            }
            Some((job, Ok(report)))
        }
    }
}

/// With a retry policy, after an accepted transaction in which some recipients got a
/// `4xx` that waiting may cure: a later transaction for those alone (they are removed
/// from `report`; the accepted ones are never sent twice).
fn recipient_retry(
    job: &Job,
    report: &mut SendReport,
    retrier: &mut Retrier,
) -> Option<(Instant, Job, Retry)> {
    retrier.policy?;
    let again: Vec<Address> = report
        .recipients
        .iter()
        .filter(|r| retry::waiting_helps(&r.reply))
        .map(|r| r.address.clone())
        .collect();
    if again.is_empty() {
        return None;
    }
    let reason = RetryReason::Recipients { count: again.len() };
    let (delay, mut retry) = retrier.plan(job, reason, None)?;
    retry.reply = report.recipients.iter().find(|r| retry::waiting_helps(&r.reply)).map(|r| r.reply.clone());
    let envelope = Envelope::new(job.envelope().from().cloned(), again).ok()?;
    report.recipients.retain(|r| !retry::waiting_helps(&r.reply));
    Some((Instant::now() + delay, job.follow_up(envelope, job.attempt + 1), retry))
}

/// Queues the message's transactions on `ready`, one per chunk of at most `max`
/// recipients, and returns how many.
fn split(ready: &mut VecDeque<Job>, index: usize, message: Arc<Outgoing>, max: usize) -> usize {
    let to = message.envelope.to();
    if to.len() <= max {
        ready.push_back(Job::first(index, (0, 0), None, message));
        return 1;
    }
    let from = message.envelope.from().cloned();
    let mut queued = 0;
    for (chunk, rcpts) in to.chunks(max).enumerate() {
        // Cannot fail: the parts come from a valid envelope and the chunk is not empty.
        let Ok(envelope) = Envelope::new(from.clone(), rcpts.to_vec()) else { continue };
        ready.push_back(Job::first(index, (chunk, 0), Some(envelope), message.clone()));
        queued += 1;
    }
    queued
}

/// Hashes input positions, which are distinct integers, with one multiplication
/// (Fibonacci hashing spreads them over the high bits the table looks at) instead of
/// SipHash: no untrusted keys here.
#[derive(Default)]
struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// After an accepted transaction in which the server deferred some recipients with `452`,
/// a new transaction for those; they are removed from `report` (they will be reported by
/// the new one). Each continuation has fewer recipients than its parent, so the chain
/// ends.
fn continuation(job: &Job, report: &mut SendReport) -> Option<Job> {
    let deferred: Vec<Address> = report
        .recipients
        .iter()
        .filter(|r| r.reply.code() == TOO_MANY_RECIPIENTS)
        .map(|r| r.address.clone())
        .collect();
    let parent = job.envelope();
    if deferred.is_empty() || deferred.len() >= parent.to().len() {
        return None;
    }
    let envelope = Envelope::new(parent.from().cloned(), deferred).ok()?;
    report.recipients.retain(|r| r.reply.code() != TOO_MANY_RECIPIENTS);
    Some(job.follow_up(envelope, job.attempt))
}

/// True when the transaction provably left nothing committed on the server and failed
/// because of its connection, not because the server refused it: safe to run again on
/// another connection. An ambiguous outcome (the end of data was written) never is.
fn nothing_committed(e: &PoolError) -> bool {
    match e {
        PoolError::Smtp(Error::SessionClosed | Error::ConnectionClosed(_) | Error::Io(_)) => true,
        // A 421 before the data: the server is closing this connection, not judging the
        // message.
        PoolError::Smtp(Error::Rejected {
            phase: Phase::Mail | Phase::Rcpt | Phase::Data, reply, ..
        }) => reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE,
        _ => false,
    }
}
