//! Wire protocols, the server that speaks them, and what clients share.
//!
//! * [`server`]: the provider's [`Server`](server::Server), protocol-neutral:
//!   listener, connection limits, first-byte sniffing, graceful shutdown. It
//!   hands each connection to the protocol that claims it.
//! * [`connection`]: what the client channels share: the transport
//!   ([`connection::Connector`]), connecting and reconnecting with one
//!   backoff, the calls in flight, and the [`Health`] the cluster reads.
//! * [`rpc`]: the native binary protocol (Dubbo's 16-byte header): its
//!   client [`RpcChannel`](rpc::RpcChannel) and its side of a server connection.
//! * [`tri`]: Dubbo's Triple (gRPC-compatible HTTP/2, and HTTP/1.1 JSON): its
//!   client [`TriChannel`](tri::TriChannel) and its side of a server connection.
//!
//! `rpc` and `tri` are leaves: neither imports the other; both serve through
//! the seam `server` defines and connect through `connection`.

use std::time::Duration;

pub(crate) mod backoff;
pub mod connection;
pub mod dubbo;
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

/// The settings both channels share carry over (connect timeout, backoff,
/// heartbeat, payload limit), so one consumer setting serves both protocols.
impl From<rpc::RpcChannelConfig> for tri::TriChannelConfig {
    fn from(config: rpc::RpcChannelConfig) -> Self {
        tri::TriChannelConfig {
            max_payload: config.max_payload,
            heartbeat: config.heartbeat,
            connect_timeout: config.connect_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
        }
    }
}
