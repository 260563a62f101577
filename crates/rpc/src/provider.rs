//! [`Provider`]: exports services on protocols and registers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpc_cluster::Balancer;
use rpc_core::dispatch::Exported;
use rpc_core::protocol::server::{Server, ServerConfig, ServerHandle};
use rpc_core::url::keys;
use rpc_core::{Dispatcher, IntoInvokerLayer, InvokerLayer, Serialization, ServiceHandler, ServiceKey, Url};
use rpc_registry::Registry;

use crate::Error;

/// Dubbo's default port of its native protocol, used when no protocol is configured.
pub const DEFAULT_RPC_PORT: u16 = 20880;
/// How long graceful shutdown waits for in-flight calls by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long shutdown waits for the registries to drop the provider's URLs by
/// default, before it drains anyway.
const DEFAULT_UNREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// Entry point for providers: `Provider::builder()`.
#[derive(Debug)]
pub struct Provider;

impl Provider {
    /// A builder with no services, protocol `rpc` on port 20880 unless set, no registry.
    pub fn builder() -> ProviderBuilder {
        ProviderBuilder::default()
    }
}

/// One service to export, with its version and group (defaults: those declared on the trait).
pub struct Export {
    handler: Arc<dyn ServiceHandler>,
    version: Option<String>,
    group: Option<String>,
    weight: Option<u32>,
    timeout: Option<Duration>,
    loadbalance: Option<Balancer>,
    warmup: Option<Duration>,
    params: Vec<(String, String)>,
    layers: Vec<InvokerLayer>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("key", &self.key())
            .field("weight", &self.weight)
            .finish()
    }
}

impl Export {
    /// Exports `handler` (a generated `XxxServer`).
    pub fn new(handler: impl ServiceHandler) -> Self {
        Export {
            handler: Arc::new(handler),
            version: None,
            group: None,
            weight: None,
            timeout: None,
            loadbalance: None,
            warmup: None,
            params: Vec::new(),
            layers: Vec::new(),
        }
    }

    /// Publishes `key=value` in the provider's URL, for consumers' routing
    /// rules to read (`region=eu`; `dubbo.tag=gray`, the provider's static tag
    /// for tag routing). Set last, so it can replace what the export publishes.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Wraps every request to this service in `layer` (a provider filter, in
    /// Dubbo's words), inside the provider's layers
    /// ([`ProviderBuilder::layer`], which says where they run).
    pub fn layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.layers.push(InvokerLayer::new(layer));
        self
    }

    /// Exports under `version` instead of the trait's.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Exports in `group` instead of the trait's.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Load-balancing weight published to consumers (default 100).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Default timeout published to consumers (`timeout` in the provider URL);
    /// a consumer's own setting wins over it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Default load balancer published to consumers (`loadbalance` in the
    /// provider URL); a consumer's own setting wins over it.
    pub fn loadbalance(mut self, loadbalance: Balancer) -> Self {
        self.loadbalance = Some(loadbalance);
        self
    }

    /// Warm-up published to consumers (`warmup` in the provider URL, default
    /// ten minutes): for this long after it registers, the provider's weight
    /// ramps up linearly, so a cold process is not flooded. Zero disables it.
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.warmup = Some(warmup);
        self
    }

    fn key(&self) -> ServiceKey {
        let d = self.handler.descriptor();
        ServiceKey::new(
            d.interface,
            self.version.as_deref().or(d.version),
            self.group.as_deref().or(d.group),
        )
    }
}

/// Configures and starts a provider.
#[derive(Debug)]
pub struct ProviderBuilder {
    application: String,
    registries: Vec<String>,
    protocols: Vec<(String, u16)>,
    host: String,
    bind_host: Option<String>,
    exports: Vec<Export>,
    server: ServerConfig,
    shutdown_grace: Duration,
    unregister_timeout: Duration,
    layers: Vec<InvokerLayer>,
    metrics: Option<crate::observe::Metrics>,
    tracing: bool,
}

impl Default for ProviderBuilder {
    fn default() -> Self {
        ProviderBuilder {
            application: "rpc-provider".into(),
            registries: Vec::new(),
            protocols: Vec::new(),
            host: "127.0.0.1".into(),
            bind_host: None,
            exports: Vec::new(),
            server: ServerConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            unregister_timeout: DEFAULT_UNREGISTER_TIMEOUT,
            layers: Vec::new(),
            metrics: None,
            tracing: true,
        }
    }
}

impl ProviderBuilder {
    /// The application name published with every export.
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = name.into();
        self
    }

    /// Registers every export in the registry at `address` (may be called
    /// several times: exports go to every registry). Without one, the provider
    /// serves without registering (consumers use a direct URL).
    pub fn registry(mut self, address: impl Into<String>) -> Self {
        self.registries.push(address.into());
        self
    }

    /// Serves on `protocol` at `port` (0 picks a free port). Supported: `rpc`,
    /// `tri` and `dubbo` (Java Dubbo's protocol, Hessian2); every port speaks
    /// all three, the protocol names the URL registered for it.
    pub fn protocol(mut self, protocol: impl Into<String>, port: u16) -> Self {
        self.protocols.push((protocol.into(), port));
        self
    }

    /// The host consumers should connect to, published in the registry and
    /// also bound unless [`bind_host`](Self::bind_host) says otherwise (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The address to listen on, e.g. `0.0.0.0` (default: the [`host`](Self::host)).
    pub fn bind_host(mut self, host: impl Into<String>) -> Self {
        self.bind_host = Some(host.into());
        self
    }

    /// Settings of the native protocol's servers (payload limit, heartbeat, connection limit).
    pub fn server_config(mut self, config: ServerConfig) -> Self {
        self.server = config;
        self
    }

    /// How long graceful shutdown waits for in-flight calls (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long shutdown waits for the registries to take the provider's URLs
    /// out before it starts draining anyway (default 3 s). Every URL is
    /// unregistered from every registry at once, so an unreachable registry
    /// delays shutdown by this much, not by its own timeout per URL; what it
    /// could not remove goes when its session ends (ZooKeeper's ephemeral nodes).
    pub fn unregister_timeout(mut self, timeout: Duration) -> Self {
        self.unregister_timeout = timeout;
        self
    }

    /// Wraps every request to every exported service in `layer` (a provider
    /// filter, in Dubbo's words): any tower layer over [`Invocation`]s,
    /// tower's `ConcurrencyLimitLayer`, `TimeoutLayer` or `LoadShedLayer`
    /// included. It runs after the request is decoded and matched to its
    /// service, before the service adapter decodes the arguments; it sees the
    /// caller's address and attachments. Layers added first are outermost,
    /// and the provider's run outside each export's own ([`Export::layer`]).
    /// An error without a provider status is answered as one: a local limit
    /// as "overloaded" (the consumer may send the call elsewhere), a timeout
    /// as a server timeout, anything else as a service error.
    pub fn layer(mut self, layer: impl IntoInvokerLayer) -> Self {
        self.layers.push(InvokerLayer::new(layer));
        self
    }

    /// Counts every request to every export in `metrics` (Dubbo's
    /// `dubbo_provider_*`, see [`crate::observe`]), and reports the servers'
    /// connections and requests in flight there. Off by default.
    pub fn metrics(mut self, metrics: &crate::observe::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Serves every request in a `tracing` span `rpc.serve` continuing the
    /// caller's W3C trace context, so calls its handler makes continue it
    /// too (default `true`; see [`crate::observe`]).
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    /// Exports `handler` (a generated `XxxServer`) under the trait's version and group.
    pub fn serve(self, handler: impl ServiceHandler) -> Self {
        self.export(Export::new(handler))
    }

    /// Exports a service with explicit settings.
    pub fn export(mut self, export: Export) -> Self {
        self.exports.push(export);
        self
    }

    /// Starts serving and registers every export. On failure nothing stays
    /// registered or listening.
    pub async fn start(self) -> Result<RunningProvider, Error> {
        if self.exports.is_empty() {
            return Err(Error::Config(
                "the provider exports no service: call `.serve(...)`".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for export in &self.exports {
            if !seen.insert(export.key()) {
                return Err(Error::Config(format!("`{}` is exported twice", export.key())));
            }
        }
        let registries = self
            .registries
            .iter()
            .map(|address| rpc_registry::from_address(address))
            .collect::<Result<Vec<_>, _>>()?;
        // request → observer → provider layers → the export's layers → the service adapter.
        let dispatcher = Dispatcher::new(self.exports.iter().map(|e| {
            let layers: Vec<InvokerLayer> = self.layers.iter().chain(&e.layers).cloned().collect();
            let key = e.key();
            let stats = self.metrics.as_ref().map(|metrics| {
                let methods = e.handler.descriptor().methods.iter().map(|m| m.name);
                metrics.service(crate::observe::Side::Provider, &self.application, &key, methods)
            });
            let exported = Exported::layered(e.handler.clone(), &layers)
                .map_invoker(|invoker| crate::observe::ServeObserver::wrap(invoker, stats, self.tracing));
            (key, exported)
        }));
        let protocols = if self.protocols.is_empty() {
            vec![("rpc".to_string(), DEFAULT_RPC_PORT)]
        } else {
            self.protocols.clone()
        };
        let bind_host = self.bind_host.clone().unwrap_or_else(|| self.host.clone());
        let mut servers = Vec::new();
        for (protocol, port) in &protocols {
            // One server type speaks both protocols on every port (it looks at
            // each connection's first byte); the protocol names the URL scheme
            // consumers use.
            if !matches!(protocol.as_str(), "rpc" | "tri" | "dubbo") {
                shutdown_servers(&servers, Duration::ZERO).await;
                return Err(Error::Config(format!(
                    "unsupported protocol `{protocol}` (supported: rpc, tri, dubbo)"
                )));
            }
            let address = format_address(&bind_host, *port);
            match Server::new(dispatcher.clone(), self.server.clone())
                .bind(address.as_str())
                .await
            {
                Ok(handle) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.watch_server(&self.application, protocol, &handle);
                    }
                    servers.push((protocol.clone(), handle))
                }
                Err(source) => {
                    shutdown_servers(&servers, Duration::ZERO).await;
                    return Err(Error::Bind {
                        protocol: protocol.clone(),
                        address,
                        source,
                    });
                }
            }
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let instance = instance_id(timestamp);
        let mut urls = Vec::new();
        for (protocol, server) in &servers {
            for export in &self.exports {
                urls.push(self.provider_url(protocol, server.local_addr().port(), export, timestamp, &instance));
            }
        }
        let provider = RunningProvider {
            servers,
            registries,
            urls,
            grace: self.shutdown_grace,
            unregister_timeout: self.unregister_timeout,
        };
        for registry in &provider.registries {
            for url in &provider.urls {
                if let Err(e) = registry.register(url).await {
                    provider.shutdown().await;
                    return Err(e.into());
                }
                tracing::info!(%url, registry = %registry.url(), "registered");
            }
        }
        Ok(provider)
    }

    /// Starts, serves until Ctrl-C or SIGTERM, then shuts down gracefully
    /// (see [`RunningProvider::shutdown`]).
    pub async fn run_until_shutdown_signal(self) -> Result<(), Error> {
        let provider = self.start().await?;
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        provider.shutdown().await;
        Ok(())
    }

    fn provider_url(&self, protocol: &str, port: u16, export: &Export, timestamp: u128, instance: &str) -> Url {
        let descriptor = export.handler.descriptor();
        let key = export.key();
        let mut url = Url::new(protocol, self.host.clone(), port)
            .with_path(descriptor.interface)
            .with_param(keys::APPLICATION, self.application.clone())
            .with_param(keys::INTERFACE, descriptor.interface)
            .with_param(keys::METHODS, descriptor.method_names())
            .with_param(keys::SIDE, "provider")
            .with_param(keys::WEIGHT, export.weight.unwrap_or(100).to_string())
            .with_param(keys::TIMESTAMP, timestamp.to_string())
            .with_param(keys::SERIALIZATION, Serialization::default().name())
            // Every serialization this provider reads, preferred first (Dubbo 3.2).
            .with_param(
                keys::PREFER_SERIALIZATION,
                Serialization::ALL.map(Serialization::name).join(","),
            )
            .with_param("pid", std::process::id().to_string())
            // One per running provider: consumers call a provider exporting
            // several protocols once where once is meant (broadcast, forking).
            .with_param(rpc_cluster::INSTANCE, instance)
            // What Dubbo's own providers publish, so its tools show ours alike.
            .with_param("dynamic", "true")
            .with_param("anyhost", "false")
            .with_param("generic", "false")
            .with_param("deprecated", "false");
        if protocol == "dubbo" {
            // What Java's registry directory and `dubbo://` client read: the
            // protocol version (2.0.2: response attachments), the Dubbo
            // release this side behaves as, and Hessian2 as the only serialization.
            url.set_param(keys::SERIALIZATION, Serialization::Hessian2.name());
            url.set_param(keys::PREFER_SERIALIZATION, Serialization::Hessian2.name());
            url.set_param("dubbo", rpc_core::protocol::dubbo::DUBBO_VERSION);
            url.set_param("release", DUBBO_RELEASE);
            url.set_param("side", "provider");
            url.set_param("background", "false");
        }
        if let Some(version) = key.version() {
            url.set_param(keys::VERSION, version);
        }
        if let Some(group) = key.group() {
            url.set_param(keys::GROUP, group);
        }
        if let Some(loadbalance) = export.loadbalance {
            url.set_param(rpc_cluster::config::keys::LOADBALANCE, loadbalance.name());
        }
        if let Some(warmup) = export.warmup {
            url.set_param(rpc_cluster::loadbalance::WARMUP, warmup.as_millis().to_string());
        }
        if let Some(timeout) = export.timeout {
            url.set_param(keys::TIMEOUT, timeout.as_millis().to_string());
        }
        if protocol == "tri" {
            // A Java consumer takes the first serialization it is offered:
            // Hessian2 (in Triple's wrapper form), the one it speaks. Our
            // consumers keep their own preference (bincode), also listed.
            let mut offered = vec![Serialization::Hessian2.name()];
            offered.extend(Serialization::ALL.map(Serialization::name));
            url.set_param(keys::PREFER_SERIALIZATION, offered.join(","));
        }
        for (key, value) in &export.params {
            url.set_param(key.clone(), value.clone());
        }
        url
    }
}

/// The Java Dubbo release whose `dubbo://` behaviour our providers publish
/// (the `release` URL parameter Java consumers read).
const DUBBO_RELEASE: &str = "3.3.6";

/// A new identity for a running provider: unique among the providers of
/// this process, and across processes of a host (process id and start time).
fn instance_id(timestamp: u128) -> String {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::DefaultHasher::new();
    (std::process::id(), timestamp, STARTED.fetch_add(1, Ordering::Relaxed)).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn format_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Shuts every server down at once (so the whole takes one grace period at
/// most); the calls abandoned over all of them.
async fn shutdown_servers(servers: &[(String, ServerHandle)], grace: Duration) -> usize {
    futures::future::join_all(servers.iter().map(|(_, server)| server.shutdown(grace)))
        .await
        .into_iter()
        .sum()
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A started provider.
#[derive(Debug)]
pub struct RunningProvider {
    servers: Vec<(String, ServerHandle)>,
    registries: Vec<Arc<dyn Registry>>,
    urls: Vec<Url>,
    grace: Duration,
    unregister_timeout: Duration,
}

impl RunningProvider {
    /// The provider URLs, one per protocol and export.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// Where `protocol` listens.
    pub fn local_addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.servers
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, s)| s.local_addr())
    }

    /// Open connections, over all protocols.
    pub fn connections(&self) -> usize {
        self.servers.iter().map(|(_, s)| s.connections()).sum()
    }

    /// Open connections on the port of `protocol` (0 when it is not served).
    pub fn connections_on(&self, protocol: &str) -> usize {
        self.servers
            .iter()
            .filter(|(p, _)| p == protocol)
            .map(|(_, s)| s.connections())
            .sum()
    }

    /// Calls being handled, over all protocols.
    pub fn in_flight(&self) -> usize {
        self.servers.iter().map(|(_, s)| s.in_flight()).sum()
    }

    /// Graceful shutdown: unregister every URL from every registry at once,
    /// waiting at most the unregister timeout (default 3 s, see
    /// [`ProviderBuilder::unregister_timeout`]); then shut every server down at
    /// once: close the listeners, tell connected consumers the provider is
    /// going read-only, run the calls still arriving and in flight, and close
    /// each connection once drained, all within one grace period (see
    /// [`ServerHandle::shutdown`]). Returns the calls abandoned when the grace
    /// period ran out.
    pub async fn shutdown(&self) -> usize {
        let unregistrations = self.registries.iter().flat_map(|registry| {
            self.urls.iter().map(move |url| async move {
                if let Err(e) = registry.unregister(url).await {
                    tracing::warn!(%url, registry = %registry.url(), error = %e, "cannot unregister");
                }
            })
        });
        let all = futures::future::join_all(unregistrations);
        if tokio::time::timeout(self.unregister_timeout, all).await.is_err() {
            tracing::warn!(
                timeout_ms = self.unregister_timeout.as_millis() as u64,
                "registries did not confirm every unregistration in time; draining anyway"
            );
        }
        shutdown_servers(&self.servers, self.grace).await
    }
}
