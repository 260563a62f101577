//! [`ClusterInvoker`]: the consumer's cluster stack for one reference.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use rpc_core::{BoxFuture, ClusterPolicy, ErrorKind, Invocation, MethodConfig, Response, RpcError};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::Service;

use crate::config::Effective;
use crate::directory::Directory;
use crate::policy::{Broadcast, Failback, FailbackConfig, Failfast, Failover, Failsafe, Forking};
use crate::select::Balancer;

/// The tower `Service<Invocation>` a reference's stub calls (below the
/// [`Mock`](crate::Mock) layer): it settles the call's configuration
/// ([`config::effective`](crate::config::effective)), sets its deadline,
/// applies the `actives` concurrency limit, and runs the call's cluster
/// policy over a [`Balancer`] of the reference's [`Directory`].
#[derive(Clone)]
pub struct ClusterInvoker {
    inner: Arc<Inner>,
}

struct Inner {
    balancer: Balancer,
    failback_config: FailbackConfig,
    failback: OnceLock<Failback<Balancer>>,
    /// Method → its `actives` slots.
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl fmt::Debug for ClusterInvoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterInvoker")
            .field("directory", self.inner.balancer.directory())
            .finish()
    }
}

impl ClusterInvoker {
    /// An invoker over `directory`, with default failback settings.
    pub fn new(directory: Arc<Directory>) -> Self {
        Self::with_failback(directory, FailbackConfig::default())
    }

    /// An invoker over `directory` whose failback policy uses `failback`.
    pub fn with_failback(directory: Arc<Directory>, failback: FailbackConfig) -> Self {
        Self::with_balancer(Balancer::new(directory), failback)
    }

    /// An invoker picking providers with `balancer` (say, one preferring a
    /// protocol), whose failback policy uses `failback`.
    pub fn with_balancer(balancer: Balancer, failback: FailbackConfig) -> Self {
        ClusterInvoker {
            inner: Arc::new(Inner {
                balancer,
                failback_config: failback,
                failback: OnceLock::new(),
                limits: Mutex::default(),
            }),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        self.inner.balancer.directory()
    }

    /// Calls queued for a failback retry.
    pub fn failback_queued(&self) -> usize {
        self.inner.failback.get().map_or(0, Failback::queued)
    }

    fn limit(&self, method: &str, actives: u32) -> Arc<Semaphore> {
        let mut limits = self.inner.limits.lock().unwrap_or_else(PoisonError::into_inner);
        limits
            .entry(method.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(actives as usize)))
            .clone()
    }

    fn policy_call(&self, invocation: Invocation, policy: ClusterPolicy) -> BoxFuture<Result<Response, RpcError>> {
        let balancer = self.inner.balancer.clone();
        match policy {
            ClusterPolicy::Failover => Failover::new(balancer).call_owned(invocation),
            ClusterPolicy::Failfast => Failfast::new(balancer).call(invocation),
            ClusterPolicy::Failsafe => Failsafe::new(balancer).call(invocation),
            ClusterPolicy::Forking => Forking::new(balancer).call(invocation),
            ClusterPolicy::Broadcast => Broadcast::new(balancer).call(invocation),
            ClusterPolicy::Failback => {
                let failback = self
                    .inner
                    .failback
                    .get_or_init(|| Failback::new(balancer, self.inner.failback_config));
                failback.clone().call(invocation)
            }
        }
    }
}

impl Service<Invocation> for ClusterInvoker {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut invocation: Invocation) -> Self::Future {
        // What the provider publishes (parsed once per provider URL), needed
        // only for what the consumer leaves unset.
        let consumer = invocation.config();
        let published = if consumer.timeout.is_some() && consumer.loadbalance.is_some() {
            MethodConfig::default()
        } else {
            let endpoints = self.inner.balancer.directory().endpoints();
            endpoints
                .first()
                .map(|e| e.published(invocation.method()))
                .unwrap_or_default()
        };
        let settings = Effective::of(&invocation.config().or(published));
        if invocation.deadline().is_none() {
            invocation.set_deadline(rpc_core::service::deadline_after(settings.timeout));
        }
        let hash_arguments = invocation.config().hash_arguments;
        invocation.set_config(MethodConfig {
            hash_arguments,
            ..settings.to_config()
        });
        if settings.actives == 0 {
            return self.policy_call(invocation, settings.cluster);
        }
        let slots = self.limit(invocation.method(), settings.actives);
        let this = self.clone();
        Box::pin(async move {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => acquire(&slots, &invocation, settings).await?,
            };
            let result = this.policy_call(invocation, settings.cluster).await;
            drop(permit);
            result
        })
    }
}

/// Waits for an `actives` slot until the call's deadline.
async fn acquire(
    slots: &Arc<Semaphore>,
    invocation: &Invocation,
    settings: Effective,
) -> Result<tokio::sync::OwnedSemaphorePermit, RpcError> {
    let started = Instant::now();
    let deadline = invocation.deadline().unwrap_or(started + settings.timeout);
    let refused = |why: &str| {
        RpcError::new(
            ErrorKind::LocalLimit,
            format!(
                "the actives limit of {} concurrent calls was reached and {why} after waiting {} ms",
                settings.actives,
                started.elapsed().as_millis()
            ),
        )
        .with_service(invocation.service())
        .with_method(invocation.method())
    };
    match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(refused("the limiter closed")),
        Err(_) => Err(refused("no slot freed before the deadline")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use rpc_core::{ErrorKind, MethodConfig, Outcome};

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_for_an_actives_slot_is_refused_unsent_at_its_deadline() {
        let a = Provider::new(1, Behaviour::Answer(Duration::from_secs(1)));
        let invoker = ClusterInvoker::new(directory(&[&a]).await);
        let config = MethodConfig::new().with_actives(1);
        let holder = tokio::spawn(invoker.clone().call(invocation(config, Duration::from_secs(5))));
        tokio::task::yield_now().await;
        assert_eq!(a.calls(), 1, "the first call holds the only slot");
        let started = Instant::now();
        let error = invoker
            .clone()
            .call(invocation(config, Duration::from_millis(100)))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(error.kind(), ErrorKind::LocalLimit, "{error}");
        assert_eq!(error.outcome(), Outcome::NotSent);
        assert!(error.to_string().contains("actives limit of 1"), "{error}");
        assert_eq!(a.calls(), 1, "the refused call was never sent");
        assert!(holder.await.unwrap().is_ok());
    }
}
