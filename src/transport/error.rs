//! Failures of the local transports (sendmail), carried by [`Error::Transport`](crate::Error).

use std::time::Duration;

/// A local transport failed: what the program said, or why it could not be run.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The program exited unsuccessfully (or was killed by a signal: no status).
    #[error("{program} exited with {}: {}", status.map_or_else(|| "a signal".to_string(), |s| format!("status {s}")), stderr.trim())]
    Exit {
        /// The program.
        program: String,
        /// Its exit status, `None` when a signal ended it.
        status: Option<i32>,
        /// What it wrote on stderr (at most 8 KiB, lossily decoded).
        stderr: String,
    },
    /// The program did not finish within the deadline and was killed.
    #[error("{program} did not finish within {after:?} and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline.
        after: Duration,
    },
    /// The program could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// An address starts with `-`, so a sendmail-compatible program could read it as an
    /// option (`-oQ/tmp/x@example.com` would choose the queue directory): refused before
    /// any program runs.
    #[error("address {0:?} starts with '-' and could be taken for an option")]
    OptionLikeAddress(String),
}

/// sysexits.h: EX_TEMPFAIL, EX_OSERR, EX_IOERR, EX_CANTCREAT, EX_UNAVAILABLE (a service
/// is down), the codes sendmail and Postfix use for "try again later".
const TRANSIENT_EXITS: [i32; 5] = [75, 71, 74, 73, 69];

impl TransportError {
    /// True when the same message may go through later (a temporary exit status, a timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Exit { status, .. } => status.is_some_and(|s| TRANSIENT_EXITS.contains(&s)),
            TransportError::Timeout { .. } => true,
            TransportError::Spawn { .. } | TransportError::OptionLikeAddress(_) => false,
        }
    }

    /// True when the caller's input or configuration is at fault.
    pub fn is_caller(&self) -> bool {
        matches!(self, TransportError::Spawn { .. } | TransportError::OptionLikeAddress(_))
    }
}
