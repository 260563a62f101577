//! [`Dispatcher`]: routes a decoded [`Invocation`] to the exported service,
//! enforcing its deadline and containing panics. Shared by every protocol.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use tokio::time::Instant;

use crate::error::{RpcError, Status};
use crate::invocation::{Invocation, MethodName, ServiceKey};
use crate::service::{BoxFuture, Response, ServiceHandler};

/// The services exported on a server, by [`ServiceKey`]. Immutable once
/// built: a server's services do not change while it runs.
#[derive(Clone, Default)]
pub struct Dispatcher {
    services: Arc<HashMap<ServiceKey, Arc<dyn ServiceHandler>>>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.services.keys()).finish()
    }
}

impl Dispatcher {
    /// A dispatcher over `services`. A later entry with the same key replaces an earlier one.
    pub fn new(services: impl IntoIterator<Item = (ServiceKey, Arc<dyn ServiceHandler>)>) -> Self {
        Dispatcher {
            services: Arc::new(services.into_iter().collect()),
        }
    }

    /// The handler for `key`. A version of `*` matches any version (and likewise group).
    pub(crate) fn lookup(&self, key: &ServiceKey) -> Result<&Arc<dyn ServiceHandler>, RpcError> {
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
    ) -> Option<(&ServiceKey, &Arc<dyn ServiceHandler>)> {
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

    /// Hands `invocation` to `handler` (found with [`exported`](Dispatcher::exported)
    /// or [`lookup`](Dispatcher::lookup)) without waiting for it, as
    /// [`start`](Dispatcher::start) does.
    pub(crate) fn start_on(handler: &Arc<dyn ServiceHandler>, invocation: Invocation) -> Running {
        let service = invocation.service().clone();
        let method = invocation.method_name().clone();
        let deadline = invocation.deadline();
        let state = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(invocation))) {
            Ok(future) => State::Pending(future),
            Err(payload) => State::Done(Err(panicked(&service, &method, payload))),
        };
        Running {
            state,
            service,
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
