//! `tri`: Dubbo's Triple protocol, gRPC-compatible, on hyper.
//!
//! * HTTP/2 with gRPC framing: `POST /{interface}/{method}`,
//!   `content-type: application/grpc[+json|+bincode|+...]`, `te: trailers`,
//!   headers `tri-service-version`, `tri-service-group`, `grpc-timeout`, other
//!   headers as attachments; the answer's status in the `grpc-status` and
//!   `grpc-message` trailers. Payloads are bincode when the content type says
//!   `+bincode`, JSON otherwise (what gRPC and Dubbo peers of other languages
//!   send with JSON serializers).
//! * HTTP/1.1 `POST /{interface}/{method}` with `content-type:
//!   application/json` and the arguments as JSON (an array, or the bare value
//!   of a one-argument method): the JSON result, or an HTTP error status with
//!   a JSON body `{"code", "error", "message"}`. `curl` can call any service.
//! * Java Dubbo 3's form for interface-based services: each call's message
//!   a protobuf `TripleRequestWrapper` of Hessian2 arguments, answered with a
//!   `TripleResponseWrapper` (see [`wrapper`]).
//!
//! Every [server](crate::protocol::server::Server) port speaks Triple as well
//! as the native protocol: it looks at the first byte of each connection.
//! [`TriChannel`] is the consumer side.

pub mod client;
pub mod codec;
pub mod headers;
pub(crate) mod server;
pub mod wrapper;

pub use client::{TriChannel, TriChannelConfig, WeakTriChannel};
pub(crate) use server::TriServerSide;
