//! The one call abstraction: a tower [`Service`] from [`Invocation`] to
//! [`Response`], failing with [`RpcError`].
//!
//! Everything between a generated stub and the wire is such a service: the
//! degradation layer, the user's filters, the cluster, each provider's
//! endpoint, the channels of both protocols; on the provider side, the
//! user's filters and the service adapter. [`Invoker`] names the bounds,
//! [`BoxInvoker`] erases the type.
//!
//! Readiness is real: a service may answer `Pending` from `poll_ready`
//! (tower's `ConcurrencyLimit`, `Buffer`) and callers wait for it, so tower's
//! own layers work anywhere in a stack. A caller holding a shared handle uses
//! [`BoxInvoker::invoke`], which waits for readiness of its own clone inside
//! the returned future, tower's `oneshot` pattern.
//!
//! Layers written for tower in general fail with a boxed error; [`from_layer_error`]
//! turns one back into an [`RpcError`], keeping what it says about whether the
//! call ran.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::Service;

use crate::error::{ErrorKind, RpcError};
use crate::invocation::Invocation;
use crate::response::Response;

/// A boxed, `Send` future: what handlers and layers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an invoker's call answers, boxed.
pub type ResponseFuture = BoxFuture<Result<Response, RpcError>>;

/// A boxed error, as tower's generic layers return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A service every layer of this framework can wrap and be wrapped by: a
/// cloneable, shareable tower `Service<Invocation>` answering [`Response`]s
/// and failing with [`RpcError`]s. Implemented for every such service.
///
/// One contract beyond tower's: `call` sends nothing before its future is
/// first polled (it may prepare, say encode, at once). The stub hands each
/// invocation over when the method is called, so the call's budget starts
/// then, and a call future dropped unpolled still calls nobody.
pub trait Invoker:
    Service<Invocation, Response = Response, Error = RpcError, Future: Send + 'static> + Clone + Send + Sync + 'static
{
}

impl<S> Invoker for S where
    S: Service<Invocation, Response = Response, Error = RpcError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// An [`Invoker`] of any type.
///
/// A tower service whose `poll_ready` and `call` are those of the service it
/// wraps; cloning it clones that service (tower's `BoxCloneSyncService`,
/// with this framework's types). [`invoke`](Self::invoke) calls it from a
/// shared reference.
pub struct BoxInvoker(Box<dyn Erased>);

impl BoxInvoker {
    /// Wraps `service`.
    pub fn new<S: Invoker>(service: S) -> Self {
        BoxInvoker(Box::new(service))
    }

    /// Wraps a service that is always ready (its `poll_ready` never answers
    /// `Pending` nor fails) and whose futures are boxed already: the channels,
    /// the cluster, the degradation layer. Its [`invoke`](Self::invoke)
    /// calls a clone at once and returns the service's own future, where
    /// [`new`](Self::new) waits for readiness inside a future of its own.
    /// Which constructor a service may use is part of its documentation; a
    /// service that may not be ready must use `new`.
    pub fn always_ready<S>(service: S) -> Self
    where
        S: Invoker + Service<Invocation, Future = ResponseFuture>,
    {
        BoxInvoker(Box::new(AlwaysReady(service)))
    }

    /// Wraps a service built by a tower layer, whose error may be any error
    /// (tower's `Timeout` and `LoadShed` box theirs): errors become
    /// [`RpcError`]s as [`from_layer_error`] says.
    pub fn from_layer<S>(service: S) -> Self
    where
        S: Service<Invocation, Response = Response, Future: Send + 'static> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
    {
        BoxInvoker::new(MapLayerError(service))
    }

    /// Calls the service once it is ready, from a shared reference: the
    /// returned future clones it, waits for its readiness and calls it (an
    /// [`always_ready`](Self::always_ready) service is called at once; by the
    /// [`Invoker`] contract it sends nothing before the future is polled).
    pub fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.invoke(invocation)
    }
}

impl Clone for BoxInvoker {
    fn clone(&self) -> Self {
        BoxInvoker(self.0.clone_box())
    }
}

impl fmt::Debug for BoxInvoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxInvoker")
    }
}

impl Service<Invocation> for BoxInvoker {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        self.0.call(invocation)
    }
}

/// What [`BoxInvoker`] erases.
trait Erased: Send + Sync + 'static {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>>;

    fn call(&mut self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>>;

    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>>;

    fn clone_box(&self) -> Box<dyn Erased>;
}

impl<S: Invoker> Erased for S {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Service::poll_ready(self, cx)
    }

    fn call(&mut self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        Box::pin(Service::call(self, invocation))
    }

    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        let mut service = self.clone();
        Box::pin(async move {
            poll_fn(|cx| Service::poll_ready(&mut service, cx)).await?;
            Service::call(&mut service, invocation).await
        })
    }

    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }
}

/// A service that promises to be always ready, with boxed futures.
#[derive(Clone)]
struct AlwaysReady<S>(S);

impl<S> Erased for AlwaysReady<S>
where
    S: Invoker + Service<Invocation, Future = ResponseFuture>,
{
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.call(invocation)
    }

    fn invoke(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        self.0.clone().call(invocation)
    }

    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }
}

/// A layer's service, its errors made [`RpcError`]s.
#[derive(Clone)]
struct MapLayerError<S>(S);

impl<S> Service<Invocation> for MapLayerError<S>
where
    S: Service<Invocation, Response = Response, Future: Send + 'static>,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = RpcError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, RpcError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.0.poll_ready(cx).map_err(|e| from_layer_error(e.into()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let future = self.0.call(invocation);
        Box::pin(async move { future.await.map_err(|e| from_layer_error(e.into())) })
    }
}

/// The [`RpcError`] for an error a tower layer returned, with the three
/// outcomes kept:
///
/// * an [`RpcError`] (from the service the layer wraps, or the layer's own) is itself;
/// * tower's `Elapsed` (`TimeoutLayer`) is [`ErrorKind::Timeout`]: the call may have run;
/// * tower's `Overloaded` (`LoadShedLayer`) is [`ErrorKind::LocalLimit`]: it was not sent;
/// * anything else is [`ErrorKind::Layer`], with the error as its source:
///   the call may have run, since nothing says where the layer failed it.
pub fn from_layer_error(error: BoxError) -> RpcError {
    let error = match error.downcast::<RpcError>() {
        Ok(error) => return *error,
        Err(error) => error,
    };
    if error.is::<tower::timeout::error::Elapsed>() {
        return RpcError::new(ErrorKind::Timeout, "a timeout layer gave up waiting for the call");
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return RpcError::new(
            ErrorKind::LocalLimit,
            "a load-shedding layer refused the call: the service below is not ready",
        );
    }
    RpcError::new(ErrorKind::Layer, error.to_string()).with_boxed_source(error)
}

/// A tower layer over [`BoxInvoker`]s, its type erased: what the consumer
/// and provider builders keep of the layers (filters) they are given.
#[derive(Clone)]
pub struct InvokerLayer(std::sync::Arc<dyn Fn(BoxInvoker) -> BoxInvoker + Send + Sync>);

impl InvokerLayer {
    /// Erases `layer`: see [`IntoInvokerLayer`].
    pub fn new(layer: impl IntoInvokerLayer) -> Self {
        layer.into_invoker_layer()
    }

    /// Wraps `inner` in this layer.
    pub fn wrap(&self, inner: BoxInvoker) -> BoxInvoker {
        (self.0)(inner)
    }

    /// Wraps `inner` in `layers`, the first outermost (as tower's `ServiceBuilder`).
    pub fn wrap_all<'a>(
        layers: impl IntoIterator<Item = &'a InvokerLayer, IntoIter: DoubleEndedIterator>,
        inner: BoxInvoker,
    ) -> BoxInvoker {
        layers.into_iter().rev().fold(inner, |inner, layer| layer.wrap(inner))
    }
}

impl fmt::Debug for InvokerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvokerLayer")
    }
}

/// A tower layer the builders take as a filter: any `Layer<BoxInvoker>`
/// whose service takes [`Invocation`]s and answers [`Response`]s, failing
/// with any error (made an [`RpcError`] as [`from_layer_error`] says).
/// Implemented for every such layer; tower's `ConcurrencyLimitLayer`,
/// `TimeoutLayer`, `LoadShedLayer` and `ServiceBuilder` stacks of them are.
pub trait IntoInvokerLayer: Send + Sync + 'static {
    /// The layer, its type erased.
    fn into_invoker_layer(self) -> InvokerLayer;
}

impl<L> IntoInvokerLayer for L
where
    L: tower::Layer<BoxInvoker> + Send + Sync + 'static,
    L::Service: Service<Invocation, Response = Response, Future: Send + 'static> + Clone + Send + Sync + 'static,
    <L::Service as Service<Invocation>>::Error: Into<BoxError>,
{
    fn into_invoker_layer(self) -> InvokerLayer {
        InvokerLayer(std::sync::Arc::new(move |inner| {
            BoxInvoker::from_layer(self.layer(inner))
        }))
    }
}
