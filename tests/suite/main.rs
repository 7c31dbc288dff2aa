//! The single integration-test binary (one link instead of one per file).

mod session;
mod transcripts;
