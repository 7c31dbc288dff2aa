//! What the pool applies around its sends: a rate limit, retries and metrics, set on the
//! [`PoolBuilder`] and used by [`Pool::send`] and bulk sending.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::bulk::{BulkOptions, MessageOutcome, Outgoing};
use tokio::time::error::Elapsed;
use tokio::time::{Instant, timeout_at};

use super::breaker::{Breaker, BreakerConfig, BreakerStats, Gate};
use super::{Pool, PoolBuilder, PoolError};
use crate::client::Client;
use crate::metrics::{Counter, Histogram, Metrics};
use crate::proto::error::Error;
use crate::rate::RateLimiter;
use crate::retry::RetryPolicy;

/// The pool's rate limit, retry policy and metrics sink; all off by default.
#[derive(Clone, Default)]
pub(crate) struct Policy {
    pub(crate) rate: Option<Arc<dyn RateLimiter>>,
    /// Longest wait for a rate token; `None`: the pool's wait timeout.
    pub(crate) rate_wait: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) metrics: Option<Arc<dyn Metrics>>,
    pub(crate) breaker: Option<Arc<Breaker>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rate", &self.rate)
            .field("rate_wait", &self.rate_wait)
            .field("retry", &self.retry)
            .field("metrics", &self.metrics.is_some())
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl Policy {
    /// Counts one `counter` event, when metrics are on.
    pub(crate) fn count(&self, counter: Counter) {
        self.count_n(counter, 1);
    }

    /// Counts `n` `counter` events, when metrics are on.
    pub(crate) fn count_n(&self, counter: Counter, n: u64) {
        if let Some(m) = &self.metrics {
            if n > 0 {
                m.count(counter, n);
            }
        }
    }

    /// Records one duration, when metrics are on.
    pub(crate) fn observe(&self, histogram: Histogram, value: Duration) {
        if let Some(m) = &self.metrics {
            m.observe(histogram, value);
        }
    }
}

impl PoolBuilder {
    /// Sends through this pool respect `limiter` (messages and recipients per second, a
    /// quota; see [`crate::rate`]): bulk sending and [`Pool::send`] take each message's
    /// token *before* checking out a connection, and a connection with nothing in flight
    /// is given back while its worker waits longer than [`PoolBuilder::probe_after`] for
    /// a token, so no connection sits idle past the server's patience. Sends made directly
    /// on a [`PooledClient`](super::PooledClient) are not limited.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.config.policy.rate = Some(limiter);
        self
    }

    /// The longest a message waits for its rate token before it fails with
    /// [`PoolError::Rate`] (default: the wait timeout).
    pub fn rate_wait(mut self, d: Duration) -> Self {
        self.config.policy.rate_wait = Some(d);
        self
    }

    /// Retries failures that provably delivered nothing (see [`crate::retry`]), for
    /// [`Pool::send`] and bulk sending (default: off, apart from the one immediate retry
    /// bulk sending always makes when a connection broke before a message's data).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.policy.retry = Some(policy);
        self
    }

    /// Stops hammering a server that refuses connections (see [`BreakerConfig`]):
    /// exponential backoff with jitter after each consecutive connect failure, then
    /// [`PoolError::Unavailable`] at once for a cooling period (default: off).
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.config.policy.breaker = Some(Arc::new(Breaker::new(config)));
        self
    }

    /// Reports connections, messages, recipients, retries and waits to `metrics`.
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.config.policy.metrics = Some(metrics);
        self
    }
}

impl Pool {
    /// Sends one message with the pool's rate limit, retries and metrics: the token is
    /// taken before a connection is checked out, and every attempt is in the outcome.
    pub async fn send(&self, message: impl Into<Outgoing>) -> MessageOutcome {
        let options = BulkOptions::default().concurrency(1);
        let mut outcome = None;
        self.send_each([message.into()], &options, |_, o| outcome = Some(o)).await;
        outcome.unwrap_or_else(MessageOutcome::closed)
    }

    /// The breaker's counters ([`PoolBuilder::breaker`]); zero without one.
    pub fn breaker_stats(&self) -> BreakerStats {
        self.policy().breaker.as_ref().map(|b| b.stats()).unwrap_or_default()
    }

    /// Opens a connection within `deadline`, through the breaker when there is one: it may
    /// wait out a backoff first, or refuse at once while the server is considered down.
    pub(super) async fn open(
        &self,
        deadline: Instant,
    ) -> Result<Result<Result<Client, Error>, Elapsed>, PoolError> {
        let Some(breaker) = self.policy().breaker.as_deref() else {
            return Ok(timeout_at(deadline, (self.inner.connect)()).await);
        };
        match breaker.gate(Instant::now()) {
            Gate::Go => {}
            Gate::Refuse(retry_after) => return Err(PoolError::Unavailable { retry_after }),
            Gate::Wait(d) => {
                if Instant::now() + d > deadline {
                    return Err(PoolError::Unavailable { retry_after: d });
                }
                tokio::time::sleep(d).await;
            }
        }
        let result = timeout_at(deadline, (self.inner.connect)()).await;
        match &result {
            Ok(Ok(_)) => breaker.success(),
            _ => breaker.failure(Instant::now()),
        }
        Ok(result)
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.inner.config.policy
    }
}

/// Counts a finished message: exactly one of sent, rejected (by class) or ambiguous, and
/// its recipients, so `sent + rejected + ambiguous = submitted` over a bulk send.
pub(crate) fn record_message(policy: &Policy, outcome: &MessageOutcome) {
    let Some(metrics) = policy.metrics.as_deref() else { return };
    let mut accepted = outcome.accepted().count() as u64;
    let mut refused = outcome.rejected().count() as u64;
    for e in outcome.transactions.iter().filter_map(|t| t.as_ref().err()).filter_map(PoolError::smtp) {
        let ok = e.recipients().iter().filter(|r| r.accepted()).count() as u64;
        accepted += ok;
        refused += e.recipients().len() as u64 - ok;
    }
    metrics.count(Counter::RecipientsAccepted, accepted);
    metrics.count(Counter::RecipientsRefused, refused);
    let counter = if outcome.is_sent() {
        Counter::MessagesSent
    } else if outcome.is_ambiguous() {
        Counter::MessagesAmbiguous
    } else {
        match outcome.error().and_then(PoolError::smtp) {
            Some(e) => crate::metrics::rejection_class(e),
            None => Counter::MessagesFailedOther,
        }
    };
    metrics.count(counter, 1);
}
