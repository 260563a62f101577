//! Core of the rpc framework: the types every other crate speaks.
//!
//! [`Url`] names services and providers the way Apache Dubbo does;
//! [`Invocation`] is one call as it flows through every layer; [`RpcError`]
//! tells apart calls that were not sent, whose outcome is unknown, and that a
//! provider rejected; [`Serialization`] encodes payloads; [`protocol`] holds
//! the provider's [`Server`](protocol::server::Server), which speaks every
//! protocol on one port, and the protocols: [`protocol::rpc`], the native
//! binary protocol (Dubbo's 16-byte header, request multiplexing, heartbeats)
//! with its client [`RpcChannel`](protocol::rpc::RpcChannel), and [`protocol::tri`],
//! Dubbo's Triple (gRPC-compatible).
//!
//! Generated code (from `#[service]` in `rpc-macros`) talks to the framework
//! through [`ServiceHandler`] on the provider side and [`ServiceClient`] /
//! [`Stub`] on the consumer side.

pub mod descriptor;
pub mod dispatch;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash_key;
pub mod invocation;
pub mod invoker;
pub mod protocol;
mod scratch;
pub mod serialization;
pub mod service;
pub mod stub;
pub mod url;
pub mod zero;

pub use descriptor::{ClusterPolicy, LoadBalancer, MethodConfig, MethodDescriptor, ServiceDescriptor};
pub use dispatch::{Dispatcher, Exported};
pub use error::{ErrorKind, Outcome, RpcError, Status};
pub use invocation::{Attachments, Invocation, MethodName, ServiceKey};
pub use invoker::{BoxError, BoxFuture, BoxInvoker, Invoker, InvokerLayer, from_layer_error};
pub use serialization::{CodecError, Serialization};
pub use service::{HandlerService, Response, ServiceHandler};
pub use stub::{ServiceClient, Stub};
pub use url::{Url, UrlError};

#[doc(hidden)]
pub mod __private {
    //! Re-exports for generated code. Not a public API.
    pub use serde;
}
