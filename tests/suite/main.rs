//! smtpkit's integration suite: one test binary with a module per area.
//!
//! Interop tests against real servers need `scripts/test.sh` (see `support::interop`);
//! without it they print a SKIPPED notice and return.

mod auth;
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
mod parity;
mod pool;
mod proxy;
mod round_trips;
mod session;
mod smoke;
mod smuggling;
mod support;
mod tls_mode;
mod transcripts;
