//! smtpkit's integration test suite: one binary, one module per area.
//!
//! Interop tests against real servers need `scripts/test.sh` (see
//! `support::interop`); without it they print a SKIPPED notice and return.

mod smoke;
mod support;
