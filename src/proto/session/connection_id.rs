//! [`ConnectionId`]: the short name of one connection, so the transcripts and spans of
//! pooled connections can be told apart. The sans-IO core only carries it: the drivers
//! choose it (the core never generates randomness).

use std::fmt;

/// A connection's short id, shown as `c` and at least six hex digits (`c1a2b3`).
///
/// The clients give every connection a fresh one, unique within the process; it is in the
/// `smtp.connection` span (feature `tracing`), in every [`TraceLine`](super::TraceLine) and
/// behind `Client::connection_id()`. A [`Session`](super::Session) built by hand carries
/// whatever [`SessionConfig::connection_id`](super::SessionConfig::connection_id) says
/// (`c000000` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{:06x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_c_and_six_hex_digits_at_least() {
        assert_eq!(ConnectionId(0x1a2b3).to_string(), "c01a2b3");
        assert_eq!(ConnectionId(0xc1a2b3).to_string(), "cc1a2b3");
        assert_eq!(ConnectionId(0x1_000_000).to_string(), "c1000000", "grows, never wraps to a reused name");
    }
}
