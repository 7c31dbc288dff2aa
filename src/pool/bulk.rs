//! Bulk sending: many messages over the pool's connections, each connection streaming
//! them with [`Client::submit`](crate::Client::submit) and
//! [`Client::next_outcome`](crate::Client::next_outcome).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Pool, PoolError, PooledClient};
use crate::proto::address::{Address, Envelope};
use crate::proto::code::ReplyCode;
use crate::proto::error::{Error, Phase};
use crate::proto::session::{MessageId, RecipientResult, SendReport};

/// RFC 5321 4.5.3.1.8: "recipients buffer: The minimum total number of recipients that
/// MUST be buffered is 100 recipients." More than that may be refused, so larger
/// envelopes are split.
const RFC_MIN_RECIPIENTS: usize = 100;

/// RFC 5321 4.5.3.1.10: a server out of recipient slots answers `452`; "the client SHOULD
/// ... send the remaining recipients in a new transaction".
const TOO_MANY_RECIPIENTS: ReplyCode = ReplyCode(452);

pub use crate::transport::Outgoing;

/// How [`Pool::send_all_with`] spreads the work.
#[derive(Clone, Debug)]
pub struct BulkOptions {
    concurrency: Option<usize>,
    batch: usize,
    max_recipients: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self { concurrency: None, batch: 32, max_recipients: RFC_MIN_RECIPIENTS }
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
}

/// What happened to one message of a bulk send.
///
/// A message usually takes one transaction. It takes several when its recipients were
/// split ([`BulkOptions::max_recipients`]) or when the server answered `452` (too many
/// recipients) and the rest went in a new transaction; recipients deferred that way are
/// listed only in the transaction that finally carried them.
#[derive(Clone, Debug)]
pub struct MessageOutcome {
    /// One result per transaction, in recipient order.
    pub transactions: Vec<Result<SendReport, PoolError>>,
}

impl MessageOutcome {
    /// True when every transaction was accepted by the server (some recipients may still
    /// have been refused: see [`MessageOutcome::rejected`]).
    pub fn is_sent(&self) -> bool {
        !self.transactions.is_empty() && self.transactions.iter().all(Result::is_ok)
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
    /// failed transaction are in its error ([`Error::recipients`]).
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.reports().flat_map(SendReport::rejected)
    }

    fn reports(&self) -> impl Iterator<Item = &SendReport> {
        self.transactions.iter().filter_map(|t| t.as_ref().ok())
    }
}

/// Passed to the progress callback each time a message is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The message's position in the input.
    pub index: usize,
    /// Whether it was sent ([`MessageOutcome::is_sent`]).
    pub sent: bool,
    /// Messages finished so far, this one included.
    pub completed: usize,
    /// Of those, how many failed.
    pub failed: usize,
}

/// One transaction to run.
struct Job {
    index: usize,
    /// (recipient chunk, 452 continuation generation): sorts the message's transactions.
    order: (usize, usize),
    /// The recipients of this transaction; `None`: all of the message's (the usual case,
    /// which saves copying the envelope once more per message).
    envelope: Option<Envelope>,
    message: Arc<Outgoing>,
    /// Retries after a failure that provably sent nothing (see `nothing_committed`).
    retried: bool,
}

impl Job {
    fn envelope(&self) -> &Envelope {
        self.envelope.as_ref().unwrap_or(&self.message.envelope)
    }
}

struct Done {
    job: Job,
    result: Result<SendReport, PoolError>,
}

#[derive(Default)]
struct Slot {
    transactions: Vec<((usize, usize), Result<SendReport, PoolError>)>,
    pending: usize,
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
    /// them with [`Client::send_many`](crate::Client::send_many): on a reused connection
    /// that is one round trip per message. Envelopes with more than
    /// `options.max_recipients` recipients are split into several transactions, and
    /// recipients a server defers with `452` go in a new transaction once the others are
    /// through. A transaction that failed before anything could be committed (the
    /// connection broke or closed before its end of data was written) is retried once on
    /// another connection; nothing is ever resent after its final dot was written.
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
        let (mut completed, mut failed) = (0usize, 0usize);
        self.send_each(messages, options, |index, outcome| {
            let sent = outcome.is_sent();
            completed += 1;
            failed += usize::from(!sent);
            progress(&Progress { index, sent, completed, failed });
            if outcomes.len() <= index {
                outcomes.resize_with(index + 1, || None);
            }
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        })
        .await;
        // `send_each` finishes every message it read, so no slot is empty.
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| MessageOutcome { transactions: vec![Err(PoolError::Closed)] }))
            .collect()
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
        let mut summary = BulkSummary::default();
        let mut finish = |index: usize, mut slot: Slot| {
            slot.transactions.sort_by_key(|(order, _)| *order);
            let outcome =
                MessageOutcome { transactions: slot.transactions.into_iter().map(|(_, r)| r).collect() };
            if outcome.is_sent() {
                summary.sent += 1;
            } else {
                summary.failed += 1;
            }
            finished(index, outcome);
        };

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
            tasks.spawn(worker(self.clone(), job_rx.clone(), done_tx.clone(), batch));
        }
        drop(done_tx);

        let mut input = messages.into_iter();
        let mut exhausted = false;
        let mut next_index = 0usize;
        let mut ready: VecDeque<Job> = VecDeque::new();
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
                        slots.insert(index, Slot { transactions: Vec::new(), pending });
                    }
                    None => exhausted = true,
                }
            }
            if (ready.is_empty() && exhausted && in_flight == 0) || stop {
                break;
            }
            tokio::select! {
                // Results first: they free room and may add continuations.
                biased;
                done = done_rx.recv() => {
                    let Some(done) = done else {
                        // Every worker is gone (a panic): fail what is left below.
                        stop = true;
                        continue;
                    };
                    for Done { mut job, result } in done {
                        in_flight -= 1;
                        let result = match result {
                            Err(e) if !job.retried && nothing_committed(&e) => {
                                job.retried = true;
                                ready.push_front(job);
                                continue;
                            }
                            Ok(mut report) => {
                                if let Some(next) = continuation(&job, &mut report) {
                                    if let Some(slot) = slots.get_mut(&job.index) {
                                        slot.pending += 1;
                                    }
                                    ready.push_front(next);
                                }
                                Ok(report)
                            }
                            Err(e) => Err(e),
                        };
                        if let Some(slot) = slots.get_mut(&job.index) {
                            slot.transactions.push((job.order, result));
                            slot.pending -= 1;
                            if slot.pending == 0 {
                                if let Some(slot) = slots.remove(&job.index) {
                                    finish(job.index, slot);
                                }
                            }
                        }
                    }
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
            finish(index, slot);
        }
        summary
    }
}

/// How many messages a [`Pool::send_each`] call sent and how many failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkSummary {
    /// Messages whose every transaction was accepted ([`MessageOutcome::is_sent`]).
    pub sent: usize,
    /// The others.
    pub failed: usize,
}

/// Queues the message's transactions on `ready`, one per chunk of at most `max`
/// recipients, and returns how many.
fn split(ready: &mut VecDeque<Job>, index: usize, message: Arc<Outgoing>, max: usize) -> usize {
    let to = message.envelope.to();
    if to.len() <= max {
        ready.push_back(Job { index, order: (0, 0), envelope: None, message, retried: false });
        return 1;
    }
    let from = message.envelope.from().cloned();
    let mut queued = 0;
    for (chunk, rcpts) in to.chunks(max).enumerate() {
        // Cannot fail: the parts come from a valid envelope and the chunk is not empty.
        let Ok(envelope) = Envelope::new(from.clone(), rcpts.to_vec()) else { continue };
        ready.push_back(Job {
            index,
            order: (chunk, 0),
            envelope: Some(envelope),
            message: message.clone(),
            retried: false,
        });
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
    Some(Job {
        index: job.index,
        order: (job.order.0, job.order.1 + 1),
        envelope: Some(envelope),
        message: job.message.clone(),
        retried: false,
    })
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

/// Takes batches of jobs and streams them over one pooled connection at a time. The next
/// batch is submitted while the last messages of the previous one are still in flight,
/// so the connection never drains between batches: one round trip per message
/// throughout, and the caller's task wakes once per batch of outcomes.
async fn worker(
    pool: Pool,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<Job>>>>,
    done: mpsc::UnboundedSender<Vec<Done>>,
    batch: usize,
) {
    let mut stream = Stream { queue: VecDeque::new(), waiting: VecDeque::new(), finished: Vec::new() };
    let mut conn: Option<PooledClient> = None;
    // Set when the connection takes no more messages (closed, or at its message limit):
    // it is let go once its outcomes are in.
    let mut full = false;
    let mut no_more_jobs = false;
    // Fetch the next batch when this few messages are left in flight: well before the
    // connection runs dry, without one worker hoarding the input.
    let low_water = (batch / 4).max(1);
    loop {
        if stream.queue.is_empty() && !no_more_jobs && stream.waiting.len() <= low_water {
            if stream.waiting.is_empty() {
                // Nothing in flight: hand over what is finished, give the connection back
                // while this worker waits for work, and wait.
                stream.flush(&done);
                conn = None;
                full = false;
                match jobs.lock().await.recv().await {
                    Some(taken) => stream.queue.extend(taken),
                    None => no_more_jobs = true,
                }
            } else if let Ok(mut rx) = jobs.try_lock() {
                match rx.try_recv() {
                    Ok(taken) => stream.queue.extend(taken),
                    Err(mpsc::error::TryRecvError::Disconnected) => no_more_jobs = true,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
            }
        }
        if stream.waiting.is_empty() {
            if stream.queue.is_empty() && no_more_jobs {
                stream.flush(&done);
                return;
            }
            if full {
                conn = None;
                full = false;
            }
        }
        if conn.is_none() && !stream.queue.is_empty() {
            match pool.get().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    stream.fail_queue(&e);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if !full {
            full = stream.submit(c);
        }
        if !stream.waiting.is_empty() {
            stream.collect_one(c).await;
            if stream.finished.len() >= batch {
                stream.flush(&done);
            }
        }
    }
}

/// One worker's jobs: taken from the channel, submitted to its connection, finished.
struct Stream {
    queue: VecDeque<Job>,
    waiting: VecDeque<(MessageId, Job)>,
    finished: Vec<Done>,
}

impl Stream {
    /// Submits the queued jobs to `conn`; true when it takes no more (closed or at its
    /// message limit), with the rest left queued for the next connection.
    fn submit(&mut self, conn: &mut PooledClient) -> bool {
        while let Some(job) = self.queue.pop_front() {
            if conn.remaining_messages() == 0 {
                self.queue.push_front(job);
                return true;
            }
            let message = &job.message;
            match conn.submit(job.envelope().clone(), message.message.clone(), message.options.clone()) {
                Ok(id) => self.waiting.push_back((id, job)),
                // The connection is gone; nothing of this job was sent.
                Err(Error::SessionClosed) => {
                    self.queue.push_front(job);
                    return true;
                }
                Err(e) => self.finished.push(Done { job, result: Err(e.into()) }),
            }
        }
        false
    }

    /// Waits for the next outcome on `conn`.
    async fn collect_one(&mut self, conn: &mut PooledClient) {
        match conn.next_outcome().await {
            Some((id, result)) => {
                // Outcomes arrive in submission order; matched by id all the same.
                let pos = self.waiting.iter().position(|(waiting, _)| *waiting == id);
                if let Some((_, job)) = pos.and_then(|pos| self.waiting.remove(pos)) {
                    self.finished.push(Done { job, result: result.map_err(PoolError::from) });
                }
            }
            None => {
                for (_, job) in self.waiting.drain(..) {
                    self.finished.push(Done { job, result: Err(PoolError::from(Error::SessionClosed)) });
                }
            }
        }
    }

    /// Every queued job fails with `e` (no connection to be had).
    fn fail_queue(&mut self, e: &PoolError) {
        let failed = self.queue.drain(..).map(|job| Done { job, result: Err(e.clone()) });
        self.finished.extend(failed);
    }

    /// Hands the finished jobs to the caller's task in one message.
    fn flush(&mut self, done: &mpsc::UnboundedSender<Vec<Done>>) {
        if !self.finished.is_empty() {
            let _ = done.send(std::mem::take(&mut self.finished));
        }
    }
}
