//! The seams between generated code and the framework.
//!
//! `#[service]` emits, for a trait `Greeter`:
//! * `GreeterServer<T>`, which implements [`ServiceHandler`]: it decodes the
//!   arguments, calls the user's implementation, encodes the return value;
//! * `GreeterClient`, which implements [`ServiceClient`]: a typed stub whose
//!   methods encode the arguments and send an [`Invocation`] through a [`Stub`].
//!
//! Everything between the stub and the handler works on [`Invocation`] and
//! [`Response`] only, as a tower `Service`, so layers can be stacked freely.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::descriptor::{LoadBalancer, MethodConfig, MethodDescriptor, ServiceDescriptor};
use crate::error::{ErrorKind, RpcError, Status};
use crate::hash_key::ArgumentMask;
use crate::invocation::{Invocation, ServiceKey};
use crate::serialization::Serialization;

/// A boxed, `Send` future: what handlers and layers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A successful response: the encoded return value of the method.
///
/// For a method returning `Result<T, E>`, a business error is *inside* the
/// payload: it is a successful call.
///
/// Consumer layers that answer on behalf of a provider say how their answer
/// is to be read: [`Response::json`] (a mock's literal, decoded from JSON
/// whatever the call's serialization) or [`Response::zero`] (the return
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

    /// A response standing for the zero value of the method's return type
    /// (see [`crate::zero`]), given instead of `error`. When the return type
    /// has no zero value the stub returns `error` after all.
    pub fn zero(error: RpcError) -> Self {
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
    /// JSON for a [`Response::json`], or the zero value for a [`Response::zero`].
    pub fn decode<R: DeserializeOwned>(&self, serialization: Serialization) -> Result<R, DecodeFailure> {
        match &self.form {
            Form::Native => serialization
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Reply(e.to_string())),
            Form::Json => Serialization::Json
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Json(e.to_string())),
            Form::Zero(error) => crate::zero::zero_value().map_err(|zero| DecodeFailure::NoZero {
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

/// The type-erased service every consumer layer implements: a tower
/// `Service<Invocation>` whose clones share the service they wrap (an `Arc`,
/// no allocation per clone or call, unlike tower's boxed services).
///
/// It is always ready: each call checks the wrapped service's readiness
/// itself (see [`call_now`]), so callers may `call` it without `poll_ready`.
#[derive(Clone)]
pub struct BoxInvoker(std::sync::Arc<dyn Invoke>);

impl BoxInvoker {
    /// Wraps `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: tower::Service<Invocation, Response = Response, Error = RpcError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        BoxInvoker(std::sync::Arc::new(Erased(service)))
    }

    /// Wraps a service that sends calls from a borrowed invocation, so that
    /// [`invoke_ref`](Self::invoke_ref) clones nothing.
    pub fn from_call_ref<S: CallRef>(service: S) -> Self {
        BoxInvoker(std::sync::Arc::new(ByRef(service)))
    }

    /// Calls the wrapped service with `invocation` now (see [`call_now`]),
    /// without cloning this handle: what [`tower::Service::call`] does, from
    /// a shared reference.
    pub fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.invoke(invocation)
    }

    /// Like [`invoke`](Self::invoke), for a caller that keeps the invocation
    /// (for another attempt): a [`CallRef`] service borrows it, any other
    /// service gets a clone.
    pub fn invoke_ref(&self, invocation: &Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.invoke_ref(invocation)
    }
}

/// A service that sends a call from a borrowed [`Invocation`]: it takes what
/// it needs (say, encodes the request) before returning, so the returned
/// future holds no invocation and a caller keeping the invocation for a
/// retry clones none. The native protocol's channel is one.
pub trait CallRef: Send + Sync + 'static {
    /// Sends `invocation`.
    fn call_ref(&self, invocation: &Invocation) -> BoxFuture<Result<Response, RpcError>>;
}

impl fmt::Debug for BoxInvoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxInvoker")
    }
}

impl tower::Service<Invocation> for BoxInvoker {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RpcError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        self.0.invoke(invocation)
    }
}

/// What [`BoxInvoker`] erases.
trait Invoke: Send + Sync {
    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>>;

    fn invoke_ref(&self, invocation: &Invocation) -> BoxFuture<Result<Response, RpcError>>;
}

struct ByRef<S>(S);

impl<S: CallRef> Invoke for ByRef<S> {
    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.call_ref(&invocation)
    }

    fn invoke_ref(&self, invocation: &Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.call_ref(invocation)
    }
}

struct Erased<S>(S);

impl<S> Invoke for Erased<S>
where
    S: tower::Service<Invocation, Response = Response, Error = RpcError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        match call_now(self.0.clone(), invocation) {
            futures::future::Either::Left(future) => into_box(future),
            futures::future::Either::Right(boxed) => boxed,
        }
    }

    fn invoke_ref(&self, invocation: &Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.invoke(invocation.clone())
    }
}

/// `future` as a [`BoxFuture`], without boxing it again when it is one.
fn into_box<F>(future: F) -> BoxFuture<Result<Response, RpcError>>
where
    F: Future<Output = Result<Response, RpcError>> + Send + 'static,
{
    let mut slot = Some(future);
    if let Some(boxed) = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<BoxFuture<Result<Response, RpcError>>>>()
        .and_then(Option::take)
    {
        return boxed;
    }
    match slot {
        Some(future) => Box::pin(future),
        None => Box::pin(std::future::ready(Err(RpcError::new(
            ErrorKind::Closed,
            "the call's future was already taken",
        )))),
    }
}

/// Default timeout of a call when neither the method nor the reference sets one
/// (Dubbo's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// The untyped core of every generated client: it encodes arguments, builds the
/// [`Invocation`], sends it through the consumer's layer stack and decodes the reply.
#[derive(Clone)]
pub struct Stub {
    service: ServiceKey,
    serialization: Serialization,
    defaults: MethodConfig,
    method_overrides: std::sync::Arc<std::collections::HashMap<String, MethodConfig>>,
    /// What a call's future keeps: one reference count per call.
    shared: std::sync::Arc<StubShared>,
    /// Picks each call's serialization from the preferred one (what the providers read).
    choose: Option<SerializationChoice>,
}

/// The part of a [`Stub`] that its calls' futures hold.
struct StubShared {
    service: ServiceKey,
    invoker: BoxInvoker,
    degraded: std::sync::atomic::AtomicU64,
}

/// Picks the serialization of a call from the reference's preferred one:
/// what the current providers read (see [`Stub::with_serialization_choice`]).
pub type SerializationChoice = std::sync::Arc<dyn Fn(Serialization) -> Serialization + Send + Sync>;

impl fmt::Debug for Stub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stub")
            .field("service", &self.service)
            .field("serialization", &self.serialization)
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl Stub {
    /// A stub for `service` sending through `invoker`.
    pub fn new(service: ServiceKey, invoker: BoxInvoker) -> Self {
        Stub {
            service: service.clone(),
            serialization: Serialization::default(),
            defaults: MethodConfig::new(),
            method_overrides: Default::default(),
            shared: std::sync::Arc::new(StubShared {
                service: service.clone(),
                invoker,
                degraded: Default::default(),
            }),
            choose: None,
        }
    }

    /// Encodes each call in the serialization `choose` picks from the
    /// preferred one ([`with_serialization`](Self::with_serialization)): the
    /// consumer passes what its providers read, so a provider that does not
    /// speak bincode (one of another language) gets JSON.
    pub fn with_serialization_choice(mut self, choose: SerializationChoice) -> Self {
        self.choose = Some(choose);
        self
    }

    /// How many calls of this reference (all its clones) were answered by the
    /// consumer itself instead of a provider: a mock's or fallback's value, or
    /// a failsafe or failback zero value. Such calls return `Ok` to the caller;
    /// this tells how many of those were not real answers.
    pub fn degraded_answers(&self) -> u64 {
        self.shared.degraded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Encodes arguments and decodes replies with `serialization`.
    pub fn with_serialization(mut self, serialization: Serialization) -> Self {
        self.serialization = serialization;
        self
    }

    /// Reference-level settings, used where a method sets nothing.
    pub fn with_defaults(mut self, defaults: MethodConfig) -> Self {
        self.defaults = defaults;
        self
    }

    /// Consumer-side settings for one method (by wire name), over what the method declares.
    pub fn with_method_config(mut self, method: impl Into<String>, config: MethodConfig) -> Self {
        std::sync::Arc::make_mut(&mut self.method_overrides).insert(method.into(), config);
        self
    }

    /// The target service.
    pub fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// The effective settings of `method`: consumer method override > method
    /// declaration > reference defaults.
    pub fn effective_config(&self, method: &MethodDescriptor) -> MethodConfig {
        let declared = method.config.or(self.defaults);
        match self.method_overrides.get(method.name) {
            Some(over) => over.or(declared),
            None => declared,
        }
    }

    /// Calls `method` with the argument tuple `args`, decoding an `R`.
    ///
    /// Arguments are encoded before this returns, so the future borrows
    /// nothing; but nothing is sent until the future is first polled (the
    /// Rust convention, whatever the cluster policy: the channels of both
    /// protocols send on their future's first poll), so a future dropped
    /// unpolled calls nobody. The call's timeout runs from this call.
    pub fn call<A, R>(
        &self,
        method: &'static MethodDescriptor,
        args: &A,
    ) -> impl Future<Output = Result<R, RpcError>> + Send + 'static + use<A, R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + 'static,
    {
        let config = self.effective_config(method);
        let serialization = match &self.choose {
            Some(choose) => choose(self.serialization),
            None => self.serialization,
        };
        let prepared = encode_args(serialization, args)
            .map_err(|e| {
                RpcError::new(ErrorKind::Encode, format!("cannot encode the arguments: {e}"))
                    .with_service(&self.service)
                    .with_method(method.name)
            })
            .map(|encoded| {
                let mut invocation = Invocation::new(self.service.clone(), method.name, encoded, serialization);
                if config.hash_arguments.is_some() || config.loadbalance == Some(LoadBalancer::ConsistentHash) {
                    let mask = config.hash_arguments.unwrap_or(ArgumentMask::FIRST);
                    invocation.set_hash_key(Some(crate::hash_key::hash_arguments(args, mask)));
                }
                // Without a consumer-side timeout the cluster takes the
                // provider's, or DEFAULT_TIMEOUT, and sets the deadline.
                if let Some(timeout) = config.timeout {
                    invocation.set_deadline(deadline_after(timeout));
                }
                invocation.set_config(config);
                // Handed over now, so the future holds no invocation; the
                // invokers of this framework send nothing before their future
                // is first polled.
                self.shared.invoker.invoke(invocation)
            });
        let shared = self.shared.clone();
        async move {
            let response = prepared?.await?;
            let decoded = response.decode(serialization);
            if decoded.is_ok() && response.is_degraded() {
                shared.degraded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            decoded.map_err(|failure| match failure {
                DecodeFailure::Reply(e) => RpcError::new(ErrorKind::Decode, format!("cannot decode the reply: {e}")),
                DecodeFailure::Json(e) => RpcError::new(
                    ErrorKind::Decode,
                    format!("the mock value does not fit the return type: {e}"),
                ),
                DecodeFailure::NoZero { error, reason } => {
                    tracing::warn!(service = %shared.service, method = method.name, %reason, "no zero value to return instead of the failure");
                    error
                }
            }
            .with_service(&shared.service)
            .with_method(method.name))
        }
    }
}

/// The deadline `timeout` from now; none when it lies beyond what the clock
/// can represent (`Duration::MAX` means "no deadline", not a panic).
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Calls `service` with `invocation` at once when it is ready, which every
/// invoker of this framework always is, or else once it is: either way the
/// returned future does not hold the invocation.
pub fn call_now<S>(
    mut service: S,
    invocation: Invocation,
) -> futures::future::Either<S::Future, BoxFuture<Result<Response, RpcError>>>
where
    S: tower::Service<Invocation, Response = Response, Error = RpcError> + Send + 'static,
    S::Future: Send + 'static,
{
    use futures::future::Either;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match service.poll_ready(&mut cx) {
        std::task::Poll::Ready(Ok(())) => Either::Left(service.call(invocation)),
        std::task::Poll::Ready(Err(error)) => Either::Right(Box::pin(std::future::ready(Err(error)))),
        // Polled again, with the caller's waker, by `oneshot`.
        std::task::Poll::Pending => Either::Right(Box::pin(service.oneshot(invocation))),
    }
}

/// Encodes a method's argument tuple. With JSON, a one-argument method's
/// argument travels bare (`"world"`, not `["world"]`), as gRPC and Dubbo
/// peers of other languages send and expect it; the provider side accepts both.
fn encode_args<A: Serialize + ?Sized>(serialization: Serialization, args: &A) -> Result<Bytes, crate::CodecError> {
    if serialization == Serialization::Json
        && let Ok(serde_json::Value::Array(mut items)) = serde_json::to_value(args)
        && items.len() == 1
        && let Some(only) = items.pop()
    {
        return serialization.encode(&only);
    }
    serialization.encode(args)
}

/// A typed client generated by `#[service]`.
pub trait ServiceClient: Sized + Send + Sync + 'static {
    /// The service's static description.
    const DESCRIPTOR: &'static ServiceDescriptor;

    /// Wraps a stub.
    fn from_stub(stub: Stub) -> Self;

    /// The stub inside.
    fn stub(&self) -> &Stub;
}
