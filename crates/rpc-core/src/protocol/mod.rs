//! Wire protocols. [`rpc`] is the native binary protocol.

pub(crate) mod backoff;
pub mod rpc;
pub mod tri;
