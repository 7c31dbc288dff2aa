//! A connection pool for one server, and bulk sending over it (feature `pool`).
//!
//! A [`Pool`] keeps up to [`PoolBuilder::max_connections`] SMTP connections to the server a
//! [`Connector`] describes and hands them out one caller at a time. It follows rule 11 of
//! the reliability bar: a connection goes back to the pool only when the last operation
//! on it finished cleanly ([`Client::is_reusable`]): never after an error, a timeout, a
//! cancelled future or stray server input. Before reuse, the pool reads (without waiting)
//! whatever the server sent while the connection sat idle, so a server that closed it or
//! sent an unsolicited `421` is noticed before a transaction starts; a `NOOP` probe is sent
//! only when the connection sat idle longer than [`PoolBuilder::probe_after`], never before
//! every message.
//!
//! **What the pool is keyed on.** A pool is built from one [`Connector`], which fixes the
//! host, port, TLS policy, certificate verification and trust roots, and credentials.
//! Every connection in the pool therefore shares all of these: a pooled connection can
//! never be handed to a caller that asked for different security settings. To talk to
//! another server, or with other settings, build another pool.
//!
//! ```no_run
//! # async fn demo() -> Result<(), smtpkit::pool::PoolError> {
//! use smtpkit::pool::{Outgoing, Pool};
//! use smtpkit::{Client, Envelope};
//!
//! let connector = Client::from_url("smtp://user:app-password@mail.example.com")?.build()?;
//! let pool = Pool::builder(connector).max_connections(4).build();
//!
//! // One message on a pooled connection.
//! let envelope = Envelope::parse("me@example.com", &["you@example.org"]).expect("valid addresses");
//! let mut conn = pool.get().await?;
//! conn.send(&envelope, "Subject: hi\r\n\r\nHello\r\n").await?;
//! drop(conn); // back to the pool
//!
//! // Many messages, pipelined over up to 4 connections; results in input order.
//! let outgoing = (0..100).map(|i| {
//!     Outgoing::new(envelope.clone(), format!("Subject: {i}\r\n\r\nHello\r\n"))
//! });
//! for outcome in pool.send_all(outgoing).await {
//!     assert!(outcome.is_sent());
//! }
//! pool.close().await;
//! # Ok(()) }
//! ```

mod breaker;
mod bulk;
mod error;
mod policy;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout, timeout_at};

use crate::client::{Client, Connector};
use crate::metrics::Counter;
use crate::proto::address::Envelope;
use crate::proto::capabilities::Capabilities;
use crate::proto::code::ReplyCode;
use crate::proto::error::Error;
use crate::proto::params::MessageOptions;
use crate::proto::reply::Reply;
use crate::proto::session::{MessageId, SendReport};

pub use breaker::{BreakerConfig, BreakerStats};
pub use bulk::{BulkOptions, BulkSummary, MessageOutcome, Outgoing, Progress};
pub use error::PoolError;

/// Opens one ready connection; see [`Pool::builder_with_connect_fn`].
pub type ConnectFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Client, Error>> + Send>> + Send + Sync>;

/// Counters since the pool was built, read with [`Pool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections opened (handshake complete).
    pub opened: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Times a connection served again: a checkout served by an idle connection instead of
    /// a new one, and every message after the first within one checkout.
    pub reused: u64,
    /// Connections closed by the pool: broken, expired, failed probe, or at shutdown.
    pub discarded: u64,
    /// `NOOP` probes sent to connections that sat idle past the threshold.
    pub probes: u64,
    /// Transactions the server accepted (2xx to the final dot).
    pub messages: u64,
    /// Transactions that ended in an error.
    pub failures: u64,
    /// Connections idle in the pool right now.
    pub idle: usize,
    /// Connections checked out right now.
    pub in_use: usize,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    connect_failures: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
    probes: AtomicU64,
    messages: AtomicU64,
    failures: AtomicU64,
}

/// Adds to a counter; with the `tracing` feature each change is also an event (target
/// `smtpkit::pool`) carrying the counter's name and new total, for services that export
/// metrics from their tracing pipeline.
fn bump(c: &AtomicU64, n: u64, name: &'static str) {
    let _total = c.fetch_add(n, Ordering::Relaxed) + n;
    #[cfg(feature = "tracing")]
    if n > 0 {
        tracing::debug!(target: "smtpkit::pool", counter = name, total = _total, "pool counter");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = name;
}

/// Settings for a [`Pool`]; see each method for the default.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    max_connections: usize,
    wait_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    max_messages: Option<u64>,
    probe_after: Option<Duration>,
    probe_timeout: Duration,
    /// Rate limit, retries and metrics (`policy.rs`).
    policy: policy::Policy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 4,
            wait_timeout: Duration::from_secs(60),
            idle_timeout: Some(Duration::from_secs(60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            max_messages: None,
            probe_after: Some(Duration::from_secs(10)),
            probe_timeout: Duration::from_secs(30),
            policy: policy::Policy::default(),
        }
    }
}

/// Configures a [`Pool`].
pub struct PoolBuilder {
    connect: ConnectFn,
    label: String,
    config: PoolConfig,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder").field("server", &self.label).field("config", &self.config).finish()
    }
}

impl PoolBuilder {
    /// At most this many connections open at once, idle or in use (default 4; at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// How long [`Pool::get`] waits for a free slot and a ready connection before
    /// [`PoolError::Timeout`] (default 60 s).
    pub fn wait_timeout(mut self, d: Duration) -> Self {
        self.config.wait_timeout = d;
        self
    }

    /// Close connections idle longer than this instead of reusing them (default 60 s;
    /// servers commonly drop idle clients after 5 minutes, RFC 5321 4.5.3.2.7).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.config.idle_timeout = d;
        self
    }

    /// Close connections older than this when they come back (default 30 min).
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.config.max_lifetime = d;
        self
    }

    /// Close a connection after this many transactions (default: no limit). Some servers
    /// cap messages per session; Postfix's `smtpd` does not by default.
    pub fn max_messages(mut self, n: Option<u64>) -> Self {
        self.config.max_messages = n.map(|n| n.max(1));
        self
    }

    /// Send a `NOOP` before reusing a connection that sat idle longer than this (default
    /// 10 s; `None`: never). A connection used more recently is reused without a probe.
    pub fn probe_after(mut self, d: Option<Duration>) -> Self {
        self.config.probe_after = d;
        self
    }

    /// How long the `NOOP` probe may take (default 30 s).
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.config.probe_timeout = d;
        self
    }

    /// Builds the pool. No connection is opened until one is needed.
    pub fn build(self) -> Pool {
        let permits = Arc::new(Semaphore::new(self.config.max_connections));
        Pool {
            inner: Arc::new(Inner {
                config: self.config,
                connect: self.connect,
                label: self.label,
                permits,
                idle: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                in_use: AtomicUsize::new(0),
                counters: Counters::default(),
            }),
        }
    }
}

/// A connection resting in the pool.
struct Idle {
    client: Client,
    born: Instant,
    since: Instant,
    messages: u64,
}

struct Inner {
    config: PoolConfig,
    connect: ConnectFn,
    label: String,
    /// One permit per connection *in use*. Idle connections hold none, so a waiter gets a
    /// permit as soon as any connection is returned, then takes that connection from
    /// `idle`. A new connection is opened only when `idle` is empty, so open connections
    /// (in use + idle) never exceed `max_connections`.
    permits: Arc<Semaphore>,
    /// Last in, first out: the most recently used connection is the warmest, and the
    /// ones at the bottom age out through the idle timeout when load drops. A std mutex
    /// (never held across an await) is the right tool for a few pushes and pops.
    idle: Mutex<Vec<Idle>>,
    closed: AtomicBool,
    in_use: AtomicUsize,
    counters: Counters,
}

impl Inner {
    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // A panic while holding this lock cannot leave the Vec half-modified (push/pop).
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expired(&self, born: Instant, messages: u64, now: Instant) -> bool {
        let c = &self.config;
        c.max_lifetime.is_some_and(|l| now.duration_since(born) >= l)
            || c.max_messages.is_some_and(|m| messages >= m)
    }

    /// Closes a connection the pool no longer wants. A healthy one gets a polite `QUIT` in
    /// the background (bounded by the probe timeout); a broken one is just dropped.
    fn discard(&self, client: Client) {
        bump(&self.counters.discarded, 1, "discarded");
        self.config.policy.count(Counter::ConnectionsDiscarded);
        if client.is_reusable() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let limit = self.config.probe_timeout;
                rt.spawn(async move {
                    let _ = timeout(limit, client.quit()).await;
                });
            }
        }
    }
}

/// A pool of SMTP connections to one server with one configuration (see the module
/// docs). Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.inner.label)
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pool {
    /// A pool with default settings for the server `connector` describes.
    pub fn new(connector: Connector) -> Self {
        Self::builder(connector).build()
    }

    /// Configures a pool for the server `connector` describes. Host, port, TLS policy,
    /// certificate verification and credentials all come from the connector, so they are
    /// the same for every connection of the pool.
    pub fn builder(connector: Connector) -> PoolBuilder {
        let label = format!("{}:{}", connector.host(), connector.port());
        let connect: ConnectFn = Arc::new(move || {
            let connector = connector.clone();
            Box::pin(async move { connector.connect().await })
        });
        PoolBuilder { connect, label, config: PoolConfig::default() }
    }

    /// Configures a pool whose connections come from `connect`: a proxy, a custom stream
    /// ([`Connector::connect_with`]), or an in-memory test server. Every connection it
    /// returns must be to the same server with the same security settings.
    pub fn builder_with_connect_fn<F, Fut>(label: impl Into<String>, connect: F) -> PoolBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Client, Error>> + Send + 'static,
    {
        let connect: ConnectFn = Arc::new(move || Box::pin(connect()));
        PoolBuilder { connect, label: label.into(), config: PoolConfig::default() }
    }

    /// Takes a connection: a healthy idle one if there is one, else a new one. Waits at
    /// most the configured wait timeout when all connections are busy.
    pub async fn get(&self) -> Result<PooledClient, PoolError> {
        let limit = self.inner.config.wait_timeout;
        let deadline = Instant::now() + limit;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        let permit = match timeout_at(deadline, self.inner.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(PoolError::Closed),
            Err(_) => return Err(PoolError::Timeout(limit)),
        };
        // Bounded: each turn removes one connection from `idle`.
        loop {
            let candidate = self.inner.idle().pop();
            let Some(mut idle) = candidate else { break };
            if let Some(ready) = self.revive(&mut idle, deadline).await {
                if ready {
                    bump(&self.inner.counters.reused, 1, "reused");
                    self.inner.config.policy.count(Counter::ConnectionsReused);
                    return Ok(PooledClient::new(idle, permit, self.inner.clone()));
                }
            }
            self.inner.discard(idle.client);
        }
        let opened = match self.open(deadline).await? {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                bump(&self.inner.counters.connect_failures, 1, "connect_failures");
                self.inner.config.policy.count(Counter::ConnectionsFailed);
                return Err(e.into());
            }
            Err(_) => {
                bump(&self.inner.counters.connect_failures, 1, "connect_failures");
                self.inner.config.policy.count(Counter::ConnectionsFailed);
                return Err(PoolError::Timeout(limit));
            }
        };
        bump(&self.inner.counters.opened, 1, "opened");
        self.inner.config.policy.count(Counter::ConnectionsOpened);
        if opened.tls_resumed() == Some(true) {
            self.inner.config.policy.count(Counter::TlsResumed);
        }
        let now = Instant::now();
        Ok(PooledClient::new(
            Idle { client: opened, born: now, since: now, messages: 0 },
            permit,
            self.inner.clone(),
        ))
    }

    /// Whether an idle connection can serve again: `Some(true)` yes, `None` or
    /// `Some(false)` no (expired, closed by the server, failed probe).
    async fn revive(&self, idle: &mut Idle, deadline: Instant) -> Option<bool> {
        let c = &self.inner.config;
        let now = Instant::now();
        let idle_for = now.duration_since(idle.since);
        if c.idle_timeout.is_some_and(|t| idle_for >= t) || self.inner.expired(idle.born, idle.messages, now)
        {
            return None;
        }
        if !idle.client.check_idle().await {
            return Some(false);
        }
        if c.probe_after.is_some_and(|t| idle_for >= t) {
            bump(&self.inner.counters.probes, 1, "probes");
            let limit = (Instant::now() + c.probe_timeout).min(deadline);
            // RFC 5321 4.1.1.9: "This command [NOOP] ... specifies no action other than
            // that the receiver send a "250 OK" reply." Anything else (a 221 that means the
            // server is closing, say) is a connection not to hand out.
            let probe = timeout_at(limit, idle.client.noop()).await;
            return Some(matches!(probe, Ok(Ok(r)) if r.code() == ReplyCode::OK));
        }
        Some(true)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.counters;
        let idle = self.inner.idle().len();
        let in_use = self.inner.in_use.load(Ordering::Relaxed);
        PoolStats {
            opened: c.opened.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
            reused: c.reused.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
            probes: c.probes.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            idle,
            in_use,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Shuts the pool down: callers waiting in [`Pool::get`] and later calls get
    /// [`PoolError::Closed`]; every idle connection gets `QUIT` (all at once, each bounded
    /// by the probe timeout), and this waits for them. Connections in use finish what they
    /// are doing and are closed with `QUIT` when returned.
    pub async fn close(&self) {
        let idle = {
            let mut idle = self.inner.idle();
            self.inner.closed.store(true, Ordering::Release);
            std::mem::take(&mut *idle)
        };
        self.inner.permits.close();
        let limit = self.inner.config.probe_timeout;
        let mut quits = tokio::task::JoinSet::new();
        for conn in idle {
            bump(&self.inner.counters.discarded, 1, "discarded");
            self.inner.config.policy.count(Counter::ConnectionsDiscarded);
            quits.spawn(async move {
                let _ = timeout(limit, conn.client.quit()).await;
            });
        }
        while quits.join_next().await.is_some() {}
    }
}

/// A connection checked out of a [`Pool`]; it goes back when dropped, if it is still
/// clean (see [`Client::is_reusable`]) and within the pool's limits.
///
/// Sending goes through these methods so the pool can count messages per connection; the
/// rest of the [`Client`] is readable through [`PooledClient::client`].
pub struct PooledClient {
    conn: Option<Idle>,
    _permit: OwnedSemaphorePermit,
    pool: Arc<Inner>,
    /// Messages sent during this checkout: every one after the first reuses the
    /// connection (a bulk worker keeps its connection for thousands of messages, which
    /// checkouts alone would count as no reuse at all).
    sent: u64,
}

impl fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledClient")
            .field("server", &self.pool.label)
            .field("messages", &self.conn.as_ref().map(|c| c.messages))
            .finish_non_exhaustive()
    }
}

impl PooledClient {
    fn new(conn: Idle, permit: OwnedSemaphorePermit, pool: Arc<Inner>) -> Self {
        pool.in_use.fetch_add(1, Ordering::Relaxed);
        Self { conn: Some(conn), _permit: permit, pool, sent: 0 }
    }

    fn conn(&mut self) -> &mut Idle {
        // Only `Drop` takes the connection out.
        self.conn.as_mut().unwrap_or_else(|| unreachable!("PooledClient used after drop"))
    }

    fn count<T>(&mut self, results: &[Result<T, Error>]) {
        self.conn().messages += results.len() as u64;
        self.count_reuse(results.len() as u64);
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        bump(&self.pool.counters.messages, ok, "messages");
        bump(&self.pool.counters.failures, results.len() as u64 - ok, "failures");
    }

    /// Counts `n` more messages of this checkout; all but the checkout's first reuse it.
    fn count_reuse(&mut self, n: u64) {
        let reuses = if self.sent == 0 { n.saturating_sub(1) } else { n };
        self.sent += n;
        if reuses > 0 {
            bump(&self.pool.counters.reused, reuses, "reused");
        }
    }

    /// Sends one message (see [`Client::send`]).
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
    ) -> Result<SendReport, Error> {
        self.send_with(envelope, message, MessageOptions::default()).await
    }

    /// Sends one message with options (see [`Client::send_with`]).
    pub async fn send_with(
        &mut self,
        envelope: &Envelope,
        message: impl Into<Bytes>,
        options: MessageOptions,
    ) -> Result<SendReport, Error> {
        let result = self.conn().client.send_with(envelope, message, options).await;
        self.count(std::slice::from_ref(&result));
        self.settle().await;
        result
    }

    /// Sends several messages pipelined over this connection (see [`Client::send_many`]).
    pub async fn send_many<I>(&mut self, messages: I) -> Vec<Result<SendReport, Error>>
    where
        I: IntoIterator<Item = (Envelope, Bytes, MessageOptions)>,
    {
        let results = self.conn().client.send_many(messages).await;
        self.count(&results);
        self.settle().await;
        results
    }

    /// Queues a message without waiting (see [`Client::submit`]). It counts toward the
    /// connection's message limit at once.
    pub fn submit(
        &mut self,
        envelope: Envelope,
        message: Bytes,
        options: MessageOptions,
    ) -> Result<MessageId, Error> {
        let id = self.conn().client.submit(envelope, message, options)?;
        self.conn().messages += 1;
        Ok(id)
    }

    /// The next outcome of a submitted message (see [`Client::next_outcome`]). After the
    /// last one, an outstanding `RSET` is completed so the connection can go back.
    pub async fn next_outcome(&mut self) -> Option<(MessageId, Result<SendReport, Error>)> {
        let outcome = self.conn().client.next_outcome().await?;
        self.count_reuse(1);
        let ok = u64::from(outcome.1.is_ok());
        bump(&self.pool.counters.messages, ok, "messages");
        bump(&self.pool.counters.failures, 1 - ok, "failures");
        if self.conn().client.in_flight() == 0 {
            self.settle().await;
        }
        Some(outcome)
    }

    /// Messages submitted whose outcome has not been returned yet.
    pub fn in_flight(&self) -> usize {
        self.client().in_flight()
    }

    /// After a failed transaction the session has an `RSET` outstanding; finish it now so
    /// the connection can go back to the pool (RELIABILITY.md: reused only after the
    /// `RSET` succeeds).
    async fn settle(&mut self) {
        let client = &mut self.conn().client;
        if !client.is_reusable() {
            client.settle().await;
        }
    }

    /// Sends `NOOP` (see [`Client::noop`]).
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        self.conn().client.noop().await
    }

    /// Sends `RSET` (see [`Client::rset`]).
    pub async fn rset(&mut self) -> Result<Reply, Error> {
        self.conn().client.rset().await
    }

    /// The server's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        self.client().capabilities()
    }

    /// The underlying client, read-only.
    pub fn client(&self) -> &Client {
        match &self.conn {
            Some(c) => &c.client,
            None => unreachable!("PooledClient used after drop"),
        }
    }

    /// Transactions this connection may still carry before the pool retires it.
    pub fn remaining_messages(&self) -> u64 {
        let used = self.conn.as_ref().map_or(0, |c| c.messages);
        self.pool.config.max_messages.map_or(u64::MAX, |m| m.saturating_sub(used))
    }

    /// Closes this connection instead of returning it (for example after the caller saw
    /// something it did not like).
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.discard(conn.client);
        }
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        self.pool.in_use.fetch_sub(1, Ordering::Relaxed);
        let Some(mut conn) = self.conn.take() else { return };
        let now = Instant::now();
        if !conn.client.is_reusable() || self.pool.expired(conn.born, conn.messages, now) {
            self.pool.discard(conn.client);
            return;
        }
        conn.since = now;
        // `closed` is read under the lock `close` takes to empty `idle`, so a connection
        // is never parked in a closed pool. Pushed before the permit is released (fields
        // drop after this body), so a waiter woken by the permit finds the connection.
        let mut idle = self.pool.idle();
        if self.pool.closed.load(Ordering::Acquire) {
            drop(idle);
            self.pool.discard(conn.client);
        } else {
            idle.push(conn);
        }
    }
}
