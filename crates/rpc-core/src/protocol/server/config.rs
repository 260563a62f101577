//! [`ServerConfig`] and [`Dispatch`]: a server's settings, the same for every
//! protocol it speaks.

use std::time::Duration;

use crate::protocol::{DEFAULT_HEARTBEAT, DEFAULT_MAX_PAYLOAD};

/// Settings of a [`Server`](super::Server), for every protocol it speaks unless
/// a field says otherwise.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted (default 8 MiB); larger ones get
    /// [`Status::BadRequest`](crate::Status::BadRequest) and the connection stays open.
    pub max_payload: usize,
    /// Heartbeat interval; a client silent for three is disconnected (default 30 s).
    pub heartbeat: Duration,
    /// Most connections served at once; further ones are closed at accept (default 10,000).
    pub max_connections: usize,
    /// Where native-protocol requests run (default [`Dispatch::Auto`]); `tri`
    /// runs each request on a task of its own, as hyper does.
    pub dispatch: Dispatch,
    /// Most requests in flight on one native connection (default 1,024, the
    /// number of concurrent streams a `tri` connection allows). While a
    /// connection has this many, the server reads nothing more from it: the
    /// client meets TCP back-pressure, and nothing is refused.
    pub max_in_flight_per_connection: usize,
    /// Most requests in flight in the whole server, over every connection and
    /// both protocols (default 10,000). Beyond it a request is refused at once
    /// without running its handler: status 100 ([`Status::ServerOverloaded`](crate::Status::ServerOverloaded))
    /// on the native protocol, `RESOURCE_EXHAUSTED` on `tri`. Callers see a
    /// not-sent outcome and may try another provider.
    pub max_in_flight: usize,
    /// Once a connection's first byte has arrived, how long the rest of its
    /// first native frame header, HTTP/2 preface or HTTP/1 request head may
    /// take (default 5 s); a client that stalls in the middle is disconnected.
    /// A connection that has sent nothing is not cut by this: consumers connect
    /// when a reference is built and may stay silent until their first call;
    /// idle connections are governed by heartbeats.
    pub handshake_timeout: Duration,
    /// Graceful shutdown: how long a connection whose peer does not answer the
    /// read-only event (Java Dubbo, older clients) must go without sending a
    /// request, with nothing in flight, before it counts as drained and closes
    /// (default 1 s: requests already on the wire when such a peer read the
    /// event arrive within a round trip). Peers that answer the event, as
    /// this crate's consumers do, are closed as soon as their calls are done.
    /// [`ServerHandle::shutdown`](super::ServerHandle::shutdown)'s grace period bounds both.
    pub shutdown_quiet: Duration,
}

/// Where a server runs the requests it reads: Dubbo's `dispatcher` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// [`Inline`](Dispatch::Inline) on a runtime with one worker thread,
    /// where a task per request buys no parallelism;
    /// [`Spawn`](Dispatch::Spawn) otherwise.
    #[default]
    Auto,
    /// Run each request on its connection's task until the handler first
    /// waits, and give it a task of its own only then (Dubbo's `direct`).
    /// Handlers that answer without waiting cost no task at all, which makes
    /// this the fastest; but one that computes for long before it first
    /// waits holds up the requests behind it on the same connection.
    Inline,
    /// Give every request a task of its own (Dubbo's default, `all`), so the
    /// requests of one connection spread over every worker thread.
    Spawn,
}

impl Dispatch {
    /// `Auto` resolved for the current runtime.
    pub(super) fn resolve(self) -> Dispatch {
        match self {
            Dispatch::Auto => match tokio::runtime::Handle::try_current() {
                Ok(handle) if handle.metrics().num_workers() <= 1 => Dispatch::Inline,
                _ => Dispatch::Spawn,
            },
            other => other,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_payload: DEFAULT_MAX_PAYLOAD,
            heartbeat: DEFAULT_HEARTBEAT,
            max_connections: 10_000,
            dispatch: Dispatch::Auto,
            max_in_flight_per_connection: 1024,
            max_in_flight: 10_000,
            handshake_timeout: Duration::from_secs(5),
            shutdown_quiet: Duration::from_secs(1),
        }
    }
}
