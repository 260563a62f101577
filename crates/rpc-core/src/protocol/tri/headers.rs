//! Header names of the Triple protocol.

/// The service version (omitted by the Python client for 1.0.0).
pub(crate) const SERVICE_VERSION: &str = "tri-service-version";
/// The service group.
pub(crate) const SERVICE_GROUP: &str = "tri-service-group";
/// The call's timeout (`grpc-timeout` syntax).
pub(crate) const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The gRPC status code (trailer, or header of a trailers-only response).
pub(crate) const GRPC_STATUS: &str = "grpc-status";
/// The gRPC status message, percent-encoded.
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";
/// Set by our provider on answers refusing a call before its handler ran
/// (shutting down, overloaded, payload too large): only with it does a
/// consumer take `UNAVAILABLE`, `RESOURCE_EXHAUSTED` or HTTP 429/502/503/504
/// for "not run", since proxies return those after forwarding a request too.
/// The value says why (`shutting-down`, `overloaded`, `too-large`).
pub const REFUSED: &str = "tri-refused";
/// The version a request without a version header means.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// Whether a request header belongs to HTTP, gRPC or Triple rather than to
/// the call's attachments.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with(':')
        || name.starts_with("grpc-")
        || name.starts_with("tri-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "te"
                | "user-agent"
                | "host"
                | "accept"
                | "accept-encoding"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "upgrade"
                | "expect"
        )
}
