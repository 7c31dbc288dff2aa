//! The generic cell rate algorithm (GCRA, ITU-T I.371), the token bucket in its
//! one-number form: the state is the *theoretical arrival time* (TAT) of the next token,
//! so a bucket is one integer, one comparison and one addition per request. Pure logic
//! on nanoseconds since an origin the caller picks; the Redis script runs the same
//! arithmetic in microseconds (see `redis.rs`).

/// One bucket: `rate` tokens per second, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Nanoseconds per token.
    interval: u64,
    /// `burst * interval`: how far ahead of now the TAT may run and still conform.
    window: u64,
    /// The theoretical arrival time of the next token.
    tat: u64,
}

/// When a request may go, and the bucket state that granting it leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The earliest time (same clock as `now`) the request conforms.
    pub ready_at: u64,
    new_tat: u64,
}

impl Gcra {
    /// A bucket of `per_sec` tokens per second and `burst` tokens at once; `None` when
    /// the rate is not a positive finite number.
    pub(crate) fn new(per_sec: f64, burst: u32) -> Option<Self> {
        if !(per_sec.is_finite() && per_sec > 0.0) {
            return None;
        }
        let interval = (1e9 / per_sec).round().clamp(1.0, u64::MAX as f64 / 4.0) as u64;
        let window = interval.saturating_mul(u64::from(burst.max(1)));
        Some(Self { interval, window, tat: 0 })
    }

    /// When `n` tokens taken at `now` would conform; nothing changes until
    /// [`Gcra::commit`]. A request larger than the burst is granted too, later, so a
    /// message with many recipients is slowed, never refused for ever.
    pub(crate) fn check(&self, now: u64, n: u32) -> Grant {
        let new_tat = self.tat.max(now).saturating_add(self.interval.saturating_mul(u64::from(n)));
        let ready_at = new_tat.saturating_sub(self.window).max(now);
        Grant { ready_at, new_tat }
    }

    /// Takes the tokens a [`Gcra::check`] granted.
    pub(crate) fn commit(&mut self, grant: Grant) {
        self.tat = grant.new_tat;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_goes_at_once_then_one_per_interval() {
        let mut g = Gcra::new(10.0, 3).unwrap();
        let mut ready = Vec::new();
        for _ in 0..6 {
            let grant = g.check(0, 1);
            g.commit(grant);
            ready.push(grant.ready_at);
        }
        assert_eq!(ready, [0, 0, 0, SEC / 10, 2 * SEC / 10, 3 * SEC / 10]);
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let mut g = Gcra::new(1.0, 2).unwrap();
        g.commit(g.check(0, 2));
        // An hour later, only two tokens are there, not 3600.
        let now = 3600 * SEC;
        let mut ready = Vec::new();
        for _ in 0..3 {
            let grant = g.check(now, 1);
            g.commit(grant);
            ready.push(grant.ready_at - now);
        }
        assert_eq!(ready, [0, 0, SEC]);
    }

    #[test]
    fn check_without_commit_changes_nothing() {
        let g = Gcra::new(5.0, 1).unwrap();
        assert_eq!(g.check(0, 1), g.check(0, 1));
    }

    #[test]
    fn a_request_larger_than_the_burst_waits_for_its_share() {
        let mut g = Gcra::new(100.0, 10).unwrap();
        g.commit(g.check(0, 10));
        // 50 recipients at 100/s: half a second of tokens beyond the empty bucket.
        assert_eq!(g.check(0, 50).ready_at, SEC / 2);
    }

    #[test]
    fn rejects_meaningless_rates() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Gcra::new(bad, 1).is_none(), "{bad}");
        }
    }
}
