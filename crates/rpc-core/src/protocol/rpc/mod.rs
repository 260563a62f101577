//! The native `rpc` protocol: TCP, one multiplexed connection per provider.
//!
//! Frames use Apache Dubbo's 16-byte header (see [`frame`]); bodies are
//! encoded with bincode (default) or JSON. Many calls share one connection,
//! matched by request id. Idle connections exchange heartbeat events, and a
//! peer silent for three heartbeat intervals is closed. Deadlines travel as a
//! relative timeout. Frames over the payload limit are refused with a clear
//! error without tearing the connection down.
//!
//! * [`Server`]: accepts connections and dispatches requests to the exported
//!   services; graceful shutdown tells clients it is going read-only, stops
//!   accepting and drains in-flight calls.
//! * [`Channel`]: the client side for one provider address, a tower
//!   `Service<Invocation>`: connects lazily, reconnects with backoff, and fails
//!   in-flight calls at once when the connection breaks, saying whether the
//!   request had been sent.

mod client;
mod conn;
pub mod frame;
pub(crate) mod server;

use std::time::Duration;

#[cfg(feature = "fuzzing")]
pub(crate) use client::reply_result;
pub use client::{Channel, ChannelConfig, WeakChannel};
pub use server::{Dispatch, Server, ServerConfig, ServerHandle};

/// Default heartbeat interval (a peer silent for 3 intervals is closed).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
