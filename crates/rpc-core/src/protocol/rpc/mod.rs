//! The native `rpc` protocol: TCP, one multiplexed connection per provider.
//!
//! Frames use Apache Dubbo's 16-byte header (see [`frame`]); bodies are
//! encoded with bincode (default) or JSON. Many calls share one connection,
//! matched by request id. Idle connections exchange heartbeat events, and a
//! peer silent for three heartbeat intervals is closed. Deadlines travel as a
//! relative timeout. Frames over the payload limit are refused with a clear
//! error without tearing the connection down.
//!
//! * `server`: the provider side of a native connection (frames, requests,
//!   heartbeats, the read-only event), which the [protocol-neutral
//!   server](crate::protocol::server::Server) hands connections starting with
//!   Dubbo's magic.
//! * [`RpcChannel`]: the client side for one provider address, a tower
//!   `Service<Invocation>`: connects lazily, reconnects with backoff, and fails
//!   in-flight calls at once when the connection breaks, saying whether the
//!   request had been sent.

mod client;
mod conn;
pub mod frame;
mod server;

#[cfg(feature = "fuzzing")]
pub(crate) use client::reply_result;
pub use client::{RpcChannel, RpcChannelConfig, WeakRpcChannel};
pub(crate) use server::RpcServerSide;
