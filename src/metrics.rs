//! Metrics a service can export: a [`Metrics`] hook the pool, bulk sending and the
//! helpers for a bare [`Client`] report to, and [`Registry`], a ready implementation that
//! renders the Prometheus text format.
//!
//! **Why a trait, not the `metrics` facade crate.** The facade is a process-wide global:
//! two pools (two provider accounts) would have to be told apart by labels the library
//! invents, and a library that records into a global registry surprises applications that
//! already use another one. A trait is injected per pool or client, costs a virtual call
//! and no allocation per event (names are enum values, not strings), adds no dependency,
//! and bridges to the facade, OpenTelemetry or Prometheus in a few lines (see [`Registry`]
//! for a complete one).
//!
//! ```
//! use std::sync::Arc;
//! use smtpkit::metrics::{Counter, Metrics, Registry};
//!
//! let registry = Arc::new(Registry::new());
//! registry.count(Counter::MessagesSent, 3);
//! assert!(registry.render_prometheus().contains("smtpkit_messages_total{outcome=\"sent\"} 3"));
//! ```

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Client, Connector};
use crate::proto::address::Envelope;
use crate::proto::error::Error;
use crate::proto::session::SendReport;

/// Events counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Counter {
    /// A connection was opened (greeting, EHLO, TLS and AUTH done).
    ConnectionsOpened,
    /// A pooled connection was reused.
    ConnectionsReused,
    /// Opening a connection failed.
    ConnectionsFailed,
    /// A pooled connection was closed (broken, expired, failed probe, shutdown).
    ConnectionsDiscarded,
    /// An opened connection's TLS handshake resumed an earlier session (no full
    /// handshake): the share of resumed handshakes shows whether session tickets work.
    TlsResumed,
    /// A message was handed over for sending (counted once, whatever its retries).
    MessagesSubmitted,
    /// A message was accepted (2xx to the final dot).
    MessagesSent,
    /// A message failed with a 4xx reply (after its last attempt).
    MessagesRejectedTransient,
    /// A message failed with a 5xx reply.
    MessagesRejectedPermanent,
    /// A message failed without a server verdict (connection, input, rate limit).
    MessagesFailedOther,
    /// A message's outcome is unknown: the link failed after its final dot.
    MessagesAmbiguous,
    /// A transaction was tried again ([`crate::retry`]).
    MessagesRetried,
    /// A recipient was accepted by `RCPT TO`.
    RecipientsAccepted,
    /// A recipient was refused by `RCPT TO`.
    RecipientsRefused,
}

impl Counter {
    const ALL: [Counter; 14] = [
        Counter::ConnectionsOpened,
        Counter::ConnectionsReused,
        Counter::ConnectionsFailed,
        Counter::ConnectionsDiscarded,
        Counter::TlsResumed,
        Counter::MessagesSubmitted,
        Counter::MessagesSent,
        Counter::MessagesRejectedTransient,
        Counter::MessagesRejectedPermanent,
        Counter::MessagesFailedOther,
        Counter::MessagesAmbiguous,
        Counter::MessagesRetried,
        Counter::RecipientsAccepted,
        Counter::RecipientsRefused,
    ];

    /// Prometheus metric name and labels.
    pub fn prometheus(self) -> (&'static str, &'static str) {
        match self {
            Counter::ConnectionsOpened => ("smtpkit_connections_total", "event=\"opened\""),
            Counter::ConnectionsReused => ("smtpkit_connections_total", "event=\"reused\""),
            Counter::ConnectionsFailed => ("smtpkit_connections_total", "event=\"failed\""),
            Counter::ConnectionsDiscarded => ("smtpkit_connections_total", "event=\"discarded\""),
            Counter::TlsResumed => ("smtpkit_tls_resumed_total", ""),
            Counter::MessagesSubmitted => ("smtpkit_messages_submitted_total", ""),
            Counter::MessagesSent => ("smtpkit_messages_total", "outcome=\"sent\""),
            Counter::MessagesRejectedTransient => {
                ("smtpkit_messages_total", "outcome=\"rejected\",class=\"4xx\"")
            }
            Counter::MessagesRejectedPermanent => {
                ("smtpkit_messages_total", "outcome=\"rejected\",class=\"5xx\"")
            }
            Counter::MessagesFailedOther => {
                ("smtpkit_messages_total", "outcome=\"rejected\",class=\"other\"")
            }
            Counter::MessagesAmbiguous => ("smtpkit_messages_total", "outcome=\"ambiguous\""),
            Counter::MessagesRetried => ("smtpkit_retries_total", ""),
            Counter::RecipientsAccepted => ("smtpkit_recipients_total", "outcome=\"accepted\""),
            Counter::RecipientsRefused => ("smtpkit_recipients_total", "outcome=\"refused\""),
        }
    }
}

/// Durations measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Histogram {
    /// Waiting for a pooled connection (checkout, including opening one).
    ConnectionWait,
    /// Waiting for a rate-limit token.
    RateWait,
    /// From handing a message over to its final outcome (one attempt).
    SendLatency,
}

impl Histogram {
    const ALL: [Histogram; 3] = [Histogram::ConnectionWait, Histogram::RateWait, Histogram::SendLatency];

    /// Prometheus metric name.
    pub fn prometheus(self) -> &'static str {
        match self {
            Histogram::ConnectionWait => "smtpkit_connection_wait_seconds",
            Histogram::RateWait => "smtpkit_rate_wait_seconds",
            Histogram::SendLatency => "smtpkit_send_latency_seconds",
        }
    }
}

/// Receives counts and durations. Called on the sending path: keep it cheap (an atomic
/// add, a channel send), never block.
pub trait Metrics: Send + Sync + fmt::Debug {
    /// `counter` went up by `n`.
    fn count(&self, counter: Counter, n: u64);
    /// One observation of `histogram`.
    fn observe(&self, histogram: Histogram, value: Duration);
}

/// Counts a finished message: exactly one of sent, rejected (by class) or ambiguous, and
/// its recipients. `sent + rejected + ambiguous = submitted` holds when every submitted
/// message gets one call.
pub fn record_outcome(metrics: &dyn Metrics, result: Result<&SendReport, &Error>) {
    match result {
        Ok(report) => {
            metrics.count(Counter::MessagesSent, 1);
            let accepted = report.accepted().count() as u64;
            metrics.count(Counter::RecipientsAccepted, accepted);
            metrics.count(Counter::RecipientsRefused, report.recipients.len() as u64 - accepted);
        }
        Err(e) => {
            let counter = if e.is_ambiguous() { Counter::MessagesAmbiguous } else { rejection_class(e) };
            metrics.count(counter, 1);
            let accepted = e.recipients().iter().filter(|r| r.accepted()).count() as u64;
            metrics.count(Counter::RecipientsAccepted, accepted);
            metrics.count(Counter::RecipientsRefused, e.recipients().len() as u64 - accepted);
        }
    }
}

/// The counter for a message that failed with `e` (not ambiguous): the class of the
/// server's reply, or of the recipients' replies when all were refused, else "other".
pub fn rejection_class(e: &Error) -> Counter {
    let class = e.reply().map(|r| r.code().class()).or_else(|| {
        let refused = e.recipients();
        (!refused.is_empty()).then(|| if refused.iter().all(|r| r.reply.is_transient()) { 4 } else { 5 })
    });
    match class {
        Some(4) => Counter::MessagesRejectedTransient,
        Some(5) => Counter::MessagesRejectedPermanent,
        _ => Counter::MessagesFailedOther,
    }
}

/// Opens a connection with `connector`, counting it opened or failed (and resumed, see
/// [`count_opened`]).
pub async fn connect_observed(connector: &Connector, metrics: &dyn Metrics) -> Result<Client, Error> {
    let result = connector.connect().await;
    match &result {
        Ok(client) => count_opened(metrics, client),
        Err(_) => metrics.count(Counter::ConnectionsFailed, 1),
    }
    result
}

/// Counts a freshly opened `client`: opened, and [`Counter::TlsResumed`] when its TLS
/// handshake resumed an earlier session ([`Client::tls_resumed`]).
pub fn count_opened(metrics: &dyn Metrics, client: &Client) {
    metrics.count(Counter::ConnectionsOpened, 1);
    if client.tls_resumed() == Some(true) {
        metrics.count(Counter::TlsResumed, 1);
    }
}

/// [`Client::send`] on a bare client, counted: submitted, then its outcome, recipients and
/// latency.
pub async fn send_observed(
    client: &mut Client,
    metrics: &dyn Metrics,
    envelope: &Envelope,
    message: impl Into<Bytes>,
) -> Result<SendReport, Error> {
    metrics.count(Counter::MessagesSubmitted, 1);
    let start = Instant::now();
    let result = client.send(envelope, message).await;
    metrics.observe(Histogram::SendLatency, start.elapsed());
    record_outcome(metrics, result.as_ref());
    result
}

/// Upper bounds of the histogram buckets, in seconds (Prometheus' defaults, 1 ms to 10 s,
/// and a finer start for rate waits and pipelined sends).
const BUCKETS: [f64; 14] =
    [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
struct Buckets {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A [`Metrics`] that keeps everything in atomics and renders it in the Prometheus text
/// exposition format (version 0.0.4) for a `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct Registry {
    counters: [AtomicU64; Counter::ALL.len()],
    histograms: [Buckets; Histogram::ALL.len()],
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current value of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        self.counters.get(counter as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many observations `histogram` has.
    pub fn observations(&self, histogram: Histogram) -> u64 {
        self.histograms.get(histogram as usize).map_or(0, |h| h.count.load(Ordering::Relaxed))
    }

    /// Everything, in the Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut last = "";
        for c in Counter::ALL {
            let (name, labels) = c.prometheus();
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
            let _ = writeln!(out, "{name}{labels} {}", self.get(c));
        }
        for h in Histogram::ALL {
            let Some(b) = self.histograms.get(h as usize) else { continue };
            let name = h.prometheus();
            let _ = writeln!(out, "# TYPE {name} histogram");
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&b.counts) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let count = b.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
            let sum = b.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum {sum}");
            let _ = writeln!(out, "{name}_count {count}");
        }
        out
    }
}

impl Metrics for Registry {
    fn count(&self, counter: Counter, n: u64) {
        if let Some(c) = self.counters.get(counter as usize) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn observe(&self, histogram: Histogram, value: Duration) {
        let Some(b) = self.histograms.get(histogram as usize) else { return };
        let secs = value.as_secs_f64();
        // Stored per bucket, summed when rendered: one atomic add per observation.
        if let Some(slot) = BUCKETS.iter().position(|&bound| secs <= bound).and_then(|i| b.counts.get(i)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        b.count.fetch_add(1, Ordering::Relaxed);
        b.sum_nanos.fetch_add(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let r = Registry::new();
        r.count(Counter::ConnectionsOpened, 2);
        r.count(Counter::MessagesRejectedPermanent, 1);
        r.count(Counter::TlsResumed, 1);
        r.observe(Histogram::SendLatency, Duration::from_millis(3));
        r.observe(Histogram::SendLatency, Duration::from_secs(60));
        let text = r.render_prometheus();
        assert!(text.contains("smtpkit_connections_total{event=\"opened\"} 2\n"), "{text}");
        assert!(text.contains("smtpkit_messages_total{outcome=\"rejected\",class=\"5xx\"} 1\n"));
        assert!(text.contains("# TYPE smtpkit_tls_resumed_total counter\nsmtpkit_tls_resumed_total 1\n"));
        assert!(text.contains("smtpkit_send_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("smtpkit_send_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("smtpkit_send_latency_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("smtpkit_send_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("smtpkit_send_latency_seconds_count 2\n"));
        // One TYPE line per metric family.
        assert_eq!(text.matches("# TYPE smtpkit_messages_total counter").count(), 1);
    }
}
