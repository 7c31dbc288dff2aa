//! Fuzz target `auth`: the invariants live in `fuzz/checks/auth.rs`, shared with the corpus
//! replay test in the main crate (`tests/suite/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks/auth.rs"]
mod check;
#[path = "../checks/input.rs"]
mod input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
