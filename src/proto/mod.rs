//! The sans-IO protocol core: no tokio, no sockets, no clock.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod address;
