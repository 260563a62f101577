//! Coordination on ZooKeeper: a distributed [`Lock`] and a [`LeaderElection`],
//! both node-compatible with Apache Curator's recipes.
//!
//! # The recipes
//! * A [`Lock`] is Curator's `InterProcessMutex`: each contender creates an
//!   ephemeral sequential node `{path}/_c_{uuid}-lock-{seq}`; the lowest
//!   sequence holds the lock; every other contender watches only the node just
//!   below its own, so a release wakes one waiter, not the herd. A Rust process
//!   and a Java process using Curator on the same path exclude each other.
//! * A [`LeaderElection`] is Curator's `LeaderLatch`: nodes
//!   `{path}/_c_{uuid}-latch-{seq}` holding the participant's id as data (what
//!   Curator's `getLeader()` reads); the lowest leads.
//!
//! Both are built on the lock recipe of the `zookeeper-client` crate
//! ([`Client::lock`](zookeeper_client::Client::lock)), which waits for the
//! predecessor. A contender whose create reply was lost (the connection broke
//! under it) never leaves an orphan that blocks everyone: its node is found
//! again by its unique `_c_{uuid}` prefix. [`Lock::try_acquire`] keeps it;
//! through the recipe, version 0.11.2 of the crate withdraws it (it cannot
//! parse the name it found) and the contender queues again under a fresh
//! prefix. A contender dropped mid-acquire is withdrawn the same way.
//!
//! # Session trouble (what Curator's users learned)
//! A node belongs to the ZooKeeper session that created it: the registry's
//! session at the time of the acquire or join.
//! * Disconnected: the holder cannot know whether its session still lives, so
//!   the lock is [`LockState::Suspended`] and leadership
//!   [`LeaderState::Suspended`] (not leading): stop acting on it. The client
//!   notices a silent connection within the registry's `timeout` or 2/5 of
//!   the session timeout (never more than 3/5 of it), so before the server
//!   may expire the session and let another contender in.
//! * Reconnected within the session: the node is still there, and the state
//!   goes back to held (or leading).
//! * Session expired (or the node deleted by someone else): [`LockState::Lost`]
//!   or [`LeaderState::Lost`], for good. The node is **never** re-created
//!   behind the user's back: unlike the registry's own nodes, a lock must not
//!   follow the registry into its next session. Acquire or join again.
//!
//! # Fencing, and its limits
//! A process paused (GC, SIGSTOP, an overloaded host) past its session timeout
//! loses the lock while it sleeps, and when it wakes it runs on until its
//! client learns of the expiry: it may act on a lock that another process
//! already holds. Writes to ZooKeeper made through the guard
//! ([`LockGuard::set_data`], [`LockGuard::create`], [`LockGuard::delete`],
//! [`LockGuard::check_writer`]) are *fenced*: each is one multi-request that
//! first checks that the lock node still exists, so such a write fails with
//! [`CoordinationError::Lost`] once the lock is gone, whatever the process
//! believes. Writes to anything else (a database, a file) are not protected by
//! the lock alone: pass a fencing token (such as the lock node's sequence
//! number, [`LockGuard::sequence`]) to the system you write to and have it
//! refuse older tokens.

mod election;
mod lock;
mod node;

use std::fmt;
use std::time::Duration;

pub use election::{LeaderElection, LeaderState, Participant};
pub use lock::{Lock, LockGuard, LockState};

/// Why a lock or a leadership was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The ZooKeeper session that owned the node expired (or failed authentication).
    SessionExpired,
    /// The node was deleted by someone else.
    NodeDeleted,
    /// The ZooKeeper client was closed (the registry was shut down).
    Closed,
    /// ZooKeeper refused an operation the recipe needed; the error was logged.
    Failed,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LostReason::SessionExpired => "the ZooKeeper session expired",
            LostReason::NodeDeleted => "the node was deleted by someone else",
            LostReason::Closed => "the ZooKeeper client was closed",
            LostReason::Failed => "ZooKeeper refused an operation of the recipe",
        })
    }
}

/// A lock or election operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The lock was not acquired within the time given; no node was left behind.
    #[error("lock {path}: not acquired within {} ms (held by another contender)", waited.as_millis())]
    Timeout {
        /// The lock's path.
        path: String,
        /// How long the acquire waited.
        waited: Duration,
    },
    /// The lock or leadership is gone, so the operation (a fenced write) was
    /// refused by ZooKeeper or not sent.
    #[error("{path}: no longer held: {reason}")]
    Lost {
        /// The lock's or election's path.
        path: String,
        /// Why it was lost.
        reason: LostReason,
    },
    /// The connection to ZooKeeper broke while the operation was on its way:
    /// it may or may not have been applied, and the lock may or may not still
    /// be held. Wait for the state to settle ([`LockState::Held`] again, or
    /// [`LockState::Lost`]) before going on.
    #[error("{path}: {operation}: the connection to ZooKeeper broke; it may or may not have been applied ({source})")]
    Disconnected {
        /// The path operated on.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        source: zookeeper_client::Error,
    },
    /// The path or id given cannot be used.
    #[error("{path}: {reason}")]
    Invalid {
        /// The lock's or election's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No ZooKeeper session to work with.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
    /// ZooKeeper answered an operation with an error.
    #[error("{path}: {operation} failed: {source}")]
    Zookeeper {
        /// The path operated on.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// ZooKeeper's answer.
        source: zookeeper_client::Error,
    },
}

impl CoordinationError {
    fn zookeeper(path: &str, operation: &'static str, source: zookeeper_client::Error) -> CoordinationError {
        CoordinationError::Zookeeper {
            path: path.to_owned(),
            operation,
            source,
        }
    }

    /// Whether the connection broke during the operation (its outcome is unknown).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, CoordinationError::Disconnected { .. })
    }

    /// Whether the lock or leadership is known to be gone.
    pub fn is_lost(&self) -> bool {
        matches!(self, CoordinationError::Lost { .. })
    }
}
