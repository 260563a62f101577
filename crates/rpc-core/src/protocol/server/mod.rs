//! The provider's server, whatever protocol its clients speak: [`Server`]
//! listens on a port, accepts connections, gives each one to the protocol its
//! first byte names, counts connections and calls, and shuts down gracefully.
//! Every port speaks every protocol (Dubbo's magic `0xda` starts a native
//! connection; anything else is HTTP, for `tri`).
//!
//! What a server guarantees, whatever its clients do:
//!
//! * **Bounded work.** At most [`ServerConfig::max_connections`] connections
//!   are served; more are closed at accept. Over all connections and both
//!   protocols at most [`ServerConfig::max_in_flight`] requests run; more are
//!   refused at once (native status 100, [`Status::ServerOverloaded`];
//!   `tri` `RESOURCE_EXHAUSTED`), their handlers not run, so the caller may
//!   try another provider. Each protocol bounds its own connections further
//!   (see [`rpc`](crate::protocol::rpc) and [`tri`](crate::protocol::tri)).
//! * **No slow handshakes.** Once a connection's first byte has arrived, the
//!   rest of its protocol's first message must follow within
//!   [`ServerConfig::handshake_timeout`]; a connection that sends nothing is
//!   closed after three heartbeats.
//! * **Graceful shutdown loses nothing** ([`ServerHandle::shutdown`]): the
//!   listener closes first, every connection's protocol announces that the
//!   server is leaving (the native read-only event, HTTP/2 GOAWAY), and
//!   requests that still arrive on existing connections run. A connection
//!   closes once it is drained, as its protocol defines it; the grace period
//!   bounds it all.
//!
//! How it is built (crate-internal, for whoever adds a protocol):
//!
//! * `accept`: the listener's loop and the connection limit;
//! * `sniff`: waits for a connection's first byte, hands the connection to
//!   the first protocol in `PROTOCOLS` that claims it, wrapped in a
//!   `Handshake` that holds its first message to the handshake deadline;
//! * `gauge`: counts connections and calls, and wakes whoever waits for zero;
//! * `shutdown`: the signals connections watch, and the order
//!   [`ServerHandle::shutdown`] raises them in;
//! * `config`: [`ServerConfig`] and [`Dispatch`].
//!
//! **The seam to the protocols** is the trait `ServeConnection`: a protocol
//! says which first bytes are its own, how to tell when its first message is
//! complete (a `Greeting`), and serves a connection until it closes, reading
//! what it needs from `ServerShared`: the exported services, the settings,
//! the server-wide call limit (`admit`) and the shutdown signals. Handlers
//! are generic over the transport (any `AsyncRead + AsyncWrite`), so they are
//! unit-tested over `tokio::io::duplex`. The protocols know nothing of each
//! other, nor of the listener; this module names them in one place,
//! `PROTOCOLS`: adding a protocol is implementing the trait and adding it
//! there.

mod accept;
mod config;
mod gauge;
mod shutdown;
mod sniff;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};

pub use config::{Dispatch, ServerConfig};
pub(crate) use gauge::{Gauge, GaugeGuard};
pub(crate) use shutdown::Shutdown;
pub(crate) use sniff::{Greeting, Handshake};

use crate::dispatch::Dispatcher;
use crate::error::{RpcError, Status};
use crate::invocation::ServiceKey;

/// A protocol the server hands connections to. Implemented by the native
/// protocol and `tri`; the server knows them only through this.
pub(crate) trait ServeConnection: Send + Sync + 'static {
    /// Whether a connection whose first byte is `first` speaks this protocol.
    fn claims(&self, first: u8) -> bool;

    /// Tracks this protocol's first message, to hold it to
    /// [`ServerConfig::handshake_timeout`].
    fn greeting(&self) -> Box<dyn Greeting>;

    /// Serves `stream` (its first byte not yet read) until the connection
    /// closes: at the peer's or the protocol's will, or as the server's
    /// [`Shutdown`] signals say. The connection counts as open until the
    /// future ends.
    fn serve(
        &self,
        stream: Handshake<TcpStream>,
        peer: SocketAddr,
        server: Arc<ServerShared>,
    ) -> BoxFuture<'static, ()>;
}

/// The protocols every port speaks, asked in this order whether they claim a
/// connection: the native protocol takes Dubbo's magic, and `tri`, last,
/// takes everything else.
static PROTOCOLS: [&dyn ServeConnection; 2] = [
    &crate::protocol::rpc::RpcServerSide,
    &crate::protocol::tri::TriServerSide,
];

/// A server for the services of a [`Dispatcher`], speaking every protocol on
/// one port.
#[derive(Debug)]
pub struct Server {
    dispatcher: Dispatcher,
    config: ServerConfig,
}

/// What a server's connections share, whichever protocol they speak.
#[derive(Debug)]
pub(crate) struct ServerShared {
    /// The exported services.
    pub(crate) dispatcher: Dispatcher,
    /// The settings, [`Dispatch::Auto`] resolved.
    pub(crate) config: ServerConfig,
    /// Open connections.
    connections: Arc<Gauge>,
    /// Requests running, over every connection.
    in_flight: Arc<Gauge>,
    /// Native requests read and waiting for their connection's in-flight limit.
    pub(crate) queued: Arc<Gauge>,
    /// Connections closed at accept by [`ServerConfig::max_connections`].
    pub(crate) refused_connections: AtomicU64,
    /// Requests refused by [`ServerConfig::max_in_flight`].
    refused_requests: AtomicU64,
    /// Where the server is in its shutdown.
    pub(crate) shutdown: Shutdown,
}

impl ServerShared {
    /// Shared state for `dispatcher`'s services, with `config` as it is
    /// ([`Dispatch::Auto`] is resolved by [`Server::serve`]).
    pub(crate) fn new(dispatcher: Dispatcher, config: ServerConfig) -> Self {
        ServerShared {
            dispatcher,
            config,
            connections: Arc::default(),
            in_flight: Arc::default(),
            queued: Arc::default(),
            refused_connections: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
            shutdown: Shutdown::default(),
        }
    }

    /// Admits one call of `key`'s `method`, counted until the guard is
    /// dropped; refused with [`Status::ServerOverloaded`] (the handler not
    /// run) when [`ServerConfig::max_in_flight`] calls run already.
    pub(crate) fn admit(&self, key: &ServiceKey, method: &str) -> Result<GaugeGuard, RpcError> {
        self.in_flight.try_enter(self.config.max_in_flight).ok_or_else(|| {
            self.refused_requests.fetch_add(1, Ordering::Relaxed);
            self.overloaded(key, method)
        })
    }

    /// The refusal of a request when `max_in_flight` calls run already.
    fn overloaded(&self, key: &ServiceKey, method: &str) -> RpcError {
        RpcError::remote(
            Status::ServerOverloaded,
            format!(
                "provider at capacity: {} calls in flight (ServerConfig::max_in_flight); \
                 `{key}` method `{method}` was not run",
                self.config.max_in_flight
            ),
        )
        .with_service(key)
        .with_method(method)
    }

    /// Requests running now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

/// A running server: its address, its counters, and its shutdown.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<ServerShared>,
    /// Counts the accept loop while it runs.
    accept_done: Arc<Gauge>,
}

impl Server {
    /// A server for `dispatcher`'s services.
    pub fn new(dispatcher: Dispatcher, config: ServerConfig) -> Self {
        Server { dispatcher, config }
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.serve(listener))
    }

    /// Serves on an already bound listener (within a tokio runtime, which
    /// resolves [`Dispatch::Auto`]).
    pub fn serve(self, listener: TcpListener) -> ServerHandle {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut config = self.config;
        config.dispatch = config.dispatch.resolve();
        let shared = Arc::new(ServerShared::new(self.dispatcher, config));
        let accept_done = Arc::new(Gauge::default());
        let running = accept_done.enter();
        tokio::spawn(accept::accept_loop(listener, shared.clone(), running));
        ServerHandle {
            local_addr,
            shared,
            accept_done,
        }
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where this server runs native requests ([`Dispatch::Auto`] resolved when it started).
    pub fn dispatch(&self) -> Dispatch {
        self.shared.config.dispatch
    }

    /// Open connections, of every protocol.
    pub fn connections(&self) -> usize {
        self.shared.connections.get()
    }

    /// Requests being handled, of every protocol.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.get()
    }

    /// The exported services.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }

    /// What the server counts now: its gauges and how often its limits
    /// refused work since it started. Reads a few atomics; meant for
    /// metrics scraped now and then.
    pub fn stats(&self) -> ServerStats {
        let shared = &self.shared;
        ServerStats {
            connections: shared.connections.get(),
            in_flight: shared.in_flight.get(),
            queued: shared.queued.get(),
            refused_connections: shared.refused_connections.load(Ordering::Relaxed),
            refused_requests: shared.refused_requests.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a server's counters ([`ServerHandle::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Open connections, of every protocol.
    pub connections: usize,
    /// Requests being handled, of every protocol.
    pub in_flight: usize,
    /// Native requests read from a connection that has
    /// [`ServerConfig::max_in_flight_per_connection`] in flight, waiting for
    /// one of them to end before they run (at most one per connection: the
    /// server reads nothing more from it meanwhile). `tri` queues nothing:
    /// HTTP/2 bounds the streams a peer may open.
    pub queued: usize,
    /// Connections closed at accept because [`ServerConfig::max_connections`]
    /// were open, since the server started.
    pub refused_connections: u64,
    /// Requests refused unrun because [`ServerConfig::max_in_flight`] were
    /// running, since the server started.
    pub refused_requests: u64,
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
