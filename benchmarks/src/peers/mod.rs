//! The peers: each module serves the echo service on a listener and makes a
//! client whose `call` echoes one payload.

pub mod tarpc_peer;
pub mod tonic_peer;
