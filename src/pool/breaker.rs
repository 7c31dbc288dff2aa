//! A pool that does not hammer a sick server: after consecutive connect failures the
//! next attempt waits an exponentially growing, jittered delay; past a threshold the pool
//! fails fast for a cooling period with [`PoolError::Unavailable`](super::PoolError::Unavailable)
//! instead of opening a socket for every checkout. After the cooling period one attempt
//! goes through (the others still fail fast); its success closes the breaker, its failure
//! starts another cooling period.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When the pool stops trying a server that refuses connections
/// ([`PoolBuilder::breaker`](super::PoolBuilder::breaker)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    threshold: u32,
    base_delay: Duration,
    max_delay: Duration,
    cooldown: Duration,
}

impl Default for BreakerConfig {
    /// Back off from 100 ms (doubling, at most 10 s); fail fast for 30 s after 5
    /// consecutive failures.
    fn default() -> Self {
        Self {
            threshold: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            cooldown: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// Consecutive connect failures that open the breaker (default 5; at least 1).
    pub fn threshold(mut self, n: u32) -> Self {
        self.threshold = n.max(1);
        self
    }

    /// The wait after the first failure (default 100 ms); it doubles with each one.
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// The longest wait between attempts (default 10 s).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// How long the pool fails fast once the breaker is open (default 30 s).
    pub fn cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }
}

/// Counters of the breaker, read with [`Pool::breaker_stats`](super::Pool::breaker_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Times the breaker opened (threshold reached, or a trial after cooling failed).
    pub opened: u64,
    /// Checkouts refused at once while it was open.
    pub fast_failures: u64,
    /// Connect attempts that first waited out a backoff delay.
    pub delayed: u64,
}

/// What a checkout may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Connect now.
    Go,
    /// Wait this long, then connect.
    Wait(Duration),
    /// Fail fast: the server is considered down for this long still.
    Refuse(Duration),
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    /// No attempt before this.
    not_before: Option<Instant>,
    /// Open: fail fast until `not_before`, then let one trial through.
    open: bool,
    /// A trial attempt after cooling is running.
    trial: bool,
}

/// The breaker's state, shared by the pool's checkouts.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    random: AtomicU64,
    opened: AtomicU64,
    fast_failures: AtomicU64,
    delayed: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
            random: AtomicU64::new(crate::retry::jitter_seed() | 1),
            opened: AtomicU64::new(0),
            fast_failures: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain field stores: a panic cannot leave them torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before opening a connection.
    pub(crate) fn gate(&self, now: Instant) -> Gate {
        let mut s = self.state();
        let left = s.not_before.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        if s.open {
            if !left.is_zero() || s.trial {
                self.fast_failures.fetch_add(1, Ordering::Relaxed);
                return Gate::Refuse(if left.is_zero() { self.config.base_delay } else { left });
            }
            s.trial = true;
            return Gate::Go;
        }
        if left.is_zero() {
            Gate::Go
        } else {
            self.delayed.fetch_add(1, Ordering::Relaxed);
            Gate::Wait(left)
        }
    }

    /// A connection opened: the server is back.
    pub(crate) fn success(&self) {
        *self.state() = State::default();
    }

    /// A connection attempt failed at `now`.
    pub(crate) fn failure(&self, now: Instant) {
        let mut s = self.state();
        s.consecutive = s.consecutive.saturating_add(1);
        if s.open || s.consecutive >= self.config.threshold {
            s.open = true;
            s.trial = false;
            s.not_before = Some(now + self.config.cooldown);
            self.opened.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let r = self.next_random();
        let wait = crate::retry::backoff(self.config.base_delay, self.config.max_delay, s.consecutive - 1, r);
        s.not_before = Some(now + wait);
    }

    fn next_random(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.store(x, Ordering::Relaxed);
        x
    }

    pub(crate) fn stats(&self) -> BreakerStats {
        BreakerStats {
            opened: self.opened.load(Ordering::Relaxed),
            fast_failures: self.fast_failures.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            BreakerConfig::default()
                .threshold(3)
                .base_delay(Duration::from_millis(100))
                .cooldown(Duration::from_secs(30)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_then_opens_then_lets_one_trial_through() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(b.gate(t0), Gate::Go);
        b.failure(t0);
        // 50-100 ms after the first failure.
        let Gate::Wait(w1) = b.gate(t0) else { panic!("no backoff") };
        assert!(w1 >= Duration::from_millis(50) && w1 <= Duration::from_millis(100), "{w1:?}");
        b.failure(t0 + w1);
        let Gate::Wait(w2) = b.gate(t0 + w1) else { panic!("no backoff") };
        assert!(w2 >= Duration::from_millis(100) && w2 <= Duration::from_millis(200), "{w2:?}");
        // The third failure opens it: fail fast for the cooling period.
        let t3 = t0 + w1 + w2;
        b.failure(t3);
        assert_eq!(b.gate(t3 + Duration::from_secs(10)), Gate::Refuse(Duration::from_secs(20)));
        assert_eq!(b.stats().opened, 1);
        // After cooling: one trial, the others still refused.
        let later = t3 + Duration::from_secs(30);
        assert_eq!(b.gate(later), Gate::Go);
        assert!(matches!(b.gate(later), Gate::Refuse(_)));
        // The trial fails: cooling again.
        b.failure(later);
        assert_eq!(b.gate(later), Gate::Refuse(Duration::from_secs(30)));
        assert_eq!(b.stats().opened, 2);
        assert!(b.stats().fast_failures >= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_closes_it() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.failure(t);
        }
        assert!(matches!(b.gate(t), Gate::Refuse(_)));
        let later = t + Duration::from_secs(31);
        assert_eq!(b.gate(later), Gate::Go);
        b.success();
        assert_eq!(b.gate(later), Gate::Go);
        assert_eq!(b.gate(later), Gate::Go);
    }
}
