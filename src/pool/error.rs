//! [`PoolError`]: why the pool could not serve a request, with the predicates of
//! [`Error`].

use std::time::Duration;

use crate::proto::error::{Error, Fault, Phase};
use crate::proto::reply::Reply;

/// Why the pool could not serve a request.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Connecting or sending failed; the SMTP error says why (and whether the message may
    /// have been delivered: [`Error::is_ambiguous`]).
    #[error(transparent)]
    Smtp(#[from] Error),
    /// No connection became available within the wait limit: all of them were busy (or
    /// connecting took too long).
    #[error("no connection available within {0:?}")]
    Timeout(Duration),
    /// The pool was closed ([`Pool::close`](super::Pool::close)), before or while waiting.
    #[error("the pool is closed")]
    Closed,
    /// The rate limiter did not grant the send ([`PoolBuilder::rate_limiter`](super::PoolBuilder::rate_limiter)).
    #[error(transparent)]
    Rate(#[from] crate::rate::RateError),
    /// Connecting failed too often in a row: the pool considers the server down and fails
    /// fast for a while instead of opening a socket per checkout ([`PoolBuilder::breaker`](super::PoolBuilder::breaker)).
    #[error("server unavailable after repeated connect failures; retry after {retry_after:?}")]
    Unavailable {
        /// When the pool will try the server again.
        retry_after: Duration,
    },
}

impl PoolError {
    /// The SMTP error, when there is one.
    pub fn smtp(&self) -> Option<&Error> {
        match self {
            PoolError::Smtp(e) => Some(e),
            _ => None,
        }
    }

    /// True when trying again later may succeed (a busy pool, a transient SMTP error).
    pub fn is_transient(&self) -> bool {
        match self {
            PoolError::Smtp(e) => e.is_transient(),
            PoolError::Timeout(_) => true,
            PoolError::Closed => false,
            PoolError::Rate(e) => e.is_transient(),
            PoolError::Unavailable { .. } => true,
        }
    }

    /// True when the message may or may not have been delivered.
    pub fn is_ambiguous(&self) -> bool {
        self.smtp().is_some_and(Error::is_ambiguous)
    }

    /// True when the same request will fail again ([`Error::is_permanent`]; a closed
    /// pool stays closed).
    pub fn is_permanent(&self) -> bool {
        match self {
            PoolError::Smtp(e) => e.is_permanent(),
            PoolError::Closed => true,
            PoolError::Timeout(_) | PoolError::Rate(_) | PoolError::Unavailable { .. } => false,
        }
    }

    /// Who is at fault ([`Error::fault`]): waiting for a busy pool is the network's
    /// (resources), a closed pool or a refused rate the caller's.
    pub fn fault(&self) -> Fault {
        match self {
            PoolError::Smtp(e) => e.fault(),
            PoolError::Timeout(_) | PoolError::Unavailable { .. } => Fault::Network,
            PoolError::Closed | PoolError::Rate(_) => Fault::Caller,
        }
    }

    /// The session step of the SMTP error ([`Error::phase`]).
    pub fn phase(&self) -> Option<Phase> {
        self.smtp().and_then(Error::phase)
    }

    /// True when a deadline passed: the wait for a connection, or an SMTP deadline.
    pub fn is_timeout(&self) -> bool {
        match self {
            PoolError::Smtp(e) => e.is_timeout(),
            PoolError::Timeout(_) => true,
            PoolError::Closed | PoolError::Rate(_) | PoolError::Unavailable { .. } => false,
        }
    }

    /// The server reply behind the error, if any ([`Error::reply`]).
    pub fn reply(&self) -> Option<&Reply> {
        self.smtp().and_then(Error::reply)
    }

    /// Per-recipient results known when the error happened ([`Error::recipients`]).
    pub fn recipients(&self) -> &[crate::proto::session::RecipientResult] {
        self.smtp().map_or(&[], Error::recipients)
    }
}
