//! Rate limiting: how fast messages and recipients leave, shared by every connection of
//! a [`Pool`](crate::pool::Pool), by a bare [`Client`](crate::Client), or by several
//! processes (feature `redis`).
//!
//! A [`RateLimiter`] is asked for a [`Cost`] (one message and its recipients) and answers
//! how long to wait before sending it, *reserving* the tokens as it answers: a caller that
//! is told "in 200 ms" owns that slot, so callers never race for the same token and the
//! wait is known before it starts. That lets the pool take the token *before* it checks a
//! connection out (no connection sits idle waiting for a token), and refuse at once, with
//! [`RateError::Deadline`], a wait longer than the caller allows.
//!
//! [`LocalLimiter`] keeps token buckets (GCRA, one integer per bucket) in the process:
//! messages per second and recipients per second, each with a burst, and an optional
//! quota per day. `RedisLimiter` (feature `redis`) keeps them in Redis so every replica
//! of a service shares one provider quota.
//!
//! ```
//! # async fn demo(mut client: smtpkit::Client, envelope: smtpkit::Envelope) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use smtpkit::rate::{Cost, LocalLimiter, RateLimiter};
//!
//! // 10 messages/s with bursts of 5, 100 recipients/s, 10,000 messages a day.
//! let limiter = LocalLimiter::builder()
//!     .messages_per_sec(10.0, 5)
//!     .recipients_per_sec(100.0, 50)
//!     .daily_quota(10_000)
//!     .build()?;
//! // On a bare client: wait for the token (at most 30 s), then send.
//! limiter.acquire(Cost::of(&envelope), Duration::from_secs(30)).await?;
//! client.send(&envelope, "Subject: hi\r\n\r\nHello\r\n").await?;
//! # Ok(()) }
//! ```

mod gcra;
mod local;
mod quota;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::proto::address::Envelope;

pub use local::{LocalLimiter, LocalLimiterBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisLimiter, RedisLimiterBuilder, WhenUnreachable};

/// What one send costs: one message and its recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cost {
    /// Messages (transactions).
    pub messages: u32,
    /// Envelope recipients.
    pub recipients: u32,
}

impl Cost {
    /// One message to the envelope's recipients.
    pub fn of(envelope: &Envelope) -> Self {
        Self { messages: 1, recipients: u32::try_from(envelope.to().len()).unwrap_or(u32::MAX) }
    }
}

/// Why a rate limiter did not grant a send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// The next token is further away than the caller allowed; nothing was reserved.
    #[error("rate limit: the next slot is {needed:?} away, more than the {allowed:?} allowed")]
    Deadline {
        /// How long the wait would have been.
        needed: Duration,
        /// The longest wait the caller allowed.
        allowed: Duration,
    },
    /// The quota for the current window (a day, for [`LocalLimiterBuilder::daily_quota`])
    /// is used up.
    #[error("quota of {limit} messages used up; it resets in {retry_after:?}")]
    QuotaExhausted {
        /// The quota.
        limit: u64,
        /// When the window resets.
        retry_after: Duration,
    },
    /// The shared limiter could not be asked (Redis unreachable) and it was configured to
    /// fail closed; the text says what went wrong (never a password).
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
    /// The limiter's settings are invalid (a rate that is not a positive number).
    #[error("invalid rate limit configuration: {0}")]
    Config(&'static str),
}

impl RateError {
    /// When trying again later may succeed: every case but a bad configuration.
    pub fn is_transient(&self) -> bool {
        !matches!(self, RateError::Config(_))
    }
}

/// The future a [`RateLimiter`] returns: the wait before the reserved slot.
pub type Reservation<'a> = Pin<Box<dyn Future<Output = Result<Duration, RateError>> + Send + 'a>>;

/// Decides when a send may go. Implement it to keep the limit elsewhere (a database, a
/// service); [`LocalLimiter`] and `RedisLimiter` are the built-in ones.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Reserves `cost` and returns how long from now the caller must wait before sending.
    /// When that wait would exceed `max_wait`, nothing is reserved and the answer is
    /// [`RateError::Deadline`]. The tokens are taken when this returns `Ok`, whether or not
    /// the caller then sends: a limiter never lets more through than it granted.
    fn reserve(&self, cost: Cost, max_wait: Duration) -> Reservation<'_>;

    /// Reserves `cost` and waits for its slot (at most `max_wait`); returns how long it
    /// waited.
    fn acquire(&self, cost: Cost, max_wait: Duration) -> Reservation<'_> {
        Box::pin(async move {
            let wait = self.reserve(cost, max_wait).await?;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Ok(wait)
        })
    }
}
