//! smtpkit's integration suite: one test binary with a module per area.
//!
//! Interop tests against real servers need `scripts/test.sh` (see `support::interop`);
//! without it they print a SKIPPED notice and return.

#[cfg(feature = "dkim")]
mod dkim;
mod driver;
mod interop;
mod smoke;
mod support;
