//! [`ClusterInvoker`]: sends each call to one available provider.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use rpc_core::{BoxFuture, ErrorKind, Invocation, Response, RpcError, ServiceKey};
use tower::ServiceExt;

use crate::directory::Directory;

/// Picks a provider round-robin among the available endpoints of a
/// [`Directory`] and sends the call there (one attempt).
///
/// Endpoints whose connection is failing are skipped while others are
/// available; when none is, the next one is tried anyway, so a provider that
/// comes back is found again.
#[derive(Clone)]
pub struct ClusterInvoker {
    directory: Arc<Directory>,
    next: Arc<AtomicUsize>,
}

impl fmt::Debug for ClusterInvoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterInvoker")
            .field("directory", &self.directory)
            .finish()
    }
}

impl ClusterInvoker {
    /// An invoker over `directory`.
    pub fn new(directory: Arc<Directory>) -> Self {
        ClusterInvoker {
            directory,
            next: Arc::default(),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }
}

impl tower::Service<Invocation> for ClusterInvoker {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut invocation: Invocation) -> Self::Future {
        let endpoints = self.directory.endpoints();
        if endpoints.is_empty() {
            let error = RpcError::new(ErrorKind::NoProvider, "no provider matches the reference")
                .with_service(self.directory.key())
                .with_method(invocation.method());
            return Box::pin(async move { Err(error) });
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = endpoints.len();
        let pick = (0..n)
            .map(|i| &endpoints[(start + i) % n])
            .find(|e| e.is_available())
            .unwrap_or(&endpoints[start % n]);
        // A wildcard reference calls the version and group the provider exports.
        let key = invocation.service();
        if (key.version() == Some("*") || key.group() == Some("*"))
            && let Some(provider_key) = pick.url().service_key()
        {
            let resolved = ServiceKey::new(
                key.interface(),
                if key.version() == Some("*") {
                    provider_key.version()
                } else {
                    key.version()
                },
                if key.group() == Some("*") {
                    provider_key.group()
                } else {
                    key.group()
                },
            );
            invocation = rebuild(invocation, resolved);
        }
        let invoker = pick.invoker().clone();
        Box::pin(invoker.oneshot(invocation))
    }
}

fn rebuild(invocation: Invocation, key: ServiceKey) -> Invocation {
    let mut next = Invocation::new(
        key,
        invocation.method(),
        invocation.args().clone(),
        invocation.serialization(),
    );
    next.set_attachments(invocation.attachments().clone());
    next.set_config(*invocation.config());
    next.set_deadline(invocation.deadline());
    next
}
