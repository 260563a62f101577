//! The seams between generated code and the framework.
//!
//! `#[service]` emits, for a trait `Greeter`:
//! * `GreeterServer<T>`, which implements [`ServiceHandler`]: it decodes the
//!   arguments, calls the user's implementation, encodes the return value;
//! * `GreeterClient`, which implements [`ServiceClient`](crate::ServiceClient): a typed stub whose
//!   methods encode the arguments and send an [`Invocation`] through a [`Stub`](crate::Stub).
//!
//! Everything between the stub and the handler works on [`Invocation`] and
//! [`Response`] only, as a tower `Service`, so layers can be stacked freely.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::descriptor::ServiceDescriptor;
use crate::error::{RpcError, Status};
use crate::invocation::Invocation;
pub use crate::invoker::BoxFuture;
use crate::serialization::Serialization;

/// A successful response: the encoded return value of the method.
///
/// For a method returning `Result<T, E>`, a business error is *inside* the
/// payload: it is a successful call.
///
/// Consumer layers that answer on behalf of a provider say how their answer
/// is to be read: [`Response::json`] (a mock's literal, decoded from JSON
/// whatever the call's serialization) or [`Response::zero_instead_of`] (the return
/// type's zero value, for the failsafe and failback policies).
#[derive(Clone, Debug, Default)]
pub struct Response {
    payload: Bytes,
    form: Form,
    /// Given by the consumer in place of a provider's answer.
    degraded: bool,
}

#[derive(Clone, Debug, Default)]
enum Form {
    /// Encoded with the call's serialization.
    #[default]
    Native,
    /// JSON, whatever the call's serialization.
    Json,
    /// No payload: the zero value of the return type, standing in for `error`.
    Zero(Box<RpcError>),
}

impl Response {
    /// A response carrying `payload`, encoded with the call's serialization.
    pub fn new(payload: Bytes) -> Self {
        Response {
            payload,
            form: Form::Native,
            degraded: false,
        }
    }

    /// A response carrying `json`, to be decoded as JSON whatever the call's
    /// serialization (a mock's literal value).
    pub fn json(json: Bytes) -> Self {
        Response {
            payload: json,
            form: Form::Json,
            degraded: true,
        }
    }

    /// The zero value of the method's return type (built by the stub, which
    /// knows the type), answered instead of the failure `error` (failsafe,
    /// failback, an empty `return` mock): a success to the caller, marked
    /// degraded. The stub returns `error` after all when the return type has
    /// no zero value, so the failure travels with it.
    pub fn zero_instead_of(error: RpcError) -> Self {
        Response {
            payload: Bytes::new(),
            form: Form::Zero(Box::new(error)),
            degraded: true,
        }
    }

    /// This response, marked as given by the consumer in place of a
    /// provider's answer (a fallback implementation's).
    pub fn into_degraded(mut self) -> Self {
        self.degraded = true;
        self
    }

    /// Whether the consumer gave this response in place of a provider's
    /// answer: a mock's value, a fallback's, or a failsafe or failback zero.
    pub fn is_degraded(&self) -> bool {
        self.degraded
    }

    /// The encoded return value.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The encoded return value, owned.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Whether this response stands for the zero value instead of a reply.
    pub fn is_zero(&self) -> bool {
        matches!(self.form, Form::Zero(_))
    }

    /// Decodes the return value: from the payload with `serialization`, from
    /// JSON for a [`Response::json`], or the zero value for a [`Response::zero_instead_of`].
    pub fn decode<R: DeserializeOwned>(&self, serialization: Serialization) -> Result<R, DecodeFailure> {
        match &self.form {
            Form::Native => serialization
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Reply(e.to_string())),
            Form::Json => Serialization::Json
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Json(e.to_string())),
            Form::Zero(error) => crate::stub::zero::zero_value().map_err(|zero| DecodeFailure::NoZero {
                error: (**error).clone(),
                reason: zero.to_string(),
            }),
        }
    }
}

/// Why [`Response::decode`] failed.
#[derive(Debug)]
pub enum DecodeFailure {
    /// The reply does not decode as the return type.
    Reply(String),
    /// A JSON literal (a mock's) does not decode as the return type.
    Json(String),
    /// The return type has no zero value; `error` is what the zero stood for.
    NoZero {
        /// The failure the zero value would have replaced.
        error: RpcError,
        /// Why the type has no zero value.
        reason: String,
    },
}

/// The provider side of a service, implemented by the generated `XxxServer<T>`.
pub trait ServiceHandler: Send + Sync + 'static {
    /// The service's static description.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Runs `invocation.method()` with the encoded arguments, answering the encoded
    /// return value, or an error with the provider status to send
    /// ([`Status::ServiceNotFound`] for an unknown method, [`Status::BadRequest`]
    /// for undecodable arguments).
    fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>>;
}

impl<H: ServiceHandler + ?Sized> ServiceHandler for std::sync::Arc<H> {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        (**self).descriptor()
    }

    fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        (**self).call(invocation)
    }
}

/// A [`ServiceHandler`] as an [`Invoker`](crate::Invoker): what the
/// provider's layers (filters) wrap, and what a server's
/// [`Exported`](crate::dispatch::Exported) calls. Always ready, with boxed futures.
#[derive(Clone)]
pub struct HandlerService(std::sync::Arc<dyn ServiceHandler>);

impl HandlerService {
    /// The service of `handler`.
    pub fn new(handler: std::sync::Arc<dyn ServiceHandler>) -> Self {
        HandlerService(handler)
    }
}

impl std::fmt::Debug for HandlerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HandlerService")
            .field(&self.0.descriptor().interface)
            .finish()
    }
}

impl tower::Service<Invocation> for HandlerService {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RpcError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        self.0.call(invocation)
    }
}

/// Helpers for generated handlers.
pub mod handler {
    use super::*;

    /// Decodes the argument tuple of `method`.
    ///
    /// With JSON, the arguments are an array, or the bare value of a
    /// one-argument method (what gRPC and Python callers send naturally):
    /// a body that does not decode as the tuple is tried as its only element.
    pub fn decode_args<A: DeserializeOwned>(invocation: &Invocation) -> Result<A, RpcError> {
        let serialization = invocation.serialization();
        let decoded = serialization.decode(invocation.args());
        let decoded = match decoded {
            Err(first) if serialization == Serialization::Json => {
                let mut wrapped = Vec::with_capacity(invocation.args().len() + 2);
                wrapped.push(b'[');
                wrapped.extend_from_slice(invocation.args());
                wrapped.push(b']');
                serialization.decode(&wrapped).map_err(|_| first)
            }
            other => other,
        };
        decoded.map_err(|e| {
            RpcError::remote(Status::BadRequest, format!("cannot decode the arguments: {e}"))
                .with_service(invocation.service())
                .with_method(invocation.method())
        })
    }

    /// Encodes the return value of `method`.
    pub fn encode_reply<R: Serialize>(invocation: &Invocation, reply: &R) -> Result<Response, RpcError> {
        invocation
            .serialization()
            .encode(reply)
            .map(Response::new)
            .map_err(|e| {
                RpcError::remote(Status::BadResponse, format!("cannot encode the return value: {e}"))
                    .with_service(invocation.service())
                    .with_method(invocation.method())
            })
    }

    /// The error for a method the service does not have.
    pub fn unknown_method(descriptor: &ServiceDescriptor, invocation: &Invocation) -> RpcError {
        RpcError::remote(
            Status::ServiceNotFound,
            format!(
                "no method `{}` in {} (methods: {})",
                invocation.method(),
                descriptor.interface,
                descriptor.method_names()
            ),
        )
        .with_service(invocation.service())
        .with_method(invocation.method())
    }
}
