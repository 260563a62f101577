//! [`Consumer`]: finds providers and builds typed references to them.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rpc_cluster::{
    Balancer, Cluster, ClusterPolicy, Connect, Directory, Endpoint, FailbackConfig, LoadBalance, MethodConfig, Mock,
    MockLayer, Mocks, OutlierConfig, Policy, Probe,
};
use rpc_core::protocol::dubbo::{DubboChannel, WeakDubboChannel};
use rpc_core::protocol::rpc::{RpcChannel, RpcChannelConfig, WeakRpcChannel};
use rpc_core::protocol::tri::{TriChannel, WeakTriChannel};
use rpc_core::url::keys;
use rpc_core::{
    BoxInvoker, ErrorKind, IntoInvokerLayer, InvokerLayer, RpcError, Serialization, ServiceClient, ServiceHandler,
    ServiceKey, Stub, Url,
};
use rpc_registry::Registry;
use tower::Layer;

use crate::Error;

/// Entry point for consumers: `Consumer::builder()`.
#[derive(Clone, Debug)]
pub struct Consumer {
    inner: Arc<ConsumerInner>,
}

#[derive(Debug)]
struct ConsumerInner {
    application: String,
    registries: Vec<Arc<dyn Registry>>,
    /// The name of each of `registries`.
    registry_names: Vec<String>,
    /// The consumer's nodes in the registries, by service: one per service
    /// while any reference to it lives.
    nodes: Mutex<HashMap<ServiceKey, std::sync::Weak<ConsumerNode>>>,
    /// The directory of every reference built, while it lives (QoS `ls`).
    references: Mutex<Vec<std::sync::Weak<Directory>>>,
    connector: Arc<Connector>,
    defaults: MethodConfig,
    check: bool,
    outlier: OutlierConfig,
    layers: Vec<InvokerLayer>,
    attempt_layers: Vec<InvokerLayer>,
    observe: Observe,
}

/// Configures a [`Consumer`].
#[derive(Debug)]
pub struct ConsumerBuilder {
    application: String,
    /// `(name, address)`.
    registries: Vec<(String, String)>,
    defaults: MethodConfig,
    check: bool,
    channel: RpcChannelConfig,
    outlier: OutlierConfig,
    layers: Vec<InvokerLayer>,
    attempt_layers: Vec<InvokerLayer>,
    observe: Observe,
}

/// What the consumer observes of its calls (see [`crate::observe`]).
#[derive(Clone, Debug)]
struct Observe {
    metrics: Option<crate::observe::Metrics>,
    tracing: bool,
}

impl Consumer {
    /// A builder: no registry yet, startup check on, Dubbo's default 1 s timeout.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder {
            application: "rpc-consumer".into(),
            registries: Vec::new(),
            defaults: MethodConfig::new(),
            check: true,
            channel: RpcChannelConfig::default(),
            outlier: OutlierConfig::default(),
            layers: Vec::new(),
            attempt_layers: Vec::new(),
            observe: Observe {
                metrics: None,
                tracing: true,
            },
        }
    }

    /// A reference to the service of the client type `C` (a generated `XxxClient`).
    pub fn reference<C: ServiceClient>(&self) -> ReferenceBuilder<C> {
        self.reference_of(C::DESCRIPTOR)
    }

    /// A generic client of `interface` (see [`GenericClient`](crate::GenericClient)):
    /// calls by method name with JSON values, through the same discovery,
    /// routing, balancing and policies as a typed reference; no retries
    /// unless [`retries`](crate::GenericBuilder::retries) says otherwise.
    pub fn generic(&self, interface: impl Into<String>) -> crate::GenericBuilder {
        crate::generic::builder(self, interface.into())
    }

    /// A reference builder for the service `descriptor` describes.
    pub(crate) fn reference_of<C>(&self, descriptor: &'static rpc_core::ServiceDescriptor) -> ReferenceBuilder<C> {
        ReferenceBuilder {
            consumer: self.clone(),
            version: descriptor.version.map(str::to_string),
            group: descriptor.group.map(str::to_string),
            config: MethodConfig::new(),
            check: self.inner.check,
            serialization: Serialization::default(),
            methods: HashMap::new(),
            mocks: Mocks::new(),
            mock_errors: Vec::new(),
            mock_methods: Vec::new(),
            failback: FailbackConfig::default(),
            protocol: Some("rpc".into()),
            outlier: self.inner.outlier,
            layers: Vec::new(),
            attempt_layers: Vec::new(),
            balancer: None,
            policy: None,
            tag: None,
            force_tag: false,
            registries: None,
            _client: PhantomData,
        }
    }
}

/// One live reference of a [`Consumer`]: the service it calls and how many
/// providers of it the consumer knows now (after routing rules; a provider
/// exporting several protocols counts once per protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReferenceSummary {
    /// The service, as `group/interface:version`.
    pub service: ServiceKey,
    /// Usable provider endpoints known now.
    pub providers: usize,
}

impl Consumer {
    /// The references of this consumer still alive (one per built client,
    /// while it or a clone of it exists), in the order they were built.
    pub fn references(&self) -> Vec<ReferenceSummary> {
        let mut references = self.inner.references.lock().unwrap_or_else(|p| p.into_inner());
        references.retain(|weak| weak.strong_count() > 0);
        references
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|directory| ReferenceSummary {
                service: directory.key().clone(),
                providers: directory.endpoints().len(),
            })
            .collect()
    }
}

impl ConsumerBuilder {
    /// The application name announced in the registry.
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = name.into();
        self
    }

    /// Finds providers in the registry at `address` (may be called several
    /// times: provider sets are merged). `memory://`, or a direct provider list
    /// such as `rpc://127.0.0.1:20880`.
    pub fn registry(mut self, address: impl Into<String>) -> Self {
        self.registries
            .push((crate::provider::DEFAULT_REGISTRY.to_string(), address.into()));
        self
    }

    /// The registry at `address`, named `name`: every reference subscribes to
    /// it unless it names the registries it subscribes to
    /// ([`ReferenceBuilder::registries`]). An unnamed registry
    /// ([`registry`](Self::registry)) is [`DEFAULT_REGISTRY`](crate::DEFAULT_REGISTRY).
    pub fn registry_named(mut self, name: impl Into<String>, address: impl Into<String>) -> Self {
        self.registries.push((name.into(), address.into()));
        self
    }

    /// Default timeout of every call (methods and references may override;
    /// default: the provider's, else 1 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.defaults.timeout = Some(timeout);
        self
    }

    /// Default retries of the failover policy (default 2).
    pub fn retries(mut self, retries: u32) -> Self {
        self.defaults.retries = Some(retries);
        self
    }

    /// Default cluster policy (default failover).
    pub fn cluster(mut self, cluster: ClusterPolicy) -> Self {
        self.defaults.cluster = Some(cluster);
        self
    }

    /// Default load balancer (default: the provider's, else random).
    pub fn loadbalance(mut self, loadbalance: Balancer) -> Self {
        self.defaults.loadbalance = Some(loadbalance);
        self
    }

    /// Defaults for every reference and method, all settings at once (set
    /// fields replace what the other builder methods set).
    pub fn defaults(mut self, config: MethodConfig) -> Self {
        self.defaults = config.or(self.defaults);
        self
    }

    /// Default of the startup check of references (default `true`).
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// Outlier detection of every reference (default on: see
    /// [`OutlierConfig`]); `OutlierConfig::disabled()` turns it off.
    pub fn outlier_detection(mut self, config: OutlierConfig) -> Self {
        self.outlier = config;
        self
    }

    /// Settings of the native protocol's connections.
    pub fn channel_config(mut self, config: RpcChannelConfig) -> Self {
        self.channel = config;
        self
    }

    /// Wraps every call of every reference in `layer` (a filter, in Dubbo's
    /// words): any tower layer over [`Invocation`]s, tower's own
    /// `ConcurrencyLimitLayer`, `TimeoutLayer` or `LoadShedLayer` included.
    /// It runs once per call, below the reference's mock and above its
    /// cluster policy; layers added first are outermost, and the consumer's
    /// run outside each reference's own ([`ReferenceBuilder::layer`]). Its
    /// errors become [`RpcError`]s as [`rpc_core::from_layer_error`] says.
    pub fn layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.layers.push(InvokerLayer::new(layer));
        self
    }

    /// Wraps every attempt of every reference in `layer`: it runs around
    /// each call sent to a provider, after the policy and the balancer chose
    /// it ([`Invocation::provider`] names it), so a failover call passes it
    /// once per attempt. Layers added first are outermost.
    pub fn attempt_layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.attempt_layers.push(InvokerLayer::new(layer));
        self
    }

    /// Counts every call of every reference in `metrics` (Dubbo's
    /// `dubbo_consumer_*`, see [`crate::observe`]), and reports each
    /// reference's providers there. Off by default.
    pub fn metrics(mut self, metrics: &crate::observe::Metrics) -> Self {
        self.observe.metrics = Some(metrics.clone());
        self
    }

    /// Runs every call in a `tracing` span `rpc.call` and sends its W3C trace
    /// context to the provider (default `true`; see [`crate::observe`]).
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.observe.tracing = enabled;
        self
    }

    /// Connects to the registries.
    pub async fn build(self) -> Result<Consumer, Error> {
        if self.registries.is_empty() {
            return Err(Error::Config(
                "the consumer has no registry: call `.registry(...)` (e.g. `memory://` or `rpc://127.0.0.1:20880`)"
                    .into(),
            ));
        }
        let registries = self
            .registries
            .iter()
            .map(|(_, address)| rpc_registry::from_address(address))
            .collect::<Result<Vec<_>, _>>()?;
        let connector = Arc::new(Connector {
            config: self.channel,
            channels: Mutex::default(),
            tri_channels: Mutex::default(),
            dubbo_channels: Mutex::default(),
        });
        if let Some(metrics) = &self.observe.metrics {
            let weak: std::sync::Weak<dyn crate::observe::Reconnects> = Arc::downgrade(&connector) as _;
            metrics.watch_channels(&self.application, weak);
        }
        Ok(Consumer {
            inner: Arc::new(ConsumerInner {
                application: self.application,
                registries,
                registry_names: self.registries.into_iter().map(|(name, _)| name).collect(),
                nodes: Mutex::default(),
                references: Mutex::default(),
                connector,
                defaults: self.defaults,
                check: self.check,
                outlier: self.outlier,
                layers: self.layers,
                attempt_layers: self.attempt_layers,
                observe: self.observe,
            }),
        })
    }
}

/// Configures a reference: a typed client of one service.
#[derive(Debug)]
pub struct ReferenceBuilder<C> {
    consumer: Consumer,
    version: Option<String>,
    group: Option<String>,
    config: MethodConfig,
    check: bool,
    serialization: Serialization,
    methods: HashMap<String, MethodConfig>,
    mocks: Mocks,
    mock_errors: Vec<String>,
    mock_methods: Vec<String>,
    failback: FailbackConfig,
    protocol: Option<String>,
    outlier: OutlierConfig,
    layers: Vec<InvokerLayer>,
    attempt_layers: Vec<InvokerLayer>,
    balancer: Option<Arc<dyn LoadBalance>>,
    policy: Option<Arc<dyn Policy>>,
    tag: Option<String>,
    force_tag: bool,
    registries: Option<Vec<String>>,
    _client: PhantomData<fn() -> C>,
}

impl<C> ReferenceBuilder<C> {
    /// Subscribes only to the registries named (see
    /// [`ConsumerBuilder::registry_named`]); default: every registry of the
    /// consumer. The providers of several are merged into one directory (no
    /// zone preference between them). A name the consumer does not have
    /// fails [`build`](Self::build).
    pub fn registries<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.registries = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Calls only providers of `version` (`*` for any). Default: the trait's.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Calls only providers in `group` (`*` for any). Default: the trait's.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Timeout of every method that declares none: the whole call, across
    /// retries.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Longest one attempt may take before the policy moves on (failover,
    /// forking); unset, an attempt may use the whole timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout = Some(timeout);
        self
    }

    /// Extra attempts of the failover policy (default 2; 0 for none).
    pub fn retries(mut self, retries: u32) -> Self {
        self.config.retries = Some(retries);
        self
    }

    /// The fault-tolerance policy (default failover).
    pub fn cluster(mut self, cluster: ClusterPolicy) -> Self {
        self.config.cluster = Some(cluster);
        self
    }

    /// The load balancer (default: the provider's, else random).
    pub fn loadbalance(mut self, loadbalance: Balancer) -> Self {
        self.config.loadbalance = Some(loadbalance);
        self
    }

    /// Providers called at once by the forking policy (default 2).
    pub fn forks(mut self, forks: u32) -> Self {
        self.config.forks = Some(forks);
        self
    }

    /// Most calls of each method in flight at once; more wait for a slot until
    /// their deadline, then fail with [`ErrorKind::LocalLimit`]. 0: no limit.
    pub fn actives(mut self, actives: u32) -> Self {
        self.config.actives = Some(actives);
        self
    }

    /// Settings for every method of the reference at once (set fields replace
    /// what the other builder methods set).
    pub fn config(mut self, config: MethodConfig) -> Self {
        self.config = config.or(self.config);
        self
    }

    /// Degradation for every method: a Dubbo mock string, `return <json>`
    /// (answer the value when a call fails) or `force:return <json>` (answer
    /// it without calling). See [`Mock`].
    pub fn mock(mut self, mock: &str) -> Self {
        match Mock::parse(mock) {
            Ok(mock) => self.mocks = self.mocks.with_default(mock),
            Err(e) => self.mock_errors.push(e),
        }
        self
    }

    /// Degradation for one method (by wire name), as [`mock`](Self::mock).
    pub fn method_mock(mut self, method: impl Into<String>, mock: &str) -> Self {
        let method = method.into();
        self.mock_methods.push(method.clone());
        match Mock::parse(mock) {
            Ok(mock) => self.mocks = self.mocks.with_method(method, mock),
            Err(e) => self.mock_errors.push(format!("method `{method}`: {e}")),
        }
        self
    }

    /// Degradation by a fallback implementation of the service (e.g.
    /// `GreeterServer::new(CachedGreeter)`), called with the same arguments
    /// when a call fails.
    pub fn fallback(mut self, fallback: impl ServiceHandler) -> Self {
        self.mocks = self.mocks.with_default(Mock::fallback(fallback));
        self
    }

    /// Prefers providers of `protocol` (`rpc`, the default, or `tri`) when a
    /// provider exports several; the others are used when none of those is
    /// usable. `None`: no preference.
    pub fn protocol(mut self, protocol: Option<&str>) -> Self {
        self.protocol = protocol.map(str::to_string);
        self
    }

    /// Retry queue of the failback policy (default every 5 s, 3 times, 1,024 calls).
    pub fn failback(mut self, config: FailbackConfig) -> Self {
        self.failback = config;
        self
    }

    /// Outlier detection of this reference (default: the consumer's, which
    /// is on): a provider that stops answering while the others answer is
    /// taken out of rotation and the calls waiting on it abandoned, so
    /// failover moves the idempotent ones. See [`OutlierConfig`].
    pub fn outlier_detection(mut self, config: OutlierConfig) -> Self {
        self.outlier = config;
        self
    }

    /// With `true`, [`build`](Self::build) fails when no provider exists.
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// Preferred payload serialization (default bincode). Each call uses it
    /// when every provider reads it (as their URLs say), else one they all
    /// read (JSON for providers of other languages, which list none on
    /// `tri`); a provider that reads none of ours is passed over, with a
    /// clear error when no provider is left.
    pub fn serialization(mut self, serialization: Serialization) -> Self {
        self.serialization = serialization;
        self
    }

    /// Settings for one method (by wire name), over what the method declares.
    pub fn method(mut self, name: impl Into<String>, config: MethodConfig) -> Self {
        self.methods.insert(name.into(), config);
        self
    }

    /// Wraps every call of this reference in `layer`, inside the consumer's
    /// layers ([`ConsumerBuilder::layer`], which says where they run).
    pub fn layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.layers.push(InvokerLayer::new(layer));
        self
    }

    /// Wraps every attempt of this reference in `layer`, inside the
    /// consumer's attempt layers ([`ConsumerBuilder::attempt_layer`]).
    pub fn attempt_layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.attempt_layers.push(InvokerLayer::new(layer));
        self
    }

    /// Picks providers with a balancer of your own, for every method whose
    /// declaration or per-method setting names no balancer (those win). It
    /// sees each usable provider as a [`rpc_cluster::Candidate`] and is
    /// built once, with the reference.
    pub fn loadbalance_with(mut self, balancer: impl LoadBalance + 'static) -> Self {
        self.balancer = Some(Arc::new(balancer));
        self
    }

    /// Runs calls with a fault-tolerance policy of your own, for every
    /// method whose declaration or per-method setting names no policy (those
    /// win). See [`rpc_cluster::Policy`].
    pub fn cluster_with(mut self, policy: impl Policy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Tags every call of this reference (tag routing, Dubbo's `dubbo.tag`):
    /// calls go to the providers of that tag, else to untagged ones. A call's
    /// own `dubbo.tag` attachment (set by a call layer) wins.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into()).filter(|t| !t.is_empty());
        self
    }

    /// Forbids falling back to untagged providers when none has the call's
    /// tag (Dubbo's `dubbo.force.tag`): such calls fail, not sent.
    pub fn force_tag(mut self, force: bool) -> Self {
        self.force_tag = force;
        self
    }

    /// The stub of the service `descriptor` describes, subscribed to its providers.
    pub(crate) async fn build_stub(self, descriptor: &'static rpc_core::ServiceDescriptor) -> Result<Stub, Error> {
        let key = ServiceKey::new(descriptor.interface, self.version.as_deref(), self.group.as_deref());
        if let Some(error) = self.mock_errors.first() {
            return Err(Error::Config(format!("`{key}`: {error}")));
        }
        for name in self.methods.keys().chain(&self.mock_methods) {
            if descriptor.method(name).is_none() {
                return Err(Error::Config(format!(
                    "`{key}` has no method `{name}` (methods: {})",
                    descriptor.method_names()
                )));
            }
        }
        let inner = &self.consumer.inner;
        let registries = inner.registries_named(&key, self.registries.as_deref())?;
        let consumer_url = self.consumer_url(&key, descriptor);
        let mut sources = Vec::new();
        for registry in &registries {
            sources.push(registry.subscribe(&consumer_url).await?);
        }
        let mut rule_sources = Vec::with_capacity(registries.len());
        for registry in &registries {
            rule_sources.push(registry.rules(&consumer_url).await?.map(cluster_rules as fn(_) -> _));
        }
        let governed_as = consumer_url.clone();
        let node = inner.consumer_node(&key, consumer_url, &registries);
        let attempt_layers: Vec<InvokerLayer> = inner
            .attempt_layers
            .iter()
            .chain(&self.attempt_layers)
            .cloned()
            .collect();
        let connector: Arc<dyn Connect> = if attempt_layers.is_empty() && !inner.observe.tracing {
            inner.connector.clone()
        } else {
            Arc::new(AttemptLayers {
                connector: inner.connector.clone(),
                layers: attempt_layers,
                traced: inner.observe.tracing,
            })
        };
        let directory = Directory::new(key.clone(), connector, sources).await;
        if let Some(metrics) = &inner.observe.metrics {
            metrics.watch_directory(&inner.application, &directory);
        }
        // Governance rules (override, condition, tag) from the registries.
        directory.govern(governed_as, rule_sources).await;
        // The consumer's node stays while a reference of this service lives.
        directory.keep(node);
        {
            let mut references = inner.references.lock().unwrap_or_else(|p| p.into_inner());
            references.retain(|weak| weak.strong_count() > 0);
            references.push(Arc::downgrade(&directory));
        }
        if self.check && directory.endpoints().is_empty() {
            let registries: Vec<String> = registries.iter().map(|r| r.url().to_string()).collect();
            return Err(Error::NoProvider(
                RpcError::new(
                    ErrorKind::NoProvider,
                    format!("startup check failed: no provider in {}", registries.join(", ")),
                )
                .with_service(&key),
            ));
        }
        rpc_cluster::outlier::spawn(&directory, self.outlier);
        let readable = directory.clone();
        let choose: rpc_core::stub::SerializationChoice =
            Arc::new(move |preferred| readable.serialization_for(preferred));
        let readable = directory.clone();
        let alternate: rpc_core::stub::AlternateChoice = Arc::new(move |chosen| readable.alternate_for(chosen));
        let mut cluster = Cluster::builder(directory)
            .descriptor(descriptor)
            .reference(self.config)
            .consumer(inner.defaults)
            .failback(self.failback);
        for (name, config) in self.methods {
            cluster = cluster.method(name, config);
        }
        if let Some(protocol) = self.protocol {
            cluster = cluster.prefer_protocol(protocol);
        }
        if let Some(balancer) = self.balancer {
            cluster = cluster.loadbalance_with(balancer);
        }
        if let Some(policy) = self.policy {
            cluster = cluster.cluster_with(policy);
        }
        let cluster = cluster.build().map_err(|e| Error::Config(format!("`{key}`: {e}")))?;
        let hashing = cluster.argument_hashing();
        // stub → mock → observer → call layers (the consumer's, then the reference's) → cluster.
        let layered = InvokerLayer::wrap_all(
            inner.layers.iter().chain(&self.layers),
            BoxInvoker::always_ready(cluster),
        );
        // Observed once per call, outside the call layers.
        let stats = inner.observe.metrics.as_ref().map(|metrics| {
            let methods = descriptor.methods.iter().map(|m| m.name);
            metrics.service(crate::observe::Side::Consumer, &inner.application, &key, methods)
        });
        let layered = crate::observe::CallObserver::wrap(layered, stats, inner.observe.tracing);
        let invoker = if self.mocks.is_empty() {
            layered
        } else {
            BoxInvoker::always_ready(MockLayer::new(self.mocks).layer(layered))
        };
        let mut stub = Stub::new(key, invoker)
            .with_serialization(self.serialization)
            .with_serialization_choice(choose)
            .with_alternate_choice(alternate);
        for (method, positions) in hashing {
            stub = stub.with_argument_hashing(&method, positions);
        }
        Ok(stub)
    }

    fn consumer_url(&self, key: &ServiceKey, descriptor: &rpc_core::ServiceDescriptor) -> Url {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut url = Url::new("consumer", "127.0.0.1", 0)
            .with_path(key.interface())
            .with_param(keys::APPLICATION, self.consumer.inner.application.clone())
            .with_param(keys::INTERFACE, key.interface())
            .with_param(keys::METHODS, descriptor.method_names())
            .with_param(keys::SIDE, "consumer")
            .with_param(keys::TIMESTAMP, timestamp.to_string())
            .with_param("pid", std::process::id().to_string());
        if let Some(version) = key.version() {
            url.set_param(keys::VERSION, version);
        }
        if let Some(group) = key.group() {
            url.set_param(keys::GROUP, group);
        }
        if let Some(tag) = &self.tag {
            url.set_param(rpc_cluster::governance::TAG_KEY, tag.clone());
        }
        if self.force_tag {
            url.set_param(rpc_cluster::governance::FORCE_TAG_KEY, "true");
        }
        url
    }
}

impl<C: ServiceClient> ReferenceBuilder<C> {
    /// Subscribes to the providers and builds the client.
    pub async fn build(self) -> Result<C, Error> {
        self.build_stub(C::DESCRIPTOR).await.map(C::from_stub)
    }
}

/// A registry's rule nodes as the cluster reads them.
fn cluster_rules(set: rpc_registry::RuleSet) -> Arc<Vec<rpc_cluster::governance::RuleNode>> {
    Arc::new(
        set.iter()
            .map(|n| rpc_cluster::governance::RuleNode::new(n.path.clone(), n.text.clone()))
            .collect(),
    )
}

impl ConsumerInner {
    /// The registries named `names` (all when `None`), for the reference `key`.
    fn registries_named(&self, key: &ServiceKey, names: Option<&[String]>) -> Result<Vec<Arc<dyn Registry>>, Error> {
        let Some(names) = names else {
            return Ok(self.registries.clone());
        };
        if names.is_empty() {
            return Err(Error::Config(format!(
                "the reference to `{key}` names no registry: name at least one, or none at all for every registry"
            )));
        }
        if let Some(unknown) = names.iter().find(|n| !self.registry_names.contains(n)) {
            let mut have: Vec<&str> = self.registry_names.iter().map(String::as_str).collect();
            have.dedup();
            return Err(Error::Config(format!(
                "the reference to `{key}` names registry `{unknown}`, which the consumer does not have (its registry names: {})",
                have.join(", ")
            )));
        }
        Ok(self
            .registries
            .iter()
            .zip(&self.registry_names)
            .filter(|(_, name)| names.contains(name))
            .map(|(r, _)| r.clone())
            .collect())
    }

    /// The consumer's node for `key` in every registry: the live one when a
    /// reference to the service exists, else registered now in `registries` (in the
    /// background: the node is for operators, as in Dubbo; never waited on).
    fn consumer_node(&self, key: &ServiceKey, url: Url, registries: &[Arc<dyn Registry>]) -> Arc<ConsumerNode> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.retain(|_, node| node.strong_count() > 0);
        if let Some(node) = nodes.get(key).and_then(std::sync::Weak::upgrade) {
            return node;
        }
        for registry in registries {
            let (registry, url) = (registry.clone(), url.clone());
            tokio::spawn(async move {
                if let Err(e) = registry.register(&url).await {
                    tracing::warn!(registry = %registry.url(), error = %e, "cannot register the consumer");
                }
            });
        }
        let node = Arc::new(ConsumerNode {
            registries: registries.to_vec(),
            url,
        });
        nodes.insert(key.clone(), Arc::downgrade(&node));
        node
    }
}

/// A consumer's node in its registries, unregistered when the last reference
/// of its service is dropped.
#[derive(Debug)]
struct ConsumerNode {
    registries: Vec<Arc<dyn Registry>>,
    url: Url,
}

impl Drop for ConsumerNode {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for registry in std::mem::take(&mut self.registries) {
            let url = self.url.clone();
            runtime.spawn(async move {
                if let Err(e) = registry.unregister(&url).await {
                    tracing::debug!(registry = %registry.url(), error = %e, "cannot unregister the consumer");
                }
            });
        }
    }
}

/// Makes endpoints for the protocols this consumer speaks (`rpc`, `tri`),
/// sharing one connection per provider address and protocol across
/// references. Channels are held weakly: when no directory uses a provider
/// any more, its connection closes.
#[derive(Debug)]
struct Connector {
    config: RpcChannelConfig,
    channels: Mutex<HashMap<String, WeakRpcChannel>>,
    tri_channels: Mutex<HashMap<String, WeakTriChannel>>,
    dubbo_channels: Mutex<HashMap<String, WeakDubboChannel>>,
}

impl Connect for Connector {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        let endpoint = match url.protocol() {
            "rpc" => self.rpc_endpoint(url),
            "tri" => self.tri_endpoint(url),
            "dubbo" => self.dubbo_endpoint(url),
            _ => return None,
        };
        // Both channels end every call by its deadline themselves.
        Some(endpoint.with_invoker_enforcing_deadlines())
    }
}

impl crate::observe::Reconnects for Connector {
    fn reconnects(&self) -> Vec<(&'static str, String, u64)> {
        fn live<W, C>(
            protocol: &'static str,
            channels: &Mutex<HashMap<String, W>>,
            upgrade: impl Fn(&W) -> Option<C>,
            count: impl Fn(&C) -> u64,
            out: &mut Vec<(&'static str, String, u64)>,
        ) {
            let channels = channels.lock().unwrap_or_else(|p| p.into_inner());
            for (address, weak) in channels.iter() {
                if let Some(channel) = upgrade(weak) {
                    out.push((protocol, address.clone(), count(&channel)));
                }
            }
        }
        let mut out = Vec::new();
        live(
            "rpc",
            &self.channels,
            WeakRpcChannel::upgrade,
            RpcChannel::reconnects,
            &mut out,
        );
        live(
            "tri",
            &self.tri_channels,
            WeakTriChannel::upgrade,
            TriChannel::reconnects,
            &mut out,
        );
        live(
            "dubbo",
            &self.dubbo_channels,
            WeakDubboChannel::upgrade,
            DubboChannel::reconnects,
            &mut out,
        );
        out
    }
}

impl Connector {
    fn rpc_endpoint(&self, url: &Url) -> Endpoint {
        let channel = shared(
            &self.channels,
            url.address(),
            WeakRpcChannel::upgrade,
            |a| RpcChannel::new(a, self.config.clone()),
            RpcChannel::downgrade,
        );
        let health = channel.clone();
        let probe: Arc<dyn Probe> = Arc::new(NativeProbe(channel.clone()));
        Endpoint::with_health(url.clone(), BoxInvoker::always_ready(channel), move || health.health()).with_probe(probe)
    }

    fn dubbo_endpoint(&self, url: &Url) -> Endpoint {
        let channel = shared(
            &self.dubbo_channels,
            url.address(),
            WeakDubboChannel::upgrade,
            |a| DubboChannel::new(a, self.config.clone()),
            DubboChannel::downgrade,
        );
        let health = channel.clone();
        let probe: Arc<dyn Probe> = Arc::new(DubboProbe(channel.clone()));
        Endpoint::with_health(url.clone(), BoxInvoker::always_ready(channel), move || health.health()).with_probe(probe)
    }

    fn tri_endpoint(&self, url: &Url) -> Endpoint {
        let channel = shared(
            &self.tri_channels,
            url.address(),
            WeakTriChannel::upgrade,
            |a| TriChannel::new(a, self.config.clone()),
            TriChannel::downgrade,
        );
        let health = channel.clone();
        Endpoint::with_health(url.clone(), BoxInvoker::always_ready(channel), move || health.health())
    }
}

/// A reference's attempt layers around the endpoints its directory makes.
/// With tracing, the outermost one notes each attempt on the call's span.
struct AttemptLayers {
    connector: Arc<Connector>,
    layers: Vec<InvokerLayer>,
    traced: bool,
}

impl Connect for AttemptLayers {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        let endpoint = self.connector.connect(url)?;
        Some(endpoint.map_invoker(|channel| {
            let layered = InvokerLayer::wrap_all(&self.layers, channel);
            if self.traced {
                crate::observe::AttemptObserver::wrap(layered)
            } else {
                layered
            }
        }))
    }
}

/// The outlier detector's handle on a native channel: abandon its waiting
/// calls, ping it with a heartbeat.
struct NativeProbe(RpcChannel);

impl Probe for NativeProbe {
    fn abandon_in_flight(&self, reason: &str) -> usize {
        self.0.abandon_in_flight(reason)
    }

    fn ping(&self, timeout: Duration) -> rpc_core::BoxFuture<bool> {
        let channel = self.0.clone();
        Box::pin(async move { channel.ping(timeout).await })
    }
}

/// The outlier detector's handle on a `dubbo` channel, as on a native one.
struct DubboProbe(DubboChannel);

impl Probe for DubboProbe {
    fn abandon_in_flight(&self, reason: &str) -> usize {
        self.0.abandon_in_flight(reason)
    }

    fn ping(&self, timeout: Duration) -> rpc_core::BoxFuture<bool> {
        let channel = self.0.clone();
        Box::pin(async move { channel.ping(timeout).await })
    }
}

/// The live channel to `address` in `channels`, or a new one made by `make`:
/// one connection per address, while someone uses it.
fn shared<C, W>(
    channels: &Mutex<HashMap<String, W>>,
    address: String,
    upgrade: impl Fn(&W) -> Option<C>,
    make: impl FnOnce(String) -> C,
    downgrade: impl Fn(&C) -> W,
) -> C {
    let mut channels = channels.lock().unwrap_or_else(|p| p.into_inner());
    channels.retain(|_, weak| upgrade(weak).is_some());
    if let Some(channel) = channels.get(&address).and_then(&upgrade) {
        return channel;
    }
    let channel = make(address.clone());
    channels.insert(address, downgrade(&channel));
    channel
}
