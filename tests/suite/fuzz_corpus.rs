//! Replays the fuzz corpora as ordinary tests: every file under `fuzz/corpus/TARGET/` and
//! `fuzz/artifacts/TARGET/` goes through the same check function the fuzz target runs
//! (`fuzz/checks/TARGET.rs`, included here by path). No cargo-fuzz or nightly needed; see
//! `fuzz/README.md` for running the fuzzers themselves.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/auth.rs"]
mod auth;
#[path = "../../fuzz/checks/capabilities.rs"]
mod capabilities;
#[path = "../../fuzz/checks/data_encoder.rs"]
mod data_encoder;
#[path = "../../fuzz/checks/input.rs"]
mod input;
#[cfg(feature = "mime")]
#[path = "../../fuzz/checks/mime_compose.rs"]
mod mime_compose;
#[path = "../../fuzz/checks/reply_parser.rs"]
mod reply_parser;
#[path = "../../fuzz/checks/session.rs"]
mod session;
#[path = "../../fuzz/checks/validators.rs"]
mod validators;

/// Every file of the target's corpus and artifacts, sorted for a stable order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for path in &files {
        // A running fuzzer may be replacing corpus files while this reads them.
        let Ok(data) = std::fs::read(path) else { continue };
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails its check", path.display());
        }
    }
}

#[test]
fn reply_parser_corpus() {
    replay("reply_parser", reply_parser::check);
}

#[test]
fn capabilities_corpus() {
    replay("capabilities", capabilities::check);
}

#[test]
fn session_corpus() {
    replay("session", session::check);
}

#[test]
fn data_encoder_corpus() {
    replay("data_encoder", data_encoder::check);
}

#[test]
fn validators_corpus() {
    replay("validators", validators::check);
}

#[cfg(feature = "mime")]
#[test]
fn mime_compose_corpus() {
    replay("mime_compose", mime_compose::check);
}

#[test]
fn auth_corpus() {
    replay("auth", auth::check);
}
