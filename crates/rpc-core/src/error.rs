//! [`RpcError`]: what went wrong with a remote call, where, and whether it ran.
//!
//! A remote call has three outcomes, not two: success, failure, and *unknown*.
//! [`Outcome`] keeps them apart so that cluster policies can decide whether a
//! retry is safe:
//!
//! * [`Outcome::NotSent`]: the request never left this process (no provider,
//!   connection refused, connection closed before the write). Always safe to retry.
//! * [`Outcome::Unknown`]: the request may have run (client timeout, connection
//!   lost after the write, server-side timeout). Retry only idempotent methods.
//! * [`Outcome::Remote`]: the provider answered with a framework error (service
//!   not found, bad request, overloaded, ...). Whether another provider may
//!   succeed depends on the [`Status`].
//!
//! A method's own business error (the `Err` of a `Result` return type) is *not*
//! an `RpcError`: it travels as a value inside a successful response.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The status byte of a native `rpc` response frame (Dubbo's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 20: the call succeeded.
    Ok,
    /// 25: the request or response could not be (de)serialized.
    SerializationError,
    /// 30: the client gave up waiting.
    ClientTimeout,
    /// 31: the provider gave up waiting for its handler.
    ServerTimeout,
    /// 35: the channel is inactive: the provider is shutting down (read-only).
    ChannelInactive,
    /// 40: the request was malformed.
    BadRequest,
    /// 50: the response was malformed.
    BadResponse,
    /// 60: no such service (interface, version, group) or method on the provider.
    ServiceNotFound,
    /// 70: the service implementation failed (panicked).
    ServiceError,
    /// 80: the provider failed outside the service implementation.
    ServerError,
    /// 90: the client failed.
    ClientError,
    /// 100: the provider refused the call because it is at capacity.
    ServerOverloaded,
    /// Any other code a peer sent.
    Other(u8),
}

impl Status {
    /// 116 (Dubbo's status byte has no such code; gRPC's `UNAUTHENTICATED`
    /// and `PERMISSION_DENIED` arrive as it): the provider refused the caller
    /// before running anything, say for a missing or wrong `token`. Retrying
    /// elsewhere does not help: not retryable.
    pub const UNAUTHENTICATED: Status = Status::Other(116);

    /// The wire code of this status.
    pub const fn code(self) -> u8 {
        match self {
            Status::Ok => 20,
            Status::SerializationError => 25,
            Status::ClientTimeout => 30,
            Status::ServerTimeout => 31,
            Status::ChannelInactive => 35,
            Status::BadRequest => 40,
            Status::BadResponse => 50,
            Status::ServiceNotFound => 60,
            Status::ServiceError => 70,
            Status::ServerError => 80,
            Status::ClientError => 90,
            Status::ServerOverloaded => 100,
            Status::Other(code) => code,
        }
    }

    /// The status for a wire code.
    pub const fn from_code(code: u8) -> Status {
        match code {
            20 => Status::Ok,
            25 => Status::SerializationError,
            30 => Status::ClientTimeout,
            31 => Status::ServerTimeout,
            35 => Status::ChannelInactive,
            40 => Status::BadRequest,
            50 => Status::BadResponse,
            60 => Status::ServiceNotFound,
            70 => Status::ServiceError,
            80 => Status::ServerError,
            90 => Status::ClientError,
            100 => Status::ServerOverloaded,
            other => Status::Other(other),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::SerializationError => "serialization error",
            Status::ClientTimeout => "client timeout",
            Status::ServerTimeout => "server timeout",
            Status::ChannelInactive => "provider is shutting down",
            Status::BadRequest => "bad request",
            Status::BadResponse => "bad response",
            Status::ServiceNotFound => "service not found",
            Status::ServiceError => "service error",
            Status::ServerError => "server error",
            Status::ClientError => "client error",
            Status::ServerOverloaded => "provider overloaded",
            Status::Other(116) => "caller refused by the provider",
            Status::Other(_) => "unknown status",
        }
    }
}

/// Whether a failed call may have run on the provider. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The request never left this process: always safe to retry.
    NotSent,
    /// The request may or may not have run: retry only idempotent methods.
    Unknown,
    /// The provider answered with a framework error.
    Remote,
}

/// What kind of failure an [`RpcError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No provider matches the reference (none registered, or all filtered out).
    NoProvider,
    /// Connecting to the provider failed.
    Connect,
    /// The channel or connection was closed before the request was written.
    Closed,
    /// The arguments could not be encoded locally.
    Encode,
    /// The request is larger than the payload limit; it was not sent.
    PayloadTooLarge,
    /// A local limit (such as a concurrency limit) refused the call before sending.
    LocalLimit,
    /// The call's deadline passed before its request was sent (nothing ran).
    Expired,
    /// The call's deadline passed before a response arrived.
    Timeout,
    /// The connection broke after the request was written.
    ConnectionLost,
    /// The response could not be decoded.
    Decode,
    /// A layer (filter) failed the call with an error of its own; its source
    /// says why. Nothing tells where the layer stopped the call, so it may have run.
    Layer,
    /// The provider answered with a non-OK status.
    Remote(Status),
}

impl ErrorKind {
    /// Whether a call that failed this way may have run. See [`Outcome`].
    pub const fn outcome(self) -> Outcome {
        match self {
            ErrorKind::NoProvider
            | ErrorKind::Connect
            | ErrorKind::Closed
            | ErrorKind::Encode
            | ErrorKind::PayloadTooLarge
            | ErrorKind::LocalLimit
            | ErrorKind::Expired => Outcome::NotSent,
            ErrorKind::Timeout | ErrorKind::ConnectionLost | ErrorKind::Layer => Outcome::Unknown,
            ErrorKind::Remote(Status::ServerTimeout) => Outcome::Unknown,
            // The provider refused before running the handler.
            ErrorKind::Remote(Status::ChannelInactive) | ErrorKind::Remote(Status::ServerOverloaded) => {
                Outcome::NotSent
            }
            ErrorKind::Decode | ErrorKind::Remote(_) => Outcome::Remote,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NoProvider => "no provider available",
            ErrorKind::Connect => "cannot connect to provider",
            ErrorKind::Closed => "channel closed before the request was sent",
            ErrorKind::Encode => "cannot encode request",
            ErrorKind::PayloadTooLarge => "payload too large",
            ErrorKind::LocalLimit => "local limit reached",
            ErrorKind::Expired => "the deadline passed before the request was sent",
            ErrorKind::Timeout => "timed out waiting for the response (outcome unknown)",
            ErrorKind::ConnectionLost => "connection lost after the request was sent (outcome unknown)",
            ErrorKind::Decode => "cannot decode response",
            ErrorKind::Layer => "a layer failed the call (outcome unknown)",
            ErrorKind::Remote(status) => status.describe(),
        }
    }
}

/// The error of a remote call: what failed ([`ErrorKind`]), where (service,
/// method, provider address) and why (message and source).
#[derive(Clone)]
pub struct RpcError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    service: Option<String>,
    method: Option<String>,
    address: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl RpcError {
    /// A new error of `kind`, explained by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                service: None,
                method: None,
                address: None,
                source: None,
            }),
        }
    }

    /// A framework error answered by a provider with `status`.
    pub fn remote(status: Status, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Remote(status), message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether the call may have run on the provider.
    pub fn outcome(&self) -> Outcome {
        self.inner.kind.outcome()
    }

    /// The provider status, for errors the provider answered.
    pub fn status(&self) -> Option<Status> {
        match self.inner.kind {
            ErrorKind::Remote(status) => Some(status),
            _ => None,
        }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The service key (`group/interface:version`) the call was for, if known.
    pub fn service(&self) -> Option<&str> {
        self.inner.service.as_deref()
    }

    /// The wire method name, if known.
    pub fn method(&self) -> Option<&str> {
        self.inner.method.as_deref()
    }

    /// The provider address (`host:port`), if known.
    pub fn address(&self) -> Option<&str> {
        self.inner.address.as_deref()
    }

    /// Whether retrying on another provider is safe and may help.
    ///
    /// Not-sent errors are always retryable; unknown outcomes only for idempotent
    /// methods; provider errors only when another provider may answer differently
    /// (shutting down, overloaded, service not found there).
    pub fn is_retryable(&self, idempotent: bool) -> bool {
        match self.outcome() {
            Outcome::NotSent => true,
            Outcome::Unknown => idempotent,
            Outcome::Remote => matches!(self.inner.kind, ErrorKind::Remote(Status::ServiceNotFound)),
        }
    }

    /// Adds `note` to the reason (e.g. "after 3 attempts on a, b, c").
    pub fn with_note(mut self, note: impl fmt::Display) -> Self {
        if self.inner.message.is_empty() {
            self.inner.message = note.to_string();
        } else {
            self.inner.message = format!("{} ({note})", self.inner.message);
        }
        self
    }

    /// Sets the service this error is about, unless already set.
    pub fn with_service(mut self, service: impl fmt::Display) -> Self {
        if self.inner.service.is_none() {
            self.inner.service = Some(service.to_string());
        }
        self
    }

    /// Sets the method this error is about, unless already set.
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        if self.inner.method.is_none() {
            self.inner.method = Some(method.into());
        }
        self
    }

    /// Names `method` instead of the generic call's wire method (`$invoke`)
    /// that carried it: what the caller asked for.
    pub(crate) fn for_generic_method(mut self, method: &str) -> Self {
        if self.inner.method.as_deref() == Some(crate::generic::INVOKE) {
            self.inner.method = Some(method.to_owned());
        }
        self
    }

    /// Sets the provider address this error is about, unless already set.
    pub fn with_address(mut self, address: impl fmt::Display) -> Self {
        if self.inner.address.is_none() {
            self.inner.address = Some(address.to_string());
        }
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// Attaches an underlying cause that is already boxed.
    pub fn with_boxed_source(mut self, source: Box<dyn StdError + Send + Sync + 'static>) -> Self {
        self.inner.source = Some(Arc::from(source));
        self
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.write_str(inner.kind.describe())?;
        if let ErrorKind::Remote(status) = inner.kind {
            write!(f, " (status {})", status.code())?;
        }
        if !inner.message.is_empty() {
            write!(f, ": {}", inner.message)?;
        }
        let mut sep = " [";
        for (label, value) in [
            ("service", &inner.service),
            ("method", &inner.method),
            ("provider", &inner.address),
        ] {
            if let Some(value) = value {
                write!(f, "{sep}{label} {value}")?;
                sep = ", ";
            }
        }
        if sep == ", " {
            f.write_str("]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut d = f.debug_struct("RpcError");
        d.field("kind", &inner.kind).field("message", &inner.message);
        if let Some(s) = &inner.service {
            d.field("service", s);
        }
        if let Some(m) = &inner.method {
            d.field("method", m);
        }
        if let Some(a) = &inner.address {
            d.field("address", a);
        }
        if let Some(src) = &inner.source {
            d.field("source", src);
        }
        d.finish()
    }
}

impl StdError for RpcError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for code in 0..=u8::MAX {
            assert_eq!(Status::from_code(code).code(), code);
        }
    }

    #[test]
    fn outcomes_follow_the_three_state_model() {
        assert_eq!(ErrorKind::Connect.outcome(), Outcome::NotSent);
        assert_eq!(ErrorKind::Timeout.outcome(), Outcome::Unknown);
        assert_eq!(ErrorKind::ConnectionLost.outcome(), Outcome::Unknown);
        assert_eq!(ErrorKind::Remote(Status::ServerTimeout).outcome(), Outcome::Unknown);
        assert_eq!(ErrorKind::Remote(Status::BadRequest).outcome(), Outcome::Remote);
        let timeout = RpcError::new(ErrorKind::Timeout, "after 300ms");
        assert!(timeout.is_retryable(true));
        assert!(!timeout.is_retryable(false));
        assert!(!RpcError::remote(Status::BadRequest, "x").is_retryable(true));
        assert!(RpcError::remote(Status::ServiceNotFound, "x").is_retryable(false));
    }

    #[test]
    fn display_names_what_where_and_why() {
        let err = RpcError::new(ErrorKind::Connect, "connection refused")
            .with_service("org.example.Greeter:1.0.0")
            .with_method("sayHello")
            .with_address("127.0.0.1:20880");
        assert_eq!(
            err.to_string(),
            "cannot connect to provider: connection refused [service org.example.Greeter:1.0.0, \
             method sayHello, provider 127.0.0.1:20880]"
        );
    }
}
