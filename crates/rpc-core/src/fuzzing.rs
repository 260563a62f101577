//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off
//! by default): the private readers of outside input, reachable without a
//! socket. Thin wrappers only; not a public API.
//!
//! The public decoders (`FrameCodec`, `split_request`, the `tri::codec`
//! functions, `Url`, `Response::decode`, `handler::decode_args`) are fuzzed
//! through their own paths.

use bytes::Bytes;
use http::HeaderMap;

use crate::protocol::tri::server::{Mode, classify, split_path};
use crate::{Response, RpcError, Serialization};

/// What a native reply frame with `status` and `body` means to the consumer.
pub fn rpc_reply(status: u8, body: Bytes) -> Result<Response, RpcError> {
    crate::protocol::rpc::reply_result(status, body)
}

/// How the tri server reads a request's `content-type` header value
/// (lowercased first, as the server does): `Some((true, _))` for gRPC framing,
/// `Some((false, Json))` for plain JSON over HTTP, `None` when refused.
pub fn tri_content_type(value: &str) -> Option<(bool, Serialization)> {
    classify(&value.to_ascii_lowercase()).map(|(mode, serialization)| (mode == Mode::Grpc, serialization))
}

/// How the tri server splits a request path into interface and method.
pub fn tri_split_path(path: &str) -> Option<(&str, &str)> {
    split_path(path)
}

/// The error a tri consumer reads from a response's `grpc-status` and
/// `grpc-message` headers or trailers, if they report one.
pub fn tri_status_error(headers: &HeaderMap) -> Option<RpcError> {
    crate::protocol::tri::client::status_error(headers)
}
