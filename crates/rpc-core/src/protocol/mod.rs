//! Wire protocols and the server that speaks them.
//!
//! * [`server`]: the provider's [`Server`](server::Server), protocol-neutral:
//!   listener, connection limits, first-byte sniffing, graceful shutdown. It
//!   hands each connection to the protocol that claims it.
//! * [`rpc`]: the native binary protocol (Dubbo's 16-byte header): its
//!   client [`Channel`](rpc::Channel) and its side of a server connection.
//! * [`tri`]: Dubbo's Triple (gRPC-compatible HTTP/2, and HTTP/1.1 JSON): its
//!   client [`TriChannel`](tri::TriChannel) and its side of a server connection.
//!
//! `rpc` and `tri` are leaves: neither imports the other; both serve through
//! the seam `server` defines.

use std::time::Duration;

pub(crate) mod backoff;
pub mod rpc;
pub mod server;
pub mod tri;

/// Default payload limit of servers and channels: 8 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Default heartbeat interval of servers and channels (a peer silent for 3
/// intervals is closed).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Whether a provider's channel should take new calls, as the cluster's
/// selection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Connected, or not tried yet: send calls here.
    Ready,
    /// Connecting, or waiting to reconnect after a failure: prefer others.
    Unavailable,
    /// The provider said it is shutting down: send it nothing new. It is
    /// leaving the cluster, so a broadcast does not wait for it either.
    Leaving,
}
