//! The connection layer under both client channels
//! ([`RpcChannel`](crate::protocol::rpc::RpcChannel) and
//! [`TriChannel`](crate::protocol::tri::TriChannel)).
//!
//! * [`Connector`]: the transport. It opens a byte stream ([`Io`]) to an
//!   address; [`TcpConnector`] (TCP with `TCP_NODELAY`) is the default, and a
//!   channel built `with_connector` runs over anything else, such as one end
//!   of `tokio::io::duplex` in tests.
//! * `Link`: a channel's one connection to its provider and the state
//!   machine around it: lazy connect, one attempt at a time shared by every
//!   waiting call, bounded by the connect timeout and each call's deadline;
//!   one backoff (exponential, jittered; `protocol::backoff`) after
//!   a failed attempt or a connection that died young; probing in the
//!   background after a connection ends; the provider's "shutting down"
//!   (read-only event, GOAWAY); and the [`Health`](super::Health) the
//!   cluster reads, decided in one place.
//! * `InFlight`: the calls waiting for answers on one connection: a call is
//!   registered and queued in one step or refused unsent; each ends exactly
//!   once (answered, failed with the outcome the protocol chose, abandoned,
//!   or given up by its caller); closing fails all of them at once.
//!
//! A protocol plugs in by implementing `Establish` (set up a connection
//! over a fresh stream, start its tasks) and `Connection` (closed? leaving?
//! close), and reports back through the `Watch` it is given.

mod connector;
pub(crate) mod in_flight;
pub(crate) mod link;

pub use connector::{Connector, Io, TcpConnector};
#[cfg(test)]
pub(crate) mod testing;
