//! The sans-IO protocol core: no tokio, no sockets, no clock.
//!
//! [`session::Session`] is a pure state machine fed bytes and the current time; it hands
//! back bytes to write, what it needs next, and events. The tokio driver, the blocking
//! example and the fuzz targets all run this same core.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod address;
pub mod capabilities;
pub mod code;
pub mod command;
pub mod dot_stuff;
pub mod enhanced;
pub mod error;
pub(crate) mod header_scan;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod timeouts;
