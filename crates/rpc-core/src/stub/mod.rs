//! [`Stub`]: the untyped core of every generated client, and [`ServiceClient`],
//! the trait generated clients implement.
//!
//! A stub does what only typed code can do: it encodes the arguments, hashes
//! them when a balancer keys on them, and decodes the reply (a mock's JSON
//! value, a zero value standing in for a failure). Everything else (settings,
//! deadlines, degradation, filters, which provider) belongs to the
//! [`Invoker`](crate::Invoker) it sends through.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod hash;
pub(crate) mod zero;

pub use hash::ArgumentMask;

use crate::descriptor::{MethodDescriptor, ServiceDescriptor};
use crate::error::{ErrorKind, RpcError};
use crate::invocation::{Invocation, ServiceKey};
use crate::invoker::BoxInvoker;
use crate::response::DecodeFailure;
use crate::serialization::Serialization;

/// The untyped core of every generated client: it encodes arguments, builds the
/// [`Invocation`], sends it through the consumer's stack and decodes the reply.
#[derive(Clone)]
pub struct Stub {
    service: ServiceKey,
    serialization: Serialization,
    /// Methods (by wire name) whose arguments are hashed for the balancer,
    /// with the positions hashed. Few: scanned.
    hashed: Arc<[(Box<str>, ArgumentMask)]>,
    /// What a call's future keeps: one reference count per call.
    shared: Arc<StubShared>,
    /// Picks each call's serialization from the preferred one (what the providers read).
    choose: Option<SerializationChoice>,
    /// Picks a second serialization to also encode a call in, given the
    /// chosen one: for providers that cannot read it (a mixed set).
    alternate: Option<AlternateChoice>,
}

/// The part of a [`Stub`] that its calls' futures hold.
struct StubShared {
    service: ServiceKey,
    invoker: BoxInvoker,
    degraded: AtomicU64,
}

/// Picks the serialization of a call from the reference's preferred one:
/// what the current providers read (see [`Stub::with_serialization_choice`]).
pub type SerializationChoice = Arc<dyn Fn(Serialization) -> Serialization + Send + Sync>;

/// Picks, from a call's serialization, a second one to also encode it in
/// (see [`Stub::with_alternate_choice`]), or none.
pub type AlternateChoice = Arc<dyn Fn(Serialization) -> Option<Serialization> + Send + Sync>;

impl fmt::Debug for Stub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stub")
            .field("service", &self.service)
            .field("serialization", &self.serialization)
            .finish_non_exhaustive()
    }
}

impl Stub {
    /// A stub for `service` sending through `invoker`.
    pub fn new(service: ServiceKey, invoker: BoxInvoker) -> Self {
        Stub {
            service: service.clone(),
            serialization: Serialization::default(),
            hashed: Arc::new([]),
            shared: Arc::new(StubShared {
                service,
                invoker,
                degraded: AtomicU64::new(0),
            }),
            choose: None,
            alternate: None,
        }
    }

    /// Also encodes each call's arguments in the serialization `alternate`
    /// picks from the call's, when it picks one: the consumer passes what the
    /// providers that cannot read the call's serialization read (Java's
    /// `dubbo://` providers beside ours), so one reference calls both.
    pub fn with_alternate_choice(mut self, alternate: AlternateChoice) -> Self {
        self.alternate = Some(alternate);
        self
    }

    /// Encodes each call in the serialization `choose` picks from the
    /// preferred one ([`with_serialization`](Self::with_serialization)): the
    /// consumer passes what its providers read, so a provider that does not
    /// speak bincode (one of another language) gets JSON.
    pub fn with_serialization_choice(mut self, choose: SerializationChoice) -> Self {
        self.choose = Some(choose);
        self
    }

    /// Encodes arguments and decodes replies with `serialization`.
    pub fn with_serialization(mut self, serialization: Serialization) -> Self {
        self.serialization = serialization;
        self
    }

    /// Hashes the arguments at `positions` of every call of `method` (by wire
    /// name) into the invocation's [`hash_key`](Invocation::hash_key), for a
    /// balancer that keys on them (consistent hashing).
    pub fn with_argument_hashing(mut self, method: &str, positions: ArgumentMask) -> Self {
        let mut hashed: Vec<_> = self.hashed.iter().filter(|(m, _)| &**m != method).cloned().collect();
        hashed.push((method.into(), positions));
        self.hashed = hashed.into();
        self
    }

    /// How many calls of this reference (all its clones) were answered by the
    /// consumer itself instead of a provider: a mock's or fallback's value, or
    /// a failsafe or failback zero value. Such calls return `Ok` to the caller;
    /// this tells how many of those were not real answers.
    pub fn degraded_answers(&self) -> u64 {
        self.shared.degraded.load(Ordering::Relaxed)
    }

    /// The target service.
    pub fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// The invoker calls go through.
    pub fn invoker(&self) -> &BoxInvoker {
        &self.shared.invoker
    }

    /// Calls `method` with the argument tuple `args`, decoding an `R`.
    ///
    /// Arguments are encoded before this returns, so the future borrows
    /// nothing; nothing is sent until the future is first polled (the Rust
    /// convention), so a future dropped unpolled calls nobody.
    pub fn call<A, R>(
        &self,
        method: &'static MethodDescriptor,
        args: &A,
    ) -> impl Future<Output = Result<R, RpcError>> + Send + 'static + use<A, R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + 'static,
    {
        let serialization = match &self.choose {
            Some(choose) => choose(self.serialization),
            None => self.serialization,
        };
        let prepared = encode_args(serialization, args, self.service.interface())
            .map_err(|e| {
                RpcError::new(ErrorKind::Encode, format!("cannot encode the arguments: {e}"))
                    .with_service(&self.service)
                    .with_method(method.name)
            })
            .map(|encoded| {
                let mut invocation = Invocation::new(self.service.clone(), method.name, encoded, serialization);
                invocation.set_java_types(method.java_types);
                if let Some(other) = self.alternate.as_ref().and_then(|alternate| alternate(serialization)) {
                    match encode_args(other, args, self.service.interface()) {
                        Ok(encoded) => invocation.set_alternate(other, encoded),
                        // Only the providers reading `other` are missed.
                        Err(e) => tracing::debug!(service = %self.service, method = method.name, %other, error = %e, "cannot encode the alternate arguments"),
                    }
                }
                if let Some((_, mask)) = self.hashed.iter().find(|(m, _)| &**m == method.name) {
                    invocation.set_hash_key(Some(hash::hash_arguments(args, *mask)));
                }
                // Handed over now, so the call's future holds a future, not
                // the invocation; nothing is sent before it is polled (every
                // invoker's contract), and the call's budget starts now.
                self.shared.invoker.invoke(invocation)
            });
        let shared = self.shared.clone();
        async move {
            let response = prepared?
                .await
                .map_err(|e| e.with_service(&shared.service).with_method(method.name))?;
            decode_reply(&shared, method.name, serialization, &response)
        }
    }

    /// Calls `method` of the service without its types: a generic call
    /// (`$invoke`, see [`crate::generic`]) with `args` as JSON values and
    /// the method's Java `parameter_types` (may be empty: Rust providers
    /// need none, and Java ones need them only for overloaded methods).
    /// The return value comes back as JSON. Written in JSON, or in Hessian2
    /// when the providers read only that (Java's `dubbo://`); with a mixed
    /// provider set, in both.
    pub fn call_generic(
        &self,
        method: &str,
        parameter_types: &[String],
        args: &[serde_json::Value],
    ) -> impl Future<Output = Result<serde_json::Value, RpcError>> + Send + 'static + use<> {
        let (first, second) = self.generic_serializations();
        let encode = |serialization| crate::generic::encode_invoke_args(serialization, method, parameter_types, args);
        let encoded = encode(first);
        let alternate = second.map(|other| (other, encode(other)));
        self.send_generic(
            crate::generic::INVOKE,
            crate::generic::INVOKE_JAVA_TYPES,
            method,
            (first, encoded),
            alternate,
        )
    }

    /// `$echo(value)`: the provider answers `value` without running the
    /// service (a health check of the path to it).
    pub fn echo(
        &self,
        value: &serde_json::Value,
    ) -> impl Future<Output = Result<serde_json::Value, RpcError>> + Send + 'static + use<> {
        let (first, second) = self.generic_serializations();
        let encode = |serialization| encode_args(serialization, &(value,), self.service.interface());
        let encoded = encode(first);
        let alternate = second.map(|other| (other, encode(other)));
        self.send_generic(
            crate::generic::ECHO,
            crate::generic::ECHO_JAVA_TYPES,
            crate::generic::ECHO,
            (first, encoded),
            alternate,
        )
    }

    /// The serializations of a generic call: JSON unless the providers read
    /// only Hessian2, never bincode (the values have no Rust type); and the
    /// alternate one for a mixed provider set.
    fn generic_serializations(&self) -> (Serialization, Option<Serialization>) {
        let untyped = |s: Serialization| {
            if s == Serialization::Hessian2 {
                s
            } else {
                Serialization::Json
            }
        };
        let first = untyped(
            self.choose
                .as_ref()
                .map_or(Serialization::Json, |choose| choose(Serialization::Json)),
        );
        let second = self
            .alternate
            .as_ref()
            .and_then(|alternate| alternate(first))
            .map(untyped)
            .filter(|&other| other != first);
        (first, second)
    }

    /// Sends `wire_method` (`$invoke`, `$echo`) with its arguments encoded,
    /// decoding the reply as JSON; errors name `method`.
    fn send_generic(
        &self,
        wire_method: &'static str,
        java_types: &'static str,
        method: &str,
        (serialization, encoded): (Serialization, Result<Bytes, crate::CodecError>),
        alternate: Option<(Serialization, Result<Bytes, crate::CodecError>)>,
    ) -> impl Future<Output = Result<serde_json::Value, RpcError>> + Send + 'static + use<> {
        let method: Arc<str> = Arc::from(method);
        let prepared = encoded
            .map_err(|e| {
                RpcError::new(ErrorKind::Encode, format!("cannot encode the arguments: {e}"))
                    .with_service(&self.service)
                    .with_method(&*method)
            })
            .map(|encoded| {
                let mut invocation = Invocation::new(self.service.clone(), wire_method, encoded, serialization);
                invocation.set_java_types(java_types);
                invocation.set_attachment(crate::generic::GENERIC_KEY, "true");
                match alternate {
                    Some((other, Ok(encoded))) => invocation.set_alternate(other, encoded),
                    Some((other, Err(e))) => {
                        tracing::debug!(service = %self.service, %method, %other, error = %e, "cannot encode the alternate arguments")
                    }
                    None => {}
                }
                self.shared.invoker.invoke(invocation)
            });
        let shared = self.shared.clone();
        async move {
            let response = prepared?.await.map_err(|e| {
                e.for_generic_method(&method)
                    .with_service(&shared.service)
                    .with_method(&*method)
            })?;
            decode_reply(&shared, &method, serialization, &response)
        }
    }
}

/// The reply of `method` decoded as an `R`, counting degraded answers.
fn decode_reply<R: DeserializeOwned>(
    shared: &StubShared,
    method: &str,
    serialization: Serialization,
    response: &crate::Response,
) -> Result<R, RpcError> {
    let decoded = response.decode(serialization);
    if decoded.is_ok() && response.is_degraded() {
        shared.degraded.fetch_add(1, Ordering::Relaxed);
    }
    decoded.map_err(|failure| {
        match failure {
            DecodeFailure::Reply(e) => RpcError::new(ErrorKind::Decode, format!("cannot decode the reply: {e}")),
            DecodeFailure::Exception(e) => RpcError::remote(crate::Status::ServiceError, e),
            DecodeFailure::Json(e) => RpcError::new(
                ErrorKind::Decode,
                format!("the mock value does not fit the return type: {e}"),
            ),
            DecodeFailure::NoZero { error, reason } => {
                tracing::warn!(service = %shared.service, method, %reason, "no zero value to return instead of the failure");
                error
            }
        }
        .with_service(&shared.service)
        .with_method(method)
    })
}

/// Encodes a method's argument tuple. With JSON, a one-argument method's
/// argument travels bare (`"world"`, not `["world"]`), as gRPC and Dubbo
/// peers of other languages send and expect it; the provider side accepts both.
///
/// With Hessian2 the arguments are consecutive values, structs named in the
/// interface's package.
fn encode_args<A: Serialize + ?Sized>(
    serialization: Serialization,
    args: &A,
    interface: &str,
) -> Result<Bytes, crate::CodecError> {
    if serialization == Serialization::Hessian2 {
        let package = crate::hessian2::package_of(interface);
        return crate::scratch::encode(256, |buf| {
            crate::hessian2::encode_args(args, package, buf).map_err(|e| crate::CodecError::new(serialization, e))
        });
    }
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
