//! Fuzz target `capabilities`: the invariants live in `fuzz/checks/capabilities.rs`, shared with the corpus
//! replay test in the main crate (`tests/suite/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks/capabilities.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
