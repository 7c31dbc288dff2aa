//! A bulk worker: takes batches of jobs and streams them over one pooled connection at a
//! time, taking each message's rate token before it is submitted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Done, Job};
use crate::metrics::Histogram;
use crate::pool::policy::Policy;
use crate::pool::{Pool, PoolError, PooledClient};
use crate::proto::error::Error;
use crate::proto::session::MessageId;
use crate::rate::{Cost, RateError, RateLimiter};

/// How far ahead a worker reserves tokens for the jobs it holds: enough to cover a
/// round trip to the limiter and the timer's granularity, so no slot goes unused while a
/// worker is busy, and little enough that few tokens are lost if its connection breaks.
const LOOKAHEAD: Duration = Duration::from_millis(20);

/// A job is submitted this close to its slot: tokio's timer fires on millisecond ticks,
/// so waiting for the exact instant would leave every slot up to a tick late.
const EARLY: Duration = Duration::from_millis(1);

/// The rate limit as a worker applies it.
struct Limit {
    limiter: Arc<dyn RateLimiter>,
    /// Longest wait for one token.
    max_wait: Duration,
    /// A connection with nothing in flight is given back while its worker waits longer
    /// than this for a token: the time the pool trusts an idle connection unprobed.
    patience: Duration,
}

/// Takes batches of jobs and streams them over one pooled connection at a time. The next
/// batch is submitted while the last messages of the previous one are still in flight,
/// so the connection never drains between batches: one round trip per message
/// throughout, and the caller's task wakes once per batch of outcomes.
pub(super) async fn worker(
    pool: Pool,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<Job>>>>,
    done: mpsc::UnboundedSender<Vec<Done>>,
    batch: usize,
) {
    let policy = pool.policy().clone();
    let config = pool.config();
    let limit = policy.rate.clone().map(|limiter| Limit {
        limiter,
        max_wait: policy.rate_wait.unwrap_or(config.wait_timeout),
        patience: config.probe_after.unwrap_or(Duration::from_secs(10)),
    });
    let timed = policy.metrics.is_some();
    let mut stream = Stream {
        queue: VecDeque::new(),
        waiting: VecDeque::new(),
        finished: Vec::new(),
        due: VecDeque::new(),
        timed,
    };
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
            // The token comes before the connection: nothing sits checked out waiting.
            if let Some(limit) = &limit {
                if stream.due.is_empty() {
                    if let Some(wait) = stream.take_token(limit).await {
                        pause(&policy, wait).await;
                    }
                    continue;
                }
            }
            let start = timed.then(Instant::now);
            let got = pool.get().await;
            if let Some(start) = start {
                policy.observe(Histogram::ConnectionWait, start.elapsed());
            }
            match got {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    stream.fail_queue(&e);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if !full {
            if let Some(limit) = &limit {
                stream.grant_ready(limit).await;
            }
            full = stream.submit(c, limit.is_some());
        }
        if !stream.waiting.is_empty() {
            stream.collect_one(c).await;
            if stream.finished.len() >= batch {
                stream.flush(&done);
            }
        } else if let Some(limit) = &limit {
            if !full && !stream.queue.is_empty() {
                // Nothing in flight: wait for the next job's slot, taking its token first
                // if it has none.
                let wait = match stream.due.front() {
                    Some(due) => Some(due.saturating_duration_since(Instant::now())),
                    None => stream.take_token(limit).await,
                };
                if let Some(wait) = wait {
                    if wait > limit.patience {
                        conn = None;
                    }
                    pause(&policy, wait).await;
                }
            }
        }
    }
}

/// Waits out a rate-limit delay, measured.
async fn pause(policy: &Policy, wait: Duration) {
    policy.observe(Histogram::RateWait, wait);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// One worker's jobs: taken from the channel, submitted to its connection, finished.
struct Stream {
    queue: VecDeque<Job>,
    /// Submitted jobs, with when (when metrics are on).
    waiting: VecDeque<(MessageId, Job, Option<Instant>)>,
    finished: Vec<Done>,
    /// With a rate limit: when each job at the front of `queue` that holds its token may
    /// go (one entry per such job).
    due: VecDeque<Instant>,
    timed: bool,
}

impl Stream {
    /// Reserves the token of the first job without one and returns the wait before it;
    /// `None` when the limiter refused, and that job failed.
    async fn take_token(&mut self, limit: &Limit) -> Option<Duration> {
        let job = self.queue.get(self.due.len())?;
        match limit.limiter.reserve(Cost::of(job.envelope()), limit.max_wait).await {
            Ok(wait) => {
                self.due.push_back(Instant::now() + wait);
                Some(wait)
            }
            Err(e) => {
                self.refuse(e);
                None
            }
        }
    }

    /// Reserves the tokens of queued jobs whose slots are at most [`LOOKAHEAD`] away.
    async fn grant_ready(&mut self, limit: &Limit) {
        while let Some(job) = self.queue.get(self.due.len()) {
            match limit.limiter.reserve(Cost::of(job.envelope()), LOOKAHEAD).await {
                Ok(wait) => self.due.push_back(Instant::now() + wait),
                Err(RateError::Deadline { .. }) => return,
                Err(e) => self.refuse(e),
            }
        }
    }

    /// The first job without a token fails with the limiter's error.
    fn refuse(&mut self, e: RateError) {
        if let Some(job) = self.queue.remove(self.due.len()) {
            self.finished.push(Done { job, result: Err(PoolError::Rate(e)) });
        }
    }

    /// Submits the queued jobs to `conn` (with a rate limit, those whose slot has come);
    /// true when it takes no more (closed or at its message limit), with the rest left
    /// queued for the next connection.
    fn submit(&mut self, conn: &mut PooledClient, limited: bool) -> bool {
        let now = Instant::now();
        loop {
            let due = self.due.front().copied();
            if limited && due.is_none_or(|due| due > now + EARLY) {
                break;
            }
            let Some(job) = self.queue.pop_front() else { break };
            self.due.pop_front();
            if conn.remaining_messages() == 0 {
                self.queue.push_front(job);
                if let Some(due) = due {
                    self.due.push_front(due);
                }
                return true;
            }
            let message = &job.message;
            match conn.submit(job.envelope().clone(), message.message.clone(), message.options.clone()) {
                Ok(id) => self.waiting.push_back((id, job, self.timed.then(Instant::now))),
                // The connection is gone; nothing of this job was sent.
                Err(Error::SessionClosed) => {
                    self.queue.push_front(job);
                    if let Some(due) = due {
                        self.due.push_front(due);
                    }
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
                let pos = self.waiting.iter().position(|(waiting, _, _)| *waiting == id);
                if let Some((_, mut job, sent_at)) = pos.and_then(|pos| self.waiting.remove(pos)) {
                    job.latency = sent_at.map(|t| t.elapsed());
                    self.finished.push(Done { job, result: result.map_err(PoolError::from) });
                }
            }
            None => {
                for (_, job, _) in self.waiting.drain(..) {
                    self.finished.push(Done { job, result: Err(PoolError::from(Error::SessionClosed)) });
                }
            }
        }
    }

    /// Every queued job fails with `e` (no connection to be had).
    fn fail_queue(&mut self, e: &PoolError) {
        let failed = self.queue.drain(..).map(|job| Done { job, result: Err(e.clone()) });
        self.finished.extend(failed);
        self.due.clear();
    }

    /// Hands the finished jobs to the caller's task in one message.
    fn flush(&mut self, done: &mpsc::UnboundedSender<Vec<Done>>) {
        if !self.finished.is_empty() {
            let _ = done.send(std::mem::take(&mut self.finished));
        }
    }
}
