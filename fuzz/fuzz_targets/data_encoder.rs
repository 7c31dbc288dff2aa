//! Fuzz target `data_encoder`: the invariants live in `fuzz/checks/data_encoder.rs`, shared with the corpus
//! replay test in the main crate (`tests/suite/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks/data_encoder.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
