//! One rate limit for every process: [`RedisLimiter`] keeps the buckets in Redis (feature
//! `redis`).
//!
//! Each provider account is one Redis hash (the key you choose) with one field per
//! bucket holding its GCRA theoretical arrival time in microseconds. A Lua script reads
//! the server's own clock (`TIME`, so the processes' clocks need not agree), computes the
//! wait exactly as [`LocalLimiter`](super::LocalLimiter) does and stores the new state,
//! atomically: Redis runs one script at a time, so N processes on N machines reserve
//! slots from one sequence and together stay under the rate. The key expires once the
//! buckets are full again, so an idle account leaves nothing behind.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cost, LocalLimiter, RateError, RateLimiter, Reservation};

/// The GCRA of `gcra.rs` over two buckets (messages `m`, recipients `r`) in one hash.
/// ARGV: max_wait_us, then per bucket interval_us, window_us, cost (interval 0: no bucket).
/// Returns {1, wait_us} when reserved, {0, wait_us} when the wait exceeds max_wait.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local ready = now
local fields = {'m', 'r'}
local new = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[i * 3 - 1])
  if interval > 0 then
    local window = tonumber(ARGV[i * 3])
    local n = tonumber(ARGV[i * 3 + 1])
    local tat = tonumber(redis.call('HGET', KEYS[1], fields[i]) or '0')
    if tat < now then tat = now end
    local nt = tat + interval * n
    if nt - window > ready then ready = nt - window end
    new[fields[i]] = nt
  end
end
local wait = ready - now
if wait > max_wait then return {0, wait} end
local ttl = 0
for f, v in pairs(new) do
  redis.call('HSET', KEYS[1], f, string.format('%.0f', v))
  if v - now > ttl then ttl = v - now end
end
redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) + 1000)
return {1, wait}
"#;

/// What [`RedisLimiter`] does when Redis cannot be asked (down, unreachable, too slow).
#[derive(Debug)]
#[non_exhaustive]
pub enum WhenUnreachable {
    /// Refuse with [`RateError::Unavailable`]: nothing is sent until Redis answers again.
    /// The safe choice when going over the provider's limit gets the account blocked.
    FailClosed,
    /// Use this process-local limiter instead until Redis answers again; give it this
    /// process's share of the limit (the rate divided by the number of replicas) to stay
    /// under the provider's limit.
    FallBack(LocalLimiter),
}

/// Configures a [`RedisLimiter`].
pub struct RedisLimiterBuilder {
    url: String,
    key: String,
    messages: Option<(f64, u32)>,
    recipients: Option<(f64, u32)>,
    timeout: Duration,
    unreachable: WhenUnreachable,
}

impl fmt::Debug for RedisLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never shown.
        f.debug_struct("RedisLimiterBuilder")
            .field("key", &self.key)
            .field("messages", &self.messages)
            .field("recipients", &self.recipients)
            .field("timeout", &self.timeout)
            .field("unreachable", &self.unreachable)
            .finish_non_exhaustive()
    }
}

impl RedisLimiterBuilder {
    /// At most `per_sec` messages per second across every process, `burst` at once.
    pub fn messages_per_sec(mut self, per_sec: f64, burst: u32) -> Self {
        self.messages = Some((per_sec, burst));
        self
    }

    /// At most `per_sec` recipients per second across every process, `burst` at once.
    pub fn recipients_per_sec(mut self, per_sec: f64, burst: u32) -> Self {
        self.recipients = Some((per_sec, burst));
        self
    }

    /// How long one Redis round trip (or reconnect) may take before Redis counts as
    /// unreachable (default 1 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// What to do when Redis is unreachable (default [`WhenUnreachable::FailClosed`]).
    pub fn when_unreachable(mut self, choice: WhenUnreachable) -> Self {
        self.unreachable = choice;
        self
    }

    /// The limiter. Connects lazily, on the first reservation; [`RateError::Config`] for
    /// a bad URL or rate.
    pub fn build(self) -> Result<RedisLimiter, RateError> {
        let bucket = |spec: Option<(f64, u32)>, what| -> Result<[u64; 2], RateError> {
            match spec {
                None => Ok([0, 0]),
                Some((rate, burst)) if rate.is_finite() && rate > 0.0 => {
                    let interval = (1e6 / rate).round().max(1.0) as u64;
                    Ok([interval, interval.saturating_mul(u64::from(burst.max(1)))])
                }
                Some(_) => Err(RateError::Config(what)),
            }
        };
        let messages = bucket(self.messages, "messages per second must be a positive number")?;
        let recipients = bucket(self.recipients, "recipients per second must be a positive number")?;
        let client =
            redis::Client::open(self.url.as_str()).map_err(|_| RateError::Config("invalid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.timeout))
            .set_connection_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|_| RateError::Config("invalid Redis connection settings"))?;
        Ok(RedisLimiter {
            inner: Arc::new(Shared {
                conn,
                key: self.key,
                messages,
                recipients,
                timeout: self.timeout,
                unreachable: self.unreachable,
                script: redis::Script::new(GCRA_LUA),
            }),
        })
    }
}

/// A rate limit shared through Redis by every process that uses the same key (see the
/// module docs). Cheap to clone.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Shared>,
}

struct Shared {
    conn: ConnectionManager,
    key: String,
    /// (interval, window) in microseconds; interval 0: no bucket.
    messages: [u64; 2],
    recipients: [u64; 2],
    timeout: Duration,
    unreachable: WhenUnreachable,
    script: redis::Script,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key", &self.inner.key)
            .field("unreachable", &self.inner.unreachable)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Configures a limiter on the Redis server at `url` (`redis://[:password@]host:port/db`)
    /// for the account `key`: every process using the same key shares its limit.
    pub fn builder(url: impl Into<String>, key: impl Into<String>) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            url: url.into(),
            key: key.into(),
            messages: None,
            recipients: None,
            timeout: Duration::from_secs(1),
            unreachable: WhenUnreachable::FailClosed,
        }
    }

    /// One script run: `Ok(Ok(wait))` reserved, `Ok(Err(needed))` past `max_wait`,
    /// `Err` Redis could not be asked.
    async fn ask(&self, cost: Cost, max_wait: Duration) -> Result<Result<Duration, Duration>, String> {
        let s = &self.inner;
        let mut conn = s.conn.clone();
        let mut call = s.script.prepare_invoke();
        call.key(&s.key)
            .arg(u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX / 2))
            .arg(s.messages[0])
            .arg(s.messages[1])
            .arg(cost.messages)
            .arg(s.recipients[0])
            .arg(s.recipients[1])
            .arg(cost.recipients);
        let reply: (u8, i64) = match tokio::time::timeout(s.timeout, call.invoke_async(&mut conn)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {:?}", s.timeout)),
        };
        let wait = Duration::from_micros(u64::try_from(reply.1).unwrap_or(0));
        Ok(if reply.0 == 1 { Ok(wait) } else { Err(wait) })
    }
}

impl RateLimiter for RedisLimiter {
    fn reserve(&self, cost: Cost, max_wait: Duration) -> Reservation<'_> {
        Box::pin(async move {
            match self.ask(cost, max_wait).await {
                Ok(Ok(wait)) => Ok(wait),
                Ok(Err(needed)) => Err(RateError::Deadline { needed, allowed: max_wait }),
                Err(why) => match &self.inner.unreachable {
                    WhenUnreachable::FailClosed => Err(RateError::Unavailable(why)),
                    WhenUnreachable::FallBack(local) => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(target: "smtpkit::rate", error = %why, "Redis unreachable; using the local limit");
                        let _ = why;
                        local.try_reserve(cost, max_wait)
                    }
                },
            }
        })
    }
}
