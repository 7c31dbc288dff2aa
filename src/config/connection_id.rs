//! Fresh [`ConnectionId`]s for both clients: a process-wide counter from a random start,
//! so ids are unique within the process and rarely repeat across restarts in shared logs.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::proto::session::ConnectionId;

/// The id for the next connection this process opens.
pub(crate) fn next_connection_id() -> ConnectionId {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(random_start);
    // Relaxed: only uniqueness matters, and fetch_add gives it under any ordering.
    ConnectionId(start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed)))
}

/// Below 2^24, so ids start out six hex digits long; 0 if the OS has no randomness (ids
/// stay unique, they just start at `c000000`).
fn random_start() -> u64 {
    let mut raw = [0u8; 4];
    if getrandom::fill(&mut raw).is_err() {
        return 0;
    }
    u64::from(u32::from_le_bytes(raw) & 0x00ff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..250).map(|_| next_connection_id()).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<ConnectionId> =
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        assert_eq!(all.len(), 1000);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000, "every id is fresh");
    }
}
