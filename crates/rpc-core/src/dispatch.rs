//! [`Dispatcher`]: routes a decoded [`Invocation`] to the exported service,
//! enforcing its deadline and containing panics. Shared by every protocol.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::error::{RpcError, Status};
use crate::invocation::{Invocation, ServiceKey};
use crate::service::{Response, ServiceHandler};

/// The services exported on a server, by [`ServiceKey`]. Immutable once built,
/// so lookups take no lock.
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

    /// The exported keys.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    /// The exported key equal to `interface`, `version` and `group`, shared
    /// (no allocation): what a server puts in the invocations it decodes.
    pub fn exported_key(&self, interface: &str, version: Option<&str>, group: Option<&str>) -> Option<ServiceKey> {
        let version = version.filter(|s| !s.is_empty());
        let group = group.filter(|s| !s.is_empty());
        self.services
            .keys()
            .find(|k| k.interface() == interface && k.version() == version && k.group() == group)
            .cloned()
    }

    /// The handler for `key`. A version of `*` matches any version (and likewise group).
    pub fn lookup(&self, key: &ServiceKey) -> Result<&Arc<dyn ServiceHandler>, RpcError> {
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

    /// The exported service equal to `interface`, `version` and `group`, with
    /// its key (shared: no allocation): what a server resolves each request
    /// to before [`run`](Dispatcher::run)ning it.
    pub fn exported(
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
    pub async fn dispatch(&self, invocation: Invocation) -> Result<Response, RpcError> {
        let handler = self.lookup(invocation.service())?.clone();
        Self::run(handler, invocation).await
    }

    /// Runs `invocation` on `handler` (found with [`exported`](Dispatcher::exported)
    /// or [`lookup`](Dispatcher::lookup)), as [`dispatch`](Dispatcher::dispatch) does.
    pub async fn run(handler: Arc<dyn ServiceHandler>, invocation: Invocation) -> Result<Response, RpcError> {
        let service = invocation.service().clone();
        let method = invocation.method_name().clone();
        let deadline = invocation.deadline();
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(invocation)));
        let panicked = |payload: Box<dyn std::any::Any + Send>| {
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
            .with_service(&service)
            .with_method(method.to_string())
        };
        let future = match call {
            Ok(future) => AssertUnwindSafe(future).catch_unwind(),
            Err(payload) => return Err(panicked(payload)),
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
                    .with_method(method.to_string()));
                }
            },
            None => future.await,
        };
        outcome.unwrap_or_else(|payload| Err(panicked(payload)))
    }
}
