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

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::descriptor::ServiceDescriptor;
use crate::error::{RpcError, Status};
use crate::invocation::Invocation;
use crate::invoker::BoxFuture;
use crate::response::Response;
use crate::serialization::Serialization;

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
        if serialization == Serialization::Hessian2 {
            return crate::hessian2::decode_args(invocation.args()).map_err(|e| {
                RpcError::remote(
                    Status::BadRequest,
                    format!("cannot decode the arguments: hessian2: {e}"),
                )
                .with_service(invocation.service())
                .with_method(invocation.method())
            });
        }
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
    ///
    /// With Hessian2 the payload is a `dubbo` reply body: Dubbo's flag, then
    /// the value, or for a `Result`'s `Err(e)` the exception `e` as an object
    /// of its Java class (structs without a dotted serde name take the
    /// interface's package).
    pub fn encode_reply<R: Serialize>(invocation: &Invocation, reply: &R) -> Result<Response, RpcError> {
        let serialization = invocation.serialization();
        let encoded = if serialization == Serialization::Hessian2 {
            let package = crate::hessian2::package_of(invocation.service().interface());
            crate::scratch::encode(256, |buf| {
                crate::hessian2::encode_reply(reply, package, buf).map_err(|e| crate::CodecError::new(serialization, e))
            })
        } else {
            serialization.encode(reply)
        };
        encoded.map(Response::new).map_err(|e| {
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
