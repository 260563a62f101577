//! [`Dispatcher`]: routes a decoded [`Invocation`] to the exported service,
//! enforcing its deadline and containing panics. Shared by every protocol.
//!
//! Each service is an [`Exported`]: its descriptor and the [`BoxInvoker`]
//! requests go to, the generated adapter behind the provider's layers.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use tokio::time::Instant;

use crate::descriptor::ServiceDescriptor;
use crate::error::{ErrorKind, RpcError, Status};
use crate::generic::Plan;
use crate::invocation::{Invocation, MethodName, ServiceKey};
use crate::invoker::BoxFuture;
use crate::invoker::{BoxInvoker, InvokerLayer};
use crate::response::Response;
use crate::service::{HandlerService, ServiceHandler};

/// One service as a server runs it: what it is ([`ServiceDescriptor`]) and
/// the invoker its requests go to.
#[derive(Clone)]
pub struct Exported {
    descriptor: &'static ServiceDescriptor,
    invoker: BoxInvoker,
}

impl fmt::Debug for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Exported").field(&self.descriptor.interface).finish()
    }
}

impl Exported {
    /// `handler` (a generated `XxxServer`), called directly.
    pub fn new(handler: impl ServiceHandler) -> Self {
        Self::layered(Arc::new(handler), &[])
    }

    /// `handler` with its requests going through `layers` first (the first
    /// outermost). Errors the layers make without a provider status get one:
    /// a local limit is [`Status::ServerOverloaded`] (the consumer may send
    /// the call elsewhere), a timeout [`Status::ServerTimeout`], anything
    /// else [`Status::ServiceError`].
    pub fn layered(handler: Arc<dyn ServiceHandler>, layers: &[InvokerLayer]) -> Self {
        let descriptor = handler.descriptor();
        let adapter = BoxInvoker::always_ready(HandlerService::new(handler));
        let invoker = if layers.is_empty() {
            adapter
        } else {
            BoxInvoker::new(WithStatus(InvokerLayer::wrap_all(layers, adapter)))
        };
        Exported { descriptor, invoker }
    }

    /// This service with its requests going through `wrap(its invoker)`,
    /// outside its layers (and outside the status mapping of
    /// [`layered`](Self::layered)): what `wrap` sees failing is what the
    /// consumer is answered, except panics and the deadline, which the
    /// dispatcher answers around it. The provider's guards (which answer with
    /// provider statuses of their own) and its observer (metrics, spans) sit here.
    pub fn map_invoker(mut self, wrap: impl FnOnce(BoxInvoker) -> BoxInvoker) -> Self {
        self.invoker = wrap(self.invoker);
        self
    }

    /// What the service is.
    pub fn descriptor(&self) -> &'static ServiceDescriptor {
        self.descriptor
    }
}

/// Provider layers' errors given a provider status.
#[derive(Clone)]
struct WithStatus(BoxInvoker);

impl tower::Service<Invocation> for WithStatus {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.0.poll_ready(cx).map_err(with_status)
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let service = invocation.service().clone();
        let method = invocation.method_name().clone();
        let running = self.0.call(invocation);
        Box::pin(async move {
            running
                .await
                .map_err(|error| with_status(error).with_service(&service).with_method(method.as_str()))
        })
    }
}

/// `error`, or a remote error with the status a consumer should see for it.
fn with_status(error: RpcError) -> RpcError {
    if error.status().is_some() {
        return error;
    }
    let status = match error.kind() {
        ErrorKind::LocalLimit => Status::ServerOverloaded,
        ErrorKind::Timeout | ErrorKind::Expired => Status::ServerTimeout,
        _ => Status::ServiceError,
    };
    RpcError::remote(status, error.to_string())
}

/// The services exported on a server, by [`ServiceKey`]. Immutable once
/// built: a server's services do not change while it runs.
#[derive(Clone, Default)]
pub struct Dispatcher {
    services: Arc<HashMap<ServiceKey, Exported>>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.services.keys()).finish()
    }
}

impl Dispatcher {
    /// A dispatcher over `services`. A later entry with the same key replaces an earlier one.
    pub fn new(services: impl IntoIterator<Item = (ServiceKey, Exported)>) -> Self {
        Dispatcher {
            services: Arc::new(services.into_iter().collect()),
        }
    }

    /// The handler for `key`. A version of `*` matches any version (and likewise group).
    pub(crate) fn lookup(&self, key: &ServiceKey) -> Result<&Exported, RpcError> {
        if let Some(handler) = self.services.get(key) {
            return Ok(handler);
        }
        let wildcard = |want: Option<&str>, have: Option<&str>| want == Some("*") || want == have;
        if let Some((_, handler)) = self.services.iter().find(|(k, _)| {
            k.interface() == key.interface() && wildcard(key.version(), k.version()) && wildcard(key.group(), k.group())
        }) {
            return Ok(handler);
        }
        let mut same_interface: Vec<String> = self
            .services
            .keys()
            .filter(|k| k.interface() == key.interface())
            .map(ToString::to_string)
            .collect();
        same_interface.sort();
        let message = if same_interface.is_empty() {
            format!("`{key}` is not exported here")
        } else {
            format!(
                "`{key}` is not exported here; this provider exports {} (check version and group)",
                same_interface.join(", ")
            )
        };
        Err(RpcError::remote(Status::ServiceNotFound, message).with_service(key))
    }

    /// The exported service equal to `interface`, `version` and `group` (an
    /// empty version or group is none), with its key: what a server resolves
    /// each request to before [starting](Dispatcher::start_on) it.
    pub(crate) fn exported(
        &self,
        interface: &str,
        version: Option<&str>,
        group: Option<&str>,
    ) -> Option<(&ServiceKey, &Exported)> {
        let version = version.filter(|s| !s.is_empty());
        let group = group.filter(|s| !s.is_empty());
        self.services
            .iter()
            .find(|(k, _)| k.interface() == interface && k.version() == version && k.group() == group)
    }

    /// Runs `invocation`: finds the service, calls it, stops at the deadline
    /// ([`Status::ServerTimeout`]) and turns a panic into [`Status::ServiceError`].
    pub(crate) async fn dispatch(&self, invocation: Invocation) -> Result<Response, RpcError> {
        self.start(invocation).finish().await
    }

    /// Finds the service of `invocation` and hands it the call, as
    /// [`dispatch`](Dispatcher::dispatch) does, without waiting for it.
    pub(crate) fn start(&self, invocation: Invocation) -> Running {
        match self.lookup(invocation.service()) {
            Ok(handler) => Self::start_on(handler, invocation),
            Err(error) => Running::done(&invocation, Err(error)),
        }
    }

    /// Hands `invocation` to `service` (found with [`exported`](Dispatcher::exported)
    /// or [`lookup`](Dispatcher::lookup)) without waiting for it, as
    /// [`start`](Dispatcher::start) does.
    ///
    /// Generic calls (`$invoke`, `$echo`: see [`crate::generic`]) are
    /// answered here, for every protocol: `$echo` at once, `$invoke` by
    /// running the method it names through the service's layers.
    pub(crate) fn start_on(service: &Exported, invocation: Invocation) -> Running {
        match crate::generic::plan(service.descriptor, invocation) {
            Plan::Plain(invocation) => Self::run(service, invocation),
            Plan::Answer(invocation, answer) => Running::done(&invocation, answer),
            Plan::Invoke(invocation, reply) => {
                let target = invocation.clone();
                let mut running = Self::run(service, invocation);
                running.state = match running.state {
                    State::Pending(future) => State::Pending(Box::pin(async move {
                        let response = future.await?;
                        reply.convert(&target, response)
                    })),
                    State::Done(result) => State::Done(result.and_then(|response| reply.convert(&target, response))),
                    State::Taken => State::Taken,
                };
                running
            }
        }
    }

    /// Hands `invocation` to `service`'s invoker.
    fn run(service: &Exported, invocation: Invocation) -> Running {
        let key = invocation.service().clone();
        let method = invocation.method_name().clone();
        let deadline = invocation.deadline();
        let state = match std::panic::catch_unwind(AssertUnwindSafe(|| service.invoker.invoke(invocation))) {
            Ok(future) => State::Pending(future),
            Err(payload) => State::Done(Err(panicked(&key, &method, payload))),
        };
        Running {
            state,
            service: key,
            method,
            deadline,
        }
    }
}

/// A call handed to its service: poll it once where it arrived
/// ([`poll_once`](Running::poll_once)), and [`finish`](Running::finish) it
/// on a task of its own only if it waits. Panics become
/// [`Status::ServiceError`]; `finish` stops at the call's deadline.
pub(crate) struct Running {
    state: State,
    service: ServiceKey,
    method: MethodName,
    deadline: Option<Instant>,
}

enum State {
    Pending(BoxFuture<Result<Response, RpcError>>),
    Done(Result<Response, RpcError>),
    Taken,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("service", &self.service)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Running {
    fn done(invocation: &Invocation, result: Result<Response, RpcError>) -> Running {
        Running {
            state: State::Done(result),
            service: invocation.service().clone(),
            method: invocation.method_name().clone(),
            deadline: invocation.deadline(),
        }
    }

    /// Polls the call once, with a waker that does nothing: its result if it
    /// is done. If not, whatever it waits on holds the no-op waker until
    /// [`finish`](Running::finish) polls it again, which must follow.
    pub(crate) fn poll_once(&mut self) -> Option<Result<Response, RpcError>> {
        if let State::Pending(future) = &mut self.state {
            let mut cx = Context::from_waker(Waker::noop());
            match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => return None,
                Ok(Poll::Ready(result)) => self.state = State::Done(result),
                Err(payload) => self.state = State::Done(Err(panicked(&self.service, &self.method, payload))),
            }
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Done(result) => Some(result),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The rest of the call, until its result or its deadline.
    pub(crate) async fn finish(self) -> Result<Response, RpcError> {
        let Running {
            state,
            service,
            method,
            deadline,
        } = self;
        let future = match state {
            State::Pending(future) => AssertUnwindSafe(future).catch_unwind(),
            State::Done(result) => return result,
            State::Taken => {
                return Err(
                    RpcError::remote(Status::ServerError, "the call's result was already taken")
                        .with_service(&service)
                        .with_method(method.as_str()),
                );
            }
        };
        let outcome = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, future).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(RpcError::remote(
                        Status::ServerTimeout,
                        "the call's deadline passed while the service was running",
                    )
                    .with_service(&service)
                    .with_method(method.as_str()));
                }
            },
            None => future.await,
        };
        outcome.unwrap_or_else(|payload| Err(panicked(&service, &method, payload)))
    }
}

/// The error for a panic of the service implementation, logged.
fn panicked(service: &ServiceKey, method: &MethodName, payload: Box<dyn std::any::Any + Send>) -> RpcError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(%service, %method, panic = %what, "service implementation panicked");
    RpcError::remote(
        Status::ServiceError,
        format!("the service implementation panicked: {what}"),
    )
    .with_service(service)
    .with_method(method.as_str())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::descriptor::ServiceDescriptor;
    use crate::error::ErrorKind;
    use crate::serialization::Serialization;

    static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new("a.B");

    /// Answers its method name after `delay`, or panics for `boom` (at once)
    /// and `later` (when polled).
    struct Scripted {
        delay: Duration,
    }

    impl ServiceHandler for Scripted {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            &DESCRIPTOR
        }

        fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
            if invocation.method() == "boom" {
                panic!("boom at once");
            }
            let delay = self.delay;
            let method = invocation.method().to_string();
            Box::pin(async move {
                if method == "later" {
                    panic!("boom when polled");
                }
                tokio::time::sleep(delay).await;
                Ok(Response::new(Bytes::from(method)))
            })
        }
    }

    fn dispatcher(delay: Duration) -> Dispatcher {
        let exported = Exported::new(Scripted { delay });
        Dispatcher::new([
            (ServiceKey::new("a.B", Some("1.0.0"), Some("g")), exported.clone()),
            (ServiceKey::new("c.D", None, None), exported),
        ])
    }

    fn invocation(interface: &str, version: Option<&str>, group: Option<&str>, method: &'static str) -> Invocation {
        Invocation::new(
            ServiceKey::new(interface, version, group),
            method,
            Bytes::new(),
            Serialization::Json,
        )
    }

    #[tokio::test]
    async fn finds_exact_and_wildcard_keys() {
        let d = dispatcher(Duration::ZERO);
        let exact = d
            .dispatch(invocation("a.B", Some("1.0.0"), Some("g"), "m"))
            .await
            .unwrap();
        assert_eq!(exact.payload().as_ref(), b"m");
        assert!(d.dispatch(invocation("a.B", Some("*"), Some("*"), "m")).await.is_ok());
        assert!(d.dispatch(invocation("c.D", None, None, "m")).await.is_ok());
        let (key, _) = d.exported("a.B", Some("1.0.0"), Some("g")).unwrap();
        assert_eq!(key, &ServiceKey::new("a.B", Some("1.0.0"), Some("g")));
        assert!(d.exported("a.B", Some(""), None).is_none(), "empty means unset");
    }

    #[tokio::test]
    async fn an_unknown_service_names_what_is_exported() {
        let d = dispatcher(Duration::ZERO);
        let wrong_version = d
            .dispatch(invocation("a.B", Some("2.0.0"), Some("g"), "m"))
            .await
            .unwrap_err();
        assert_eq!(wrong_version.status(), Some(Status::ServiceNotFound));
        assert!(
            wrong_version
                .to_string()
                .contains("this provider exports g/a.B:1.0.0 (check version and group)"),
            "{wrong_version}"
        );
        let absent = d.dispatch(invocation("x.Y", None, None, "m")).await.unwrap_err();
        assert!(absent.to_string().contains("`x.Y` is not exported here"), "{absent}");
        assert_eq!(absent.service(), Some("x.Y"));
    }

    #[tokio::test]
    async fn panics_become_service_errors_whenever_they_happen() {
        let d = dispatcher(Duration::ZERO);
        for method in ["boom", "later"] {
            let error = d.dispatch(invocation("c.D", None, None, method)).await.unwrap_err();
            assert_eq!(error.status(), Some(Status::ServiceError), "{method}: {error}");
            assert!(error.to_string().contains("panicked: boom"), "{error}");
            assert_eq!(error.method(), Some(method));
        }
        // Polled once where it arrived, too.
        let mut running = d.start(invocation("c.D", None, None, "later"));
        let result = running.poll_once().unwrap();
        assert_eq!(result.unwrap_err().status(), Some(Status::ServiceError));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_a_server_timeout() {
        let d = dispatcher(Duration::from_secs(10));
        let mut late = invocation("c.D", None, None, "m");
        late.set_deadline(Some(Instant::now() + Duration::from_millis(100)));
        let started = Instant::now();
        let error = d.dispatch(late).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(error.status(), Some(Status::ServerTimeout));
        assert_eq!(error.kind().outcome(), crate::error::Outcome::Unknown);
        assert!(matches!(error.kind(), ErrorKind::Remote(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_call_is_answered_by_one_poll_and_a_waiting_one_by_finish() {
        let quick = dispatcher(Duration::ZERO);
        let mut running = quick.start(invocation("c.D", None, None, "m"));
        assert_eq!(running.poll_once().unwrap().unwrap().payload().as_ref(), b"m");
        let slow = dispatcher(Duration::from_millis(5));
        let mut running = slow.start(invocation("c.D", None, None, "m"));
        assert!(running.poll_once().is_none(), "it waits on its timer");
        assert_eq!(running.finish().await.unwrap().payload().as_ref(), b"m");
    }
}
