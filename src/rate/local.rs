//! Token buckets in the process: [`LocalLimiter`].

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::{Gcra, Grant};
use super::quota::Quota;
use super::{Cost, RateError, RateLimiter, Reservation};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Rate limits kept in this process: messages per second and recipients per second, each
/// a token bucket with a burst, and an optional quota per window. One lock, held for a few
/// arithmetic operations, per send. Time is tokio's clock, so tests can pause it.
#[derive(Debug)]
pub struct LocalLimiter {
    origin: Instant,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    messages: Option<Gcra>,
    recipients: Option<Gcra>,
    quota: Option<Quota>,
}

/// Configures a [`LocalLimiter`]; no limit is set until a method sets it.
#[derive(Clone, Debug, Default)]
pub struct LocalLimiterBuilder {
    messages: Option<(f64, u32)>,
    recipients: Option<(f64, u32)>,
    quota: Option<(u64, Duration)>,
}

impl LocalLimiterBuilder {
    /// At most `per_sec` messages per second on average, and `burst` at once (at least 1).
    /// With a burst of 1 the messages are evenly spaced, `1 / per_sec` apart.
    pub fn messages_per_sec(mut self, per_sec: f64, burst: u32) -> Self {
        self.messages = Some((per_sec, burst));
        self
    }

    /// At most `per_sec` envelope recipients per second, and `burst` at once. A message
    /// with more recipients than the burst waits for its share rather than being refused.
    pub fn recipients_per_sec(mut self, per_sec: f64, burst: u32) -> Self {
        self.recipients = Some((per_sec, burst));
        self
    }

    /// At most `limit` messages per 24 hours, counted in fixed windows from the first
    /// message; past it, [`RateError::QuotaExhausted`] at once (no one waits for tomorrow).
    pub fn daily_quota(self, limit: u64) -> Self {
        self.quota(limit, DAY)
    }

    /// At most `limit` messages per `window`, as [`LocalLimiterBuilder::daily_quota`].
    pub fn quota(mut self, limit: u64, window: Duration) -> Self {
        self.quota = Some((limit, window));
        self
    }

    /// The limiter; [`RateError::Config`] when a rate is not a positive finite number.
    pub fn build(self) -> Result<LocalLimiter, RateError> {
        let bucket = |spec: Option<(f64, u32)>, what| {
            spec.map(|(rate, burst)| Gcra::new(rate, burst).ok_or(RateError::Config(what))).transpose()
        };
        let state = State {
            messages: bucket(self.messages, "messages per second must be a positive number")?,
            recipients: bucket(self.recipients, "recipients per second must be a positive number")?,
            quota: self.quota.map(|(limit, window)| Quota::new(limit, nanos(window))),
        };
        Ok(LocalLimiter { origin: Instant::now(), state: Mutex::new(state) })
    }
}

impl LocalLimiter {
    /// Configures a limiter.
    pub fn builder() -> LocalLimiterBuilder {
        LocalLimiterBuilder::default()
    }

    /// A limiter of `per_sec` messages per second, evenly spaced (burst 1).
    pub fn per_second(per_sec: f64) -> Result<Self, RateError> {
        Self::builder().messages_per_sec(per_sec, 1).build()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a plain store after the checks: a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reservation itself, without a future: [`RateLimiter::reserve`] wraps it.
    pub fn try_reserve(&self, cost: Cost, max_wait: Duration) -> Result<Duration, RateError> {
        let now = nanos(Instant::now().duration_since(self.origin));
        let mut state = self.state();
        let grant = |b: &Option<Gcra>, n| b.as_ref().map(|b: &Gcra| b.check(now, n));
        let messages: Option<Grant> = grant(&state.messages, cost.messages);
        let recipients: Option<Grant> = grant(&state.recipients, cost.recipients);
        let ready_at = [messages, recipients].iter().flatten().map(|g| g.ready_at).max().unwrap_or(now);
        let needed = Duration::from_nanos(ready_at - now);
        if needed > max_wait {
            return Err(RateError::Deadline { needed, allowed: max_wait });
        }
        if let Some(q) = state.quota.as_mut() {
            // Counted when the slot is reserved, which is when the message may go.
            if let Err(left) = q.check(ready_at, u64::from(cost.messages)) {
                return Err(RateError::QuotaExhausted {
                    limit: q.limit(),
                    retry_after: Duration::from_nanos(left),
                });
            }
            q.commit(ready_at, u64::from(cost.messages));
        }
        if let (Some(b), Some(g)) = (state.messages.as_mut(), messages) {
            b.commit(g);
        }
        if let (Some(b), Some(g)) = (state.recipients.as_mut(), recipients) {
            b.commit(g);
        }
        Ok(needed)
    }
}

impl RateLimiter for LocalLimiter {
    fn reserve(&self, cost: Cost, max_wait: Duration) -> Reservation<'_> {
        let result = self.try_reserve(cost, max_wait);
        Box::pin(std::future::ready(result))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Cost = Cost { messages: 1, recipients: 1 };

    #[tokio::test(start_paused = true)]
    async fn holds_the_message_rate_on_a_paused_clock() {
        let limiter = LocalLimiter::per_second(50.0).unwrap();
        let start = Instant::now();
        for _ in 0..101 {
            limiter.acquire(ONE, Duration::from_secs(10)).await.unwrap();
        }
        // The first goes at once, the other 100 are 20 ms apart.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn recipients_bound_a_message_with_many() {
        let limiter = LocalLimiter::builder()
            .messages_per_sec(1000.0, 10)
            .recipients_per_sec(100.0, 10)
            .build()
            .unwrap();
        let start = Instant::now();
        let big = Cost { messages: 1, recipients: 50 };
        for _ in 0..3 {
            limiter.acquire(big, Duration::from_secs(10)).await.unwrap();
        }
        // 150 recipients at 100/s with 10 up front: 1.4 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_refused_and_reserves_nothing() {
        let limiter = LocalLimiter::per_second(1.0).unwrap();
        assert_eq!(limiter.try_reserve(ONE, Duration::ZERO), Ok(Duration::ZERO));
        let refused = limiter.try_reserve(ONE, Duration::from_millis(500));
        assert_eq!(
            refused,
            Err(RateError::Deadline { needed: Duration::from_secs(1), allowed: Duration::from_millis(500) })
        );
        // The refusal took nothing: the next caller is still 1 s away, not 2.
        assert_eq!(limiter.try_reserve(ONE, Duration::from_secs(5)), Ok(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn quota_runs_out_and_resets_with_the_window() {
        let limiter = LocalLimiter::builder().quota(2, Duration::from_secs(60)).build().unwrap();
        for _ in 0..2 {
            assert_eq!(limiter.try_reserve(ONE, Duration::ZERO), Ok(Duration::ZERO));
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            limiter.try_reserve(ONE, Duration::ZERO),
            Err(RateError::QuotaExhausted { limit: 2, retry_after: Duration::from_secs(50) })
        );
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(limiter.try_reserve(ONE, Duration::ZERO), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_rate() {
        let limiter = std::sync::Arc::new(LocalLimiter::per_second(100.0).unwrap());
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let l = limiter.clone();
            tasks.spawn(async move {
                for _ in 0..25 {
                    l.acquire(ONE, Duration::from_secs(10)).await.unwrap();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        // 100 messages at 100/s, the first at once.
        assert_eq!(start.elapsed(), Duration::from_millis(990));
    }

    #[test]
    fn bad_rates_are_typed_errors() {
        assert!(matches!(LocalLimiter::per_second(0.0), Err(RateError::Config(_))));
        assert!(matches!(
            LocalLimiter::builder().recipients_per_sec(f64::NAN, 1).build(),
            Err(RateError::Config(_))
        ));
    }
}
