//! [`Error`]: why a provider could not start or a reference could not be built.

use rpc_core::RpcError;
use rpc_registry::RegistryError;

/// Start-up and configuration errors of [`Provider`](crate::Provider) and
/// [`Consumer`](crate::Consumer). Errors of calls are [`RpcError`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A registry refused or failed an operation.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A protocol server could not listen.
    #[error("cannot listen on {address} for protocol `{protocol}`: {source}")]
    Bind {
        /// The protocol.
        protocol: String,
        /// The address.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The startup check failed: no provider of the reference exists.
    #[error(transparent)]
    NoProvider(RpcError),
}
