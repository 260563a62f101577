//! Cluster fault-tolerance policies: what a call does when a provider fails.
//!
//! A [`Policy`] runs one [`Call`] over the providers a [`Select`] offers
//! (routing plus load balancing). A reference builds one policy object per
//! policy its methods use, once; the call's [`Settings`](crate::Settings)
//! (retries, forks, budget) come with the call. Every policy ends by the
//! call's deadline, across all its attempts. A policy of your own implements
//! [`Policy`] with [`send`] and [`Select`], and is plugged in with
//! `ReferenceBuilder::cluster_with`.
//!
//! | policy | on failure |
//! |---|---|
//! | [`Failover`] (default) | retry on a provider not tried yet, `retries` times (default 2): errors of the not-sent kind always, unknown outcomes only for idempotent methods; other errors return at once |
//! | [`Failfast`] | one attempt; its error |
//! | [`Failsafe`] | one attempt; on failure log a warning and return the zero value of the return type |
//! | [`Failback`] | like failsafe, and queue the call to retry in the background (every 5 s, 3 times, queue of 1,024 by default) |
//! | [`Forking`] | `forks` providers (default 2) at once; first success wins, the others are cancelled; all failed: the last error |
//! | [`Broadcast`] | every provider at once; fails, after all answered, if any failed, naming each failed provider |
//!
//! Business errors (a method's own `Err`) are successful calls to every policy.
//!
//! [`Select`]: crate::Select

mod broadcast;
mod failback;
mod failfast;
mod failover;
mod failsafe;
mod forking;

pub use broadcast::Broadcast;
pub use failback::{Failback, FailbackConfig};
pub use failfast::Failfast;
pub use failover::Failover;
pub use failsafe::Failsafe;
pub use forking::Forking;

use std::fmt;
use std::sync::Arc;

use rpc_core::{BoxFuture, ErrorKind, Invocation, Outcome, Response, RpcError, Status};
use tokio::time::Instant;

use crate::call::Call;
use crate::endpoint::Endpoint;
use crate::select::Select;

/// A fault-tolerance policy: what one call does across providers.
pub trait Policy: Send + Sync + fmt::Debug + 'static {
    /// Runs `call` on the providers `select` offers: pick with
    /// [`Select::select`], send with [`send`] (which passes over providers
    /// that refuse before running anything), decide what a failure means.
    /// The future must end by the call's deadline.
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>>;
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        (**self).call(call, select)
    }
}

/// A policy over its providers: a tower `Service<Call>` (what the policies'
/// unit tests drive).
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct Bound {
    policy: Arc<dyn Policy>,
    select: Arc<dyn Select>,
}

#[cfg(test)]
impl Bound {
    /// `policy` running calls over `select`.
    pub(crate) fn new(policy: Arc<dyn Policy>, select: Arc<dyn Select>) -> Self {
        Bound { policy, select }
    }
}

#[cfg(test)]
impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl tower::Service<Call> for Bound {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RpcError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        self.policy.call(call, &self.select)
    }
}

/// Whether `error` is a provider refusing a call before any handler ran it
/// because it cannot take calls now: unreachable, its connection closed
/// before the request was written, or shutting down.
fn refused_by_provider(error: &RpcError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Connect | ErrorKind::Closed | ErrorKind::Remote(Status::ChannelInactive)
    )
}

/// One attempt of a call: a provider picked by `select` (avoiding the
/// processes in `tried`), and the request sent to it.
///
/// A provider that refuses the call before running it because it cannot take
/// calls (see [`refused_by_provider`]) is passed over for another, while the
/// deadline allows and untried providers remain: such a call reached no
/// handler, so moving it is not a retry in Dubbo's sense, and every policy
/// does it (a rolling restart costs no call even under failfast). The
/// providers that failed are added to `tried`; a successful one is not.
pub async fn send(select: &dyn Select, call: &Call, tried: &mut Vec<Endpoint>) -> Result<Response, RpcError> {
    let invocation = &call.invocation;
    let mut endpoint = select.select(call, tried)?;
    loop {
        let error = match endpoint.call(invocation.clone(), &call.settings).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        tried.push(endpoint);
        if !refused_by_provider(&error) || expired(invocation) {
            return Err(error);
        }
        match select.select(call, tried) {
            Ok(next) if !tried.iter().any(|t| t.same_process(&next)) => {
                tracing::debug!(%error, next = next.address(), "provider refused the call before running it; moving it");
                endpoint = next;
            }
            _ => return Err(error),
        }
    }
}

/// The error of a call that made several attempts, `last` being the one that
/// ended it: when an earlier attempt's outcome was unknown (it may have run),
/// the call's error says so, whatever the later ones said.
pub fn combine(uncertain: Option<RpcError>, last: RpcError, note: impl std::fmt::Display) -> RpcError {
    match uncertain {
        Some(uncertain) if last.outcome() != Outcome::Unknown => {
            uncertain.with_note(format_args!("{note}; last: {last}"))
        }
        _ => last.with_note(note),
    }
}

/// The error for a call whose deadline passed between attempts.
pub fn deadline_passed(invocation: &Invocation, last: Option<RpcError>) -> RpcError {
    match last {
        Some(error)
            if matches!(
                error.kind(),
                ErrorKind::Timeout | ErrorKind::Remote(Status::ServerTimeout)
            ) =>
        {
            error
        }
        Some(error) => error.with_note("and the deadline passed before another attempt"),
        None => RpcError::new(ErrorKind::Expired, "the deadline passed before the call was sent")
            .with_service(invocation.service())
            .with_method(invocation.method()),
    }
}

/// Whether the call's deadline has passed.
pub fn expired(invocation: &Invocation) -> bool {
    invocation.deadline().is_some_and(|d| d <= Instant::now())
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Scripted providers for the policies' unit tests.
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use rpc_core::{BoxInvoker, Invocation, Response, RpcError, Serialization, ServiceKey, Url};

    use crate::config::MethodConfig;

    use super::{Bound, Policy};
    use crate::call::Call;
    use crate::endpoint::Endpoint;
    use crate::select::Select;
    use crate::settings::Settings;

    /// What a scripted provider does with each call.
    #[derive(Clone, Debug)]
    pub(crate) enum Behaviour {
        /// Answers its own port as the payload after `delay`.
        Answer(Duration),
        /// Fails with this error after `delay`.
        Fail(RpcError, Duration),
        /// Never answers.
        Hang,
    }

    /// A scripted provider.
    pub(crate) struct Provider {
        pub(crate) endpoint: Endpoint,
        pub(crate) calls: Arc<AtomicUsize>,
        pub(crate) behaviour: Arc<Mutex<Behaviour>>,
    }

    impl Provider {
        pub(crate) fn new(port: u16, behaviour: Behaviour) -> Provider {
            Self::at(&format!("rpc://127.0.0.1:{port}/a.B"), behaviour)
        }

        /// A scripted provider registered as `url` (it answers its port).
        pub(crate) fn at(url: &str, behaviour: Behaviour) -> Provider {
            let url = Url::parse(url).unwrap();
            let port = url.port();
            let calls = Arc::new(AtomicUsize::new(0));
            let behaviour = Arc::new(Mutex::new(behaviour));
            let (c, b) = (calls.clone(), behaviour.clone());
            let invoker = BoxInvoker::new(tower::service_fn(move |_inv: Invocation| {
                c.fetch_add(1, Ordering::SeqCst);
                let behaviour = b.lock().unwrap().clone();
                async move {
                    match behaviour {
                        Behaviour::Answer(delay) => {
                            tokio::time::sleep(delay).await;
                            Ok(Response::new(Bytes::from(port.to_string())))
                        }
                        Behaviour::Fail(error, delay) => {
                            tokio::time::sleep(delay).await;
                            Err(error)
                        }
                        Behaviour::Hang => std::future::pending().await,
                    }
                }
            }));
            Provider {
                endpoint: Endpoint::new(url, invoker, || true),
                calls,
                behaviour,
            }
        }

        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        pub(crate) fn set(&self, behaviour: Behaviour) {
            *self.behaviour.lock().unwrap() = behaviour;
        }
    }

    /// Picks providers in list order, skipping tried ones (a deterministic balancer).
    pub(crate) struct InOrder {
        key: ServiceKey,
        pub(crate) endpoints: Arc<Vec<Endpoint>>,
    }

    impl InOrder {
        pub(crate) fn new(providers: &[&Provider]) -> InOrder {
            InOrder {
                key: ServiceKey::new("a.B", None, None),
                endpoints: Arc::new(providers.iter().map(|p| p.endpoint.clone()).collect()),
            }
        }
    }

    impl Select for InOrder {
        fn service(&self) -> &ServiceKey {
            &self.key
        }

        fn select(&self, call: &Call, tried: &[Endpoint]) -> Result<Endpoint, RpcError> {
            let invocation = &call.invocation;
            let fresh = self.endpoints.iter().find(|e| !tried.iter().any(|t| t.same_process(e)));
            fresh
                .or(self.endpoints.first())
                .cloned()
                .ok_or_else(|| RpcError::new(rpc_core::ErrorKind::NoProvider, "none").with_method(invocation.method()))
        }

        fn select_all(&self, _call: &Call) -> Result<Arc<Vec<Endpoint>>, RpcError> {
            Ok(self.endpoints.clone())
        }
    }

    /// A call with `config` and a deadline `timeout` from now.
    pub(crate) fn invocation(config: MethodConfig, timeout: Duration) -> Call {
        let mut inv = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::new(),
            Serialization::Json,
        );
        inv.set_deadline(Some(tokio::time::Instant::now() + timeout));
        let settings = Settings::resolve(&config.with_timeout(timeout), &MethodConfig::new(), false);
        Call::new(inv, settings)
    }

    /// `policy` over `select`, as a tower service of calls.
    pub(crate) fn bind(policy: impl Policy, select: impl Select) -> Bound {
        Bound::new(Arc::new(policy), Arc::new(select))
    }

    /// The port a scripted provider answered.
    pub(crate) fn port(response: &Response) -> u16 {
        std::str::from_utf8(response.payload()).unwrap().parse().unwrap()
    }

    /// Errors of each kind.
    pub(crate) fn not_sent() -> RpcError {
        RpcError::remote(rpc_core::Status::ServerOverloaded, "refused")
    }

    /// A provider that cannot take calls (unreachable): passed over under every policy.
    pub(crate) fn unreachable() -> RpcError {
        RpcError::new(rpc_core::ErrorKind::Connect, "connection refused")
    }

    pub(crate) fn unknown() -> RpcError {
        RpcError::new(rpc_core::ErrorKind::ConnectionLost, "reset")
    }

    /// A provider refusing because it is shutting down.
    pub(crate) fn shutting_down() -> RpcError {
        RpcError::remote(rpc_core::Status::ChannelInactive, "shutting down")
    }

    /// A live directory holding exactly the scripted providers' endpoints.
    pub(crate) async fn directory(providers: &[&Provider]) -> Arc<crate::Directory> {
        struct Fixed(Vec<Endpoint>);
        impl crate::Connect for Fixed {
            fn connect(&self, url: &Url) -> Option<Endpoint> {
                self.0.iter().find(|e| e.url() == url).cloned()
            }
        }
        let endpoints: Vec<Endpoint> = providers.iter().map(|p| p.endpoint.clone()).collect();
        let urls: Arc<Vec<Url>> = Arc::new(endpoints.iter().map(|e| e.url().clone()).collect());
        let key = ServiceKey::new("a.B", None, None);
        let source = futures::StreamExt::chain(futures::stream::iter([urls]), futures::stream::pending());
        crate::Directory::new(key, Arc::new(Fixed(endpoints)), vec![Box::pin(source)]).await
    }

    pub(crate) fn remote_bad_request() -> RpcError {
        RpcError::remote(rpc_core::Status::BadRequest, "bad")
    }
}
