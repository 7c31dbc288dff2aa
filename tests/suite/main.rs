//! smtpkit's integration suite: one test binary with a module per area.
//!
//! Interop tests against real servers need `scripts/test.sh` (see `support::interop`);
//! without it they print a SKIPPED notice and return.

mod auth;
mod auth_fallback;
mod blocking;
mod blocking_transcripts;
mod bulk_policy;
mod cancel;
mod connection_id;
mod dial;
#[cfg(feature = "dkim")]
mod dkim;
mod driver;
mod fuzz_corpus;
mod hostile;
mod interop;
mod ledger;
mod mime;
mod mime_delivery;
mod mime_parts;
mod mime_policy;
mod mime_stream;
mod outcomes;
mod params;
mod parity;
mod pool;
mod proxy;
#[cfg(feature = "redis")]
mod rate_redis;
mod raw_headers;
mod resumption;
mod round_trips;
mod session;
mod sink;
mod smoke;
mod smuggling;
mod support;
mod tls_mode;
mod transcripts;
mod transport;
mod transport_mailer;
mod url_params;
