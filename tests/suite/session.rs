//! Deterministic session tests.
