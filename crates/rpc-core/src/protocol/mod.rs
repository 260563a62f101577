//! Wire protocols. [`rpc`] is the native binary protocol.

pub mod rpc;
pub mod tri;
