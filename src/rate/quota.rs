//! A fixed-window quota: at most `limit` messages per window (a provider's "N messages
//! per day"). Pure logic on nanoseconds since an origin the caller picks.

/// Messages left in the current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    limit: u64,
    window: u64,
    /// Start of the current window; `None` before the first message.
    start: Option<u64>,
    used: u64,
}

impl Quota {
    /// `limit` messages per `window` nanoseconds; the first window starts with the first
    /// message.
    pub(crate) fn new(limit: u64, window: u64) -> Self {
        Self { limit, window: window.max(1), start: None, used: 0 }
    }

    /// The configured limit.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether `n` more messages fit at `now`: `Ok` with nothing taken yet, or `Err` with
    /// the nanoseconds until the window resets.
    pub(crate) fn check(&self, now: u64, n: u64) -> Result<(), u64> {
        let (start, used) = self.current(now);
        if used.saturating_add(n) <= self.limit {
            Ok(())
        } else {
            Err(start.saturating_add(self.window).saturating_sub(now))
        }
    }

    /// Takes `n` messages (after a successful [`Quota::check`]).
    pub(crate) fn commit(&mut self, now: u64, n: u64) {
        let (start, used) = self.current(now);
        self.start = Some(start);
        self.used = used.saturating_add(n);
    }

    /// The window `now` falls in and what it has used: a new window starts when the old
    /// one ended, counting whole windows from the first one.
    fn current(&self, now: u64) -> (u64, u64) {
        match self.start {
            None => (now, 0),
            Some(start) if now >= start.saturating_add(self.window) => {
                (start + (now - start) / self.window * self.window, 0)
            }
            Some(start) => (start, self.used),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_ends() {
        let mut q = Quota::new(3, 100);
        for t in [5, 6, 7] {
            assert_eq!(q.check(t, 1), Ok(()));
            q.commit(t, 1);
        }
        assert_eq!(q.check(50, 1), Err(55));
        assert_eq!(q.check(105, 1), Ok(()));
        q.commit(105, 1);
        // The second window is [105, 205): two left in it.
        assert_eq!(q.check(110, 2), Ok(()));
        assert_eq!(q.check(110, 3), Err(95));
    }

    #[test]
    fn windows_skipped_while_idle_are_counted_whole() {
        let mut q = Quota::new(1, 100);
        q.commit(0, 1);
        assert_eq!(q.check(350, 2), Err(50));
        assert_eq!(q.check(350, 1), Ok(()));
    }
}
