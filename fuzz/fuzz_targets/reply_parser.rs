//! Fuzz target `reply_parser`: the invariants live in `fuzz/checks/reply_parser.rs`, shared with the corpus
//! replay test in the main crate (`tests/suite/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks/reply_parser.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
