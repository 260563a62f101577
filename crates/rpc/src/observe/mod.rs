//! Observing calls: Dubbo-named Prometheus [metrics](Metrics), `tracing`
//! spans with W3C trace context ([`TraceContext`]), and a span file for tests
//! ([`TraceFile`]).
//!
//! Both sides observe each call with one layer the builders add themselves:
//!
//! * the consumer's, outermost of the call layers (below the mock), once per
//!   call whatever its attempts: counts it in the [`Metrics`] given to
//!   [`ConsumerBuilder::metrics`](crate::ConsumerBuilder::metrics), and runs it
//!   in a span `rpc.call` (`service`, `method`, `trace_id`, `span_id`,
//!   `parent_id`, `attempts`, `provider` of the last attempt, `outcome`),
//!   sending its context in the `traceparent` attachment; an attempt layer
//!   notes each attempt's number and provider on that span;
//! * the provider's, outermost of the provider layers, once per request:
//!   counts it in the [`Metrics`] given to
//!   [`ProviderBuilder::metrics`](crate::ProviderBuilder::metrics) (a
//!   handler's panic as a business failure, a request stopped by its deadline
//!   as a timeout), and runs it in a span `rpc.serve` continuing the caller's
//!   trace, so calls the handler makes continue it too.
//!
//! With the `otel` cargo feature, [`otel`] exports these spans to an
//! OpenTelemetry collector over OTLP, their ids those sent in `traceparent`.
//!
//! Tracing is on by default and costs a check of the subscriber's interest
//! per call when nobody listens and no trace comes in; `.tracing(false)` on
//! either builder turns it off. Metrics are off until a [`Metrics`] is given.

mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
mod trace;
mod trace_file;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use rpc_core::{BoxFuture, BoxInvoker, Invocation, Response, RpcError};
use tokio::time::Instant;
use tracing::Instrument;

pub use metrics::{
    FailureKind, Metrics, OPENMETRICS_CONTENT_TYPE, OTHER_METHODS, PROMETHEUS_CONTENT_TYPE, RT_BUCKETS_MS, RT_WINDOW,
    Side, UNDECLARED_METHODS,
};
pub use trace::{TRACEPARENT, TRACESTATE, TraceContext};
pub use trace_file::{TRACE_FILE_ENV, TraceFile};

pub(crate) use metrics::{MethodStats, Reconnects, ServiceStats};

/// The `outcome` recorded on a span: `ok`, or the error's kind.
fn outcome(result: &Result<Response, RpcError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// A call's counters until it ends; a call dropped before it ended counts
/// as a timeout when its deadline had passed, a business failure when a
/// panic drops it, else as an unknown failure.
struct Pending {
    stats: Option<Arc<MethodStats>>,
    started: Instant,
    deadline: Option<Instant>,
}

impl Pending {
    /// Counts `invocation` started, at the instant a layer above noted
    /// (the server's arrival time) or now, which it notes for the layers
    /// below (the cluster sets the deadline from it): one clock read per
    /// call, not two.
    fn start(stats: Arc<MethodStats>, invocation: &mut Invocation) -> Self {
        stats.start(invocation.args().len());
        let started = match invocation.started() {
            Some(started) => started,
            None => {
                let now = Instant::now();
                invocation.set_started(Some(now));
                now
            }
        };
        Pending {
            stats: Some(stats),
            started,
            deadline: invocation.deadline(),
        }
    }

    fn finish(mut self, result: Result<&Response, &RpcError>) {
        if let Some(stats) = self.stats.take() {
            match result {
                Ok(response) => stats.finish(self.started, Instant::now(), Ok(response.payload().len())),
                Err(error) => stats.finish_err(self.started, Instant::now(), error),
            }
        }
    }

    fn finish_as(mut self, kind: FailureKind) {
        if let Some(stats) = self.stats.take() {
            stats.finish(self.started, Instant::now(), Err(kind));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(stats) = self.stats.take() {
            let now = Instant::now();
            let kind = if std::thread::panicking() {
                // The handler panicked before it returned a future.
                FailureKind::Business
            } else if self.deadline.is_some_and(|d| now >= d) {
                FailureKind::Timeout
            } else {
                FailureKind::Unknown
            };
            stats.finish(self.started, now, Err(kind));
        }
    }
}

/// What an observer holds, shared by its clones: a boxed invoker is cloned
/// for every call, so cloning one must cost no allocation.
struct Observed {
    inner: BoxInvoker,
    stats: Option<ServiceStats>,
    tracing: bool,
}

/// The consumer's call layer: metrics and the `rpc.call` span.
#[derive(Clone)]
pub(crate) struct CallObserver(Arc<Observed>);

impl CallObserver {
    /// `inner` observed; `inner` itself when there is nothing to observe.
    pub(crate) fn wrap(inner: BoxInvoker, stats: Option<ServiceStats>, tracing: bool) -> BoxInvoker {
        if stats.is_none() && !tracing {
            return inner;
        }
        BoxInvoker::always_ready(CallObserver(Arc::new(Observed { inner, stats, tracing })))
    }
}

impl tower::Service<Invocation> for CallObserver {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        // `invoke` below waits for the inner service's readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut invocation: Invocation) -> Self::Future {
        let observed = &*self.0;
        let stats = observed.stats.as_ref().map(|s| s.get(invocation.method()));
        let traced = if observed.tracing {
            trace::start_call(&mut invocation)
        } else {
            None
        };
        if stats.is_none() && traced.is_none() {
            // Nothing to observe: no subscriber wants the span, no trace came in.
            return observed.inner.invoke(invocation);
        }
        let pending = stats.map(|stats| Pending::start(stats, &mut invocation));
        let running = observed.inner.invoke(invocation);
        Box::pin(async move {
            let result = match traced {
                Some((span, scope)) => {
                    let result = trace::in_call(scope, running).instrument(span.clone()).await;
                    span.record("outcome", outcome(&result));
                    result
                }
                None => running.await,
            };
            if let Some(pending) = pending {
                pending.finish(result.as_ref());
            }
            result
        })
    }
}

/// The consumer's attempt layer: notes each attempt on the call's span.
#[derive(Clone)]
pub(crate) struct AttemptObserver(Arc<BoxInvoker>);

impl AttemptObserver {
    pub(crate) fn wrap(inner: BoxInvoker) -> BoxInvoker {
        BoxInvoker::always_ready(AttemptObserver(Arc::new(inner)))
    }
}

impl tower::Service<Invocation> for AttemptObserver {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        trace::note_attempt(&invocation);
        self.0.invoke(invocation)
    }
}

/// The provider's layer: metrics and the `rpc.serve` span.
#[derive(Clone)]
pub(crate) struct ServeObserver(Arc<Observed>);

impl ServeObserver {
    /// `inner` observed; `inner` itself when there is nothing to observe.
    pub(crate) fn wrap(inner: BoxInvoker, stats: Option<ServiceStats>, tracing: bool) -> BoxInvoker {
        if stats.is_none() && !tracing {
            return inner;
        }
        BoxInvoker::always_ready(ServeObserver(Arc::new(Observed { inner, stats, tracing })))
    }
}

impl tower::Service<Invocation> for ServeObserver {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut invocation: Invocation) -> Self::Future {
        let observed = &*self.0;
        let stats = observed.stats.as_ref().map(|s| s.get(invocation.method()));
        let traced = if observed.tracing {
            trace::start_serve(&invocation)
        } else {
            None
        };
        if stats.is_none() && traced.is_none() {
            return observed.inner.invoke(invocation);
        }
        let pending = stats.map(|stats| Pending::start(stats, &mut invocation));
        let running = observed.inner.invoke(invocation);
        Box::pin(async move {
            // A panic of the handler is a business failure; it goes on up to
            // the dispatcher, which answers it.
            let caught = match traced {
                Some((span, context)) => {
                    let caught = trace::in_request(context, AssertUnwindSafe(running).catch_unwind())
                        .instrument(span.clone())
                        .await;
                    match &caught {
                        Ok(result) => span.record("outcome", outcome(result)),
                        Err(_) => span.record("outcome", "panicked"),
                    };
                    caught
                }
                None => AssertUnwindSafe(running).catch_unwind().await,
            };
            match caught {
                Ok(result) => {
                    if let Some(pending) = pending {
                        pending.finish(result.as_ref());
                    }
                    result
                }
                Err(payload) => {
                    if let Some(pending) = pending {
                        pending.finish_as(FailureKind::Business);
                    }
                    std::panic::resume_unwind(payload)
                }
            }
        })
    }
}
