//! [`GenericClient`]: calls any service by interface and method name with
//! JSON values, without its Rust trait (Dubbo's `GenericService`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rpc_cluster::{Balancer, ClusterPolicy};
use rpc_core::{IntoInvokerLayer, RpcError, Serialization, ServiceDescriptor, Stub};
use serde_json::Value;

use crate::{Consumer, Error, ReferenceBuilder};

/// A client of one service that knows nothing of its types: it calls a
/// method by name with [`serde_json::Value`] arguments and answers the
/// return value as JSON.
///
/// The call is Dubbo's generic form, `$invoke(method, parameterTypes,
/// args)` with the `generic=true` attachment, which every provider of this
/// framework answers on every protocol (and Java Dubbo providers answer
/// over `dubbo://`, in Hessian2, chosen when they are the only providers).
/// It goes through the same stack as a typed reference: discovery, routing
/// rules, balancing, the cluster policy, the consumer's layers.
///
/// A generic call cannot know whether its method is idempotent, so it is
/// **not retried** (`retries = 0`) unless the builder says otherwise.
/// Errors are [`RpcError`]s like any call's: their kind and
/// [`Outcome`](crate::Outcome) say whether the method may have run; an
/// unknown method or arguments of the wrong shape are
/// [`Status::ServiceNotFound`](crate::Status::ServiceNotFound) or
/// [`Status::BadRequest`](crate::Status::BadRequest) from the provider, which
/// did not run the method.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let consumer = rpc::Consumer::builder().registry("rpc://127.0.0.1:20880").build().await?;
/// let greeter = consumer.generic("org.example.Greeter").version("1.0.0").build().await?;
/// let reply = greeter.call("sayHello", vec![serde_json::json!("world")]).await?;
/// assert_eq!(reply, serde_json::json!("Hello, world"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GenericClient {
    stub: Stub,
}

impl GenericClient {
    /// Calls `method` with `args` (one JSON value per parameter), answering
    /// its return value as JSON.
    pub async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, RpcError> {
        self.stub.call_generic(method, &[], &args).await
    }

    /// Calls `method` with `args`, naming the Java `parameter_types`
    /// (`java.lang.String`, ...): what a Java provider needs to tell
    /// overloaded methods apart. Rust providers check only their count.
    pub async fn call_with_types(
        &self,
        method: &str,
        parameter_types: &[String],
        args: Vec<Value>,
    ) -> Result<Value, RpcError> {
        self.stub.call_generic(method, parameter_types, &args).await
    }

    /// `$echo(value)`: a provider answers `value` without running the
    /// service; a health check of the whole path to one provider.
    pub async fn echo(&self, value: &Value) -> Result<Value, RpcError> {
        self.stub.echo(value).await
    }

    /// The service this client calls.
    pub fn service(&self) -> &rpc_core::ServiceKey {
        self.stub.service()
    }
}

/// Configures a [`GenericClient`]: `Consumer::generic("org.example.Greeter")`.
#[derive(Debug)]
pub struct GenericBuilder {
    interface: String,
    reference: ReferenceBuilder<GenericClient>,
}

pub(crate) fn builder(consumer: &Consumer, interface: String) -> GenericBuilder {
    let reference = consumer
        .reference_of(descriptor_of(&interface))
        .retries(0)
        .serialization(Serialization::Json);
    GenericBuilder { interface, reference }
}

/// The descriptor of a service known only by name: no methods (the cluster
/// then applies the reference's settings to every method). One per interface
/// for the life of the process, so that building many clients of the same
/// services does not grow memory.
fn descriptor_of(interface: &str) -> &'static ServiceDescriptor {
    static INTERNED: OnceLock<Mutex<HashMap<String, &'static ServiceDescriptor>>> = OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(descriptor) = interned.get(interface) {
        return descriptor;
    }
    let name: &'static str = Box::leak(interface.to_owned().into_boxed_str());
    let descriptor: &'static ServiceDescriptor = Box::leak(Box::new(ServiceDescriptor::new(name)));
    interned.insert(interface.to_owned(), descriptor);
    descriptor
}

impl GenericBuilder {
    /// Calls only providers of `version` (`*` for any). Default: none.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.reference = self.reference.version(version);
        self
    }

    /// Calls only providers in `group` (`*` for any). Default: none.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.reference = self.reference.group(group);
        self
    }

    /// Timeout of every call, across retries (default: the provider's, else the consumer's).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.reference = self.reference.timeout(timeout);
        self
    }

    /// Extra attempts on another provider after a failure that allows one
    /// (default 0: a generic call knows nothing of the method's idempotence).
    pub fn retries(mut self, retries: u32) -> Self {
        self.reference = self.reference.retries(retries);
        self
    }

    /// The fault-tolerance policy (default failover).
    pub fn cluster(mut self, cluster: ClusterPolicy) -> Self {
        self.reference = self.reference.cluster(cluster);
        self
    }

    /// The load balancer (default: the provider's, else random).
    pub fn loadbalance(mut self, loadbalance: Balancer) -> Self {
        self.reference = self.reference.loadbalance(loadbalance);
        self
    }

    /// Prefers providers of `protocol` (`rpc`, `tri`, `dubbo`; default `rpc`), or none.
    pub fn protocol(mut self, protocol: Option<&str>) -> Self {
        self.reference = self.reference.protocol(protocol);
        self
    }

    /// Whether [`build`](Self::build) fails when no provider is found (default: the consumer's).
    pub fn check(mut self, check: bool) -> Self {
        self.reference = self.reference.check(check);
        self
    }

    /// A layer (filter) around every call of this client.
    pub fn layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.reference = self.reference.layer(layer);
        self
    }

    /// Subscribes to the providers of the interface and builds the client.
    pub async fn build(self) -> Result<GenericClient, Error> {
        let stub = self.reference.build_stub(descriptor_of(&self.interface)).await?;
        Ok(GenericClient { stub })
    }
}
