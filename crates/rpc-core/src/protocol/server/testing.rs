//! Test support for the server and its protocols: a service whose methods
//! show what the server did, and the shared state of a server around it, so a
//! protocol's connection handler can be driven over `tokio::io::duplex`.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{ServerConfig, ServerShared};
use crate::descriptor::{MethodDescriptor, ServiceDescriptor};
use crate::dispatch::Dispatcher;
use crate::error::{RpcError, Status};
use crate::invocation::{Invocation, ServiceKey};
use crate::invoker::BoxFuture;
use crate::response::Response;
use crate::service::ServiceHandler;

/// The test service's interface.
pub(crate) const SERVICE: &str = "test.Echo";
/// The test service's version.
pub(crate) const VERSION: &str = "1.0.0";

static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new(SERVICE).with_version(VERSION).with_methods(&[
    MethodDescriptor::new("echo", "echo"),
    MethodDescriptor::new("peer", "peer"),
    MethodDescriptor::new("wait", "wait"),
]);

/// `echo` answers its arguments as they came; `peer` answers the caller's
/// address as the server saw it (`Option<String>`, in the call's
/// serialization); `wait` answers nothing once [`release`](Self::release) has
/// let it go.
#[derive(Debug, Clone)]
pub(crate) struct TestService {
    gate: Arc<Semaphore>,
}

impl Default for TestService {
    fn default() -> Self {
        TestService {
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl TestService {
    /// Lets `calls` waiting (or future) `wait` calls finish.
    pub(crate) fn release(&self, calls: usize) {
        self.gate.add_permits(calls);
    }
}

impl ServiceHandler for TestService {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &DESCRIPTOR
    }

    fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        let gate = self.gate.clone();
        Box::pin(async move {
            match invocation.method() {
                "echo" => Ok(Response::new(invocation.args().clone())),
                "peer" => {
                    let peer = invocation.remote_address().map(|a| a.to_string());
                    crate::service::handler::encode_reply(&invocation, &peer)
                }
                "wait" => match gate.acquire().await {
                    Ok(permit) => {
                        permit.forget();
                        Ok(Response::new(bytes::Bytes::new()))
                    }
                    Err(_) => Err(RpcError::remote(Status::ServerError, "gate closed")),
                },
                other => Err(RpcError::remote(
                    Status::ServiceNotFound,
                    format!("no method `{other}`"),
                )),
            }
        })
    }
}

/// The shared state of a server exporting a [`TestService`] with `config`,
/// and that service (to release its waiting calls).
pub(crate) fn shared(config: ServerConfig) -> (Arc<ServerShared>, TestService) {
    let service = TestService::default();
    let dispatcher = Dispatcher::new([(
        ServiceKey::new(SERVICE, Some(VERSION), None),
        crate::dispatch::Exported::new(service.clone()),
    )]);
    (Arc::new(ServerShared::new(dispatcher, config)), service)
}
