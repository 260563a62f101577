//! Wire protocols. [`rpc`] is the native binary protocol, [`tri`] Dubbo's
//! Triple (gRPC-compatible HTTP/2, and HTTP/1.1 JSON). [`connection`] is what
//! their client channels share: the transport ([`connection::Connector`]),
//! connecting and reconnecting with one backoff, the calls in flight, and the
//! [`Health`] the cluster reads.

pub(crate) mod backoff;
pub mod connection;
pub mod rpc;
pub mod tri;

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
impl From<rpc::ChannelConfig> for tri::TriChannelConfig {
    fn from(config: rpc::ChannelConfig) -> Self {
        tri::TriChannelConfig {
            max_payload: config.max_payload,
            heartbeat: config.heartbeat,
            connect_timeout: config.connect_timeout,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max,
        }
    }
}
