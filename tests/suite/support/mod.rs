//! Helpers shared by the integration tests of the `suite` binary.

pub mod interop;
