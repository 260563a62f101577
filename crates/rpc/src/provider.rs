//! [`Provider`]: exports services on protocols and registers them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpc_cluster::Balancer;
use rpc_core::dispatch::Exported;
use rpc_core::protocol::server::{Server, ServerConfig, ServerHandle};
use rpc_core::url::keys;
use rpc_core::{Dispatcher, IntoInvokerLayer, InvokerLayer, Serialization, ServiceHandler, ServiceKey, Url};
use rpc_registry::Registry;

use crate::Error;
use crate::guard::accesslog::AccessLogs;
use crate::guard::{self, Guard, Token};

/// The name of a registry added without one (`registry(address)`).
pub const DEFAULT_REGISTRY: &str = "default";

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
    token: Option<Token>,
    executes: Option<u32>,
    tps: Option<(u64, Option<Duration>)>,
    accesslog: Option<String>,
    registries: Option<Vec<String>>,
    protocols: Option<Vec<String>>,
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
            token: None,
            executes: None,
            tps: None,
            accesslog: None,
            registries: None,
            protocols: None,
        }
    }

    /// Registers only in the registries named (see
    /// [`ProviderBuilder::registry_named`]; an unnamed registry is
    /// [`DEFAULT_REGISTRY`]); default: every registry. A name the provider
    /// does not have fails [`start`](ProviderBuilder::start).
    pub fn registries<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.registries = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Serves (and registers) only on the protocols named (see
    /// [`ProviderBuilder::protocol`]); default: every protocol. A call for it
    /// on another protocol's port is answered "not exported here" (service
    /// not found). A protocol the provider does not serve fails
    /// [`start`](ProviderBuilder::start).
    pub fn protocols<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.protocols = Some(names.into_iter().map(Into::into).collect());
        self
    }

    fn serves(&self, protocol: &str) -> bool {
        self.protocols.as_ref().is_none_or(|p| p.iter().any(|p| p == protocol))
    }

    fn registers_in(&self, registry: &str) -> bool {
        self.registries.as_ref().is_none_or(|r| r.iter().any(|r| r == registry))
    }

    /// Whether the registries and protocols it names exist.
    fn check_names(
        &self,
        registries: &[(String, Arc<dyn Registry>)],
        protocols: &[(String, u16)],
    ) -> Result<(), Error> {
        let key = self.key();
        let check = |what: &str, named: &Option<Vec<String>>, have: Vec<&str>| -> Result<(), Error> {
            let Some(named) = named else { return Ok(()) };
            if named.is_empty() {
                return Err(Error::Config(format!(
                    "`{key}` names no {what}: name at least one, or none at all for every {what}"
                )));
            }
            for name in named {
                if !have.contains(&name.as_str()) {
                    let mut have = have.clone();
                    have.dedup();
                    let have = if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    };
                    return Err(Error::Config(format!(
                        "`{key}` names {what} `{name}`, which the provider does not have (its {what} names: {have})"
                    )));
                }
            }
            Ok(())
        };
        check(
            "registry",
            &self.registries,
            registries.iter().map(|(n, _)| n.as_str()).collect(),
        )?;
        check(
            "protocol",
            &self.protocols,
            protocols.iter().map(|(p, _)| p.as_str()).collect(),
        )
    }

    /// Requires callers to send `token` as their `token` attachment (Dubbo's
    /// `token`): published in the provider URL, so consumers that find the
    /// provider through a registry send it; a call without it (a direct call
    /// that bypassed the registry) or with another is refused with
    /// [`Status::UNAUTHENTICATED`](rpc_core::Status::UNAUTHENTICATED), not
    /// retryable. A direct URL carries it as a parameter,
    /// `rpc://host:port?token=...`. Also `.param("token", "true" | value)`.
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// At most `executes` calls of each method run at once (Dubbo's
    /// `executes`; `.param("{method}.executes", n)` for one method): the
    /// next is refused, not run, with
    /// [`Status::ServerOverloaded`](rpc_core::Status::ServerOverloaded), so a
    /// failover consumer sends it elsewhere. 0: no limit.
    pub fn executes(mut self, executes: u32) -> Self {
        self.executes = Some(executes);
        self
    }

    /// At most `tps` calls of the service per window of `interval` (Dubbo's
    /// `tps` and `tps.interval`; `None`: 60 s); refused like
    /// [`executes`](Self::executes). 0: no limit.
    pub fn tps(mut self, tps: u64, interval: Option<Duration>) -> Self {
        self.tps = Some((tps, interval));
        self
    }

    /// Records every call (Dubbo's `accesslog`): `"true"` as `tracing` events
    /// on target `rpc::accesslog`, any other value as a file to append one
    /// line per call to (caller, service, method, outcome, duration, time),
    /// written in the background; a call never waits for the disk.
    pub fn accesslog(mut self, accesslog: impl Into<String>) -> Self {
        self.accesslog = Some(accesslog.into());
        self
    }

    /// Turns a random token (`Token::Random`, `token=true`) into its value,
    /// once per provider, so every protocol's URL publishes the same.
    fn resolve_token(&mut self) {
        let param = self.params.iter().rposition(|(k, _)| k == guard::keys::TOKEN);
        if let Some(at) = param {
            match Token::from_param(&self.params[at].1) {
                Some(token @ Token::Random) => self.params[at].1 = token.value(),
                Some(Token::Fixed(_)) | None => {}
            }
        } else if let Some(token) = &self.token {
            self.token = Some(Token::Fixed(token.value()));
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
    /// `(name, address)`; unnamed ones are [`DEFAULT_REGISTRY`].
    registries: Vec<(String, String)>,
    protocols: Vec<(String, u16)>,
    host: String,
    bind_host: Option<String>,
    exports: Vec<Export>,
    server: ServerConfig,
    shutdown_grace: Duration,
    unregister_timeout: Duration,
    layers: Vec<InvokerLayer>,
    qos_port: Option<u16>,
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
            qos_port: None,
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
    /// serves without registering (consumers use a direct URL). Its name is
    /// [`DEFAULT_REGISTRY`] (see [`registry_named`](Self::registry_named)).
    pub fn registry(mut self, address: impl Into<String>) -> Self {
        self.registries.push((DEFAULT_REGISTRY.to_string(), address.into()));
        self
    }

    /// The registry at `address`, named `name` (Dubbo's `<dubbo:registry id=...>`):
    /// every export registers in it unless it names the registries it
    /// registers in ([`Export::registries`]). Several registries may share a name.
    pub fn registry_named(mut self, name: impl Into<String>, address: impl Into<String>) -> Self {
        self.registries.push((name.into(), address.into()));
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

    /// Serves the QoS port for this provider on `port` (Dubbo's default is
    /// [`DEFAULT_QOS_PORT`](crate::qos::DEFAULT_QOS_PORT), 22222), on every
    /// interface, with the defaults of [`Qos::builder`](crate::qos::Qos::builder):
    /// `ls`, `online`, `offline` and the probes, foreign callers refused
    /// but for the probes. Opened once the provider is registered; a port
    /// already taken is a warning, not a failed start; with
    /// [`metrics`](Self::metrics), `metrics` and `/metrics` answer them. For
    /// other settings (consumers, a whitelist) start a [`Qos`](crate::qos::Qos) yourself.
    pub fn qos_port(mut self, port: u16) -> Self {
        self.qos_port = Some(port);
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
    pub async fn start(mut self) -> Result<RunningProvider, Error> {
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
        for export in &mut self.exports {
            export.resolve_token();
        }
        let registries = self
            .registries
            .iter()
            .map(|(name, address)| Ok((name.clone(), rpc_registry::from_address(address)?)))
            .collect::<Result<Vec<(String, Arc<dyn Registry>)>, Error>>()?;
        let protocols = if self.protocols.is_empty() {
            vec![("rpc".to_string(), DEFAULT_RPC_PORT)]
        } else {
            self.protocols.clone()
        };
        for export in &self.exports {
            export.check_names(&registries, &protocols)?;
        }
        // The guards read the export's URL (its parameters; the port comes later).
        let logs = AccessLogs::default();
        let guards: Vec<Arc<Guard>> = self
            .exports
            .iter()
            .map(|e| {
                let protocol = protocols.iter().map(|(p, _)| p).find(|p| e.serves(p));
                let url = self.provider_url(protocol.map_or("rpc", |p| p.as_str()), 0, e, 0, "");
                Guard::new(e.handler.descriptor(), &url, &logs)
            })
            .collect();
        // request → observer (metrics, spans) → guards → provider layers → the
        // export's layers → the service adapter.
        let exported: Vec<Exported> = self
            .exports
            .iter()
            .zip(&guards)
            .map(|(e, guard)| {
                let layers: Vec<InvokerLayer> = self.layers.iter().chain(&e.layers).cloned().collect();
                let key = e.key();
                let stats = self.metrics.as_ref().map(|metrics| {
                    let methods = e.handler.descriptor().methods.iter().map(|m| m.name);
                    metrics.service(crate::observe::Side::Provider, &self.application, &key, methods)
                });
                Exported::layered(e.handler.clone(), &layers)
                    .map_invoker(|inner| guard.wrap(inner))
                    .map_invoker(|invoker| crate::observe::ServeObserver::wrap(invoker, stats, self.tracing))
            })
            .collect();
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
            // Each port serves the exports of its protocol only: a request
            // for another is answered "not exported here", as in Dubbo.
            let dispatcher = Dispatcher::new(
                self.exports
                    .iter()
                    .zip(&exported)
                    .filter(|(e, _)| e.serves(protocol))
                    .map(|(e, exported)| (e.key(), exported.clone())),
            );
            let address = format_address(&bind_host, *port);
            match Server::new(dispatcher, self.server.clone())
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
        // Per export: its first URL, and the registries it registers in.
        let mut first_url: Vec<Option<Url>> = vec![None; self.exports.len()];
        let mut registrations = Vec::new();
        for (protocol, server) in &servers {
            for (i, export) in self.exports.iter().enumerate() {
                if !export.serves(protocol) {
                    continue;
                }
                let url = self.provider_url(protocol, server.local_addr().port(), export, timestamp, &instance);
                for (name, registry) in &registries {
                    if export.registers_in(name) {
                        registrations.push((registry.clone(), urls.len()));
                    }
                }
                first_url[i].get_or_insert_with(|| url.clone());
                urls.push((export.key(), url));
            }
        }
        let mut provider = RunningProvider {
            servers,
            registration: Arc::new(Registration::new(urls, registrations)),
            grace: self.shutdown_grace,
            unregister_timeout: self.unregister_timeout,
            logs,
            watchers: Watchers::default(),
            qos: None,
        };
        if let Err(e) = provider.registration.set_online("*", true).await {
            provider.shutdown().await;
            return Err(e);
        }
        // Provider-side override rules set the guards live, from the
        // registries each export is in.
        for ((export, url), guard) in self.exports.iter().zip(&first_url).zip(&guards) {
            let Some(url) = url else { continue };
            let its: Vec<Arc<dyn Registry>> = registries
                .iter()
                .filter(|(name, _)| export.registers_in(name))
                .map(|(_, r)| r.clone())
                .collect();
            match watch_rules(&its, url, guard.clone()).await {
                Ok(Some(watcher)) => provider.watchers.0.push(watcher),
                Ok(None) => {}
                Err(e) => {
                    provider.shutdown().await;
                    return Err(e);
                }
            }
        }
        if let Some(port) = self.qos_port {
            let mut qos = crate::qos::Qos::builder().port(port).provider(&provider);
            if let Some(metrics) = self.metrics.clone() {
                qos = qos.metrics(move || metrics.render());
            }
            match qos.start().await {
                Ok(qos) => provider.qos = Some(qos),
                Err(e) => {
                    provider.shutdown().await;
                    return Err(e);
                }
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
        if let Some(token) = &export.token {
            url.set_param(guard::keys::TOKEN, token.value());
        }
        if let Some(executes) = export.executes {
            url.set_param(guard::keys::EXECUTES, executes.to_string());
        }
        if let Some((tps, interval)) = export.tps {
            url.set_param(guard::keys::TPS, tps.to_string());
            if let Some(interval) = interval {
                url.set_param(guard::keys::TPS_INTERVAL, interval.as_millis().to_string());
            }
        }
        if let Some(accesslog) = &export.accesslog {
            url.set_param(guard::keys::ACCESSLOG, accesslog.clone());
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

/// Watches the override rules of the export whose provider URL is `url` in
/// every registry, applying the URL they make to its guards; `None` when no
/// registry has a configuration centre to watch.
async fn watch_rules(
    registries: &[Arc<dyn Registry>],
    url: &Url,
    guard: Arc<Guard>,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    use futures::StreamExt;
    if registries.is_empty() {
        return Ok(None);
    }
    let mut sources = Vec::with_capacity(registries.len());
    for (i, registry) in registries.iter().enumerate() {
        sources.push(registry.rules(url).await?.map(move |set| (i, set)));
    }
    let count = sources.len();
    let mut changes = futures::stream::select_all(sources);
    let url = url.clone();
    let key = ServiceKey::new(url.interface().unwrap_or_default(), url.version(), url.group());
    Ok(Some(tokio::spawn(async move {
        let governance = rpc_cluster::governance::Governance::new(key);
        let mut latest: Vec<rpc_registry::RuleSet> = vec![Default::default(); count];
        while let Some((source, set)) = changes.next().await {
            if let Some(slot) = latest.get_mut(source) {
                *slot = set;
            }
            let nodes: Vec<rpc_cluster::governance::RuleNode> = latest
                .iter()
                .flat_map(|set| set.iter())
                .map(|n| rpc_cluster::governance::RuleNode::new(n.path.clone(), n.text.clone()))
                .collect();
            governance.update(&url, &nodes);
            let configured = governance.configure_provider(&url);
            guard.update(configured.as_ref().unwrap_or(&url));
        }
    })))
}

/// The provider's rule watchers, stopped with it.
#[derive(Debug, Default)]
struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for watcher in &self.0 {
            watcher.abort();
        }
    }
}

/// A started provider.
#[derive(Debug)]
pub struct RunningProvider {
    servers: Vec<(String, ServerHandle)>,
    registration: Arc<Registration>,
    grace: Duration,
    unregister_timeout: Duration,
    logs: AccessLogs,
    watchers: Watchers,
    /// The QoS server of [`ProviderBuilder::qos_port`]; answers (probes
    /// saying "not ready") through shutdown, closed when this is dropped.
    qos: Option<crate::qos::QosServer>,
}

impl RunningProvider {
    /// Where the QoS port of [`ProviderBuilder::qos_port`] listens (`None`
    /// without one, or when its port could not be bound).
    pub fn qos_addr(&self) -> Option<SocketAddr> {
        self.qos.as_ref().and_then(crate::qos::QosServer::local_addr)
    }

    /// The provider URLs, one per protocol and export.
    pub fn urls(&self) -> &[Url] {
        &self.registration.urls
    }

    /// Takes the services matching `services` out of the registries while
    /// the provider keeps serving: consumers stop choosing it as their
    /// registries tell them, and the calls they already sent are answered.
    /// What a deploy script does before stopping a process (Dubbo's QoS
    /// `offline`). `services` is `*` (or `.*`, or empty) for every service,
    /// else a pattern matched against the whole service key
    /// (`group/interface:version`) or the interface name, where `*` stands
    /// for any text. Idempotent: a URL already offline is left alone.
    /// Serialized with [`online`](Self::online) and
    /// [`shutdown`](Self::shutdown), so concurrent calls never interleave.
    /// Returns how many services matched (0: none; nothing changed), or the
    /// first registry error (URLs whose unregistration failed stay online,
    /// the others go offline).
    pub async fn offline(&self, services: &str) -> Result<usize, Error> {
        self.registration.set_online(services, false).await
    }

    /// Registers again the services matching `services` (as in
    /// [`offline`](Self::offline)) in every registry: consumers send them
    /// calls again. Idempotent. Fails once shutdown has begun.
    pub async fn online(&self, services: &str) -> Result<usize, Error> {
        self.registration.set_online(services, true).await
    }

    /// Each exported service and whether it is registered now in at least
    /// one registry (its `PUB` column in QoS `ls`).
    pub fn services(&self) -> Vec<(ServiceKey, bool)> {
        self.registration.services()
    }

    pub(crate) fn registration(&self) -> Arc<Registration> {
        self.registration.clone()
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
    /// [`ServerHandle::shutdown`]); then stop following override rules and
    /// write out the access logs. Returns the calls abandoned when the grace
    /// period ran out.
    pub async fn shutdown(&self) -> usize {
        self.registration.stopping.store(true, Ordering::SeqCst);
        let all = self.registration.set_online("*", false);
        if tokio::time::timeout(self.unregister_timeout, all).await.is_err() {
            tracing::warn!(
                timeout_ms = self.unregister_timeout.as_millis() as u64,
                "registries did not confirm every unregistration in time; draining anyway"
            );
        }
        let abandoned = shutdown_servers(&self.servers, self.grace).await;
        for watcher in &self.watchers.0 {
            watcher.abort();
        }
        // The access logs get the records of the calls just drained.
        if tokio::time::timeout(self.grace.max(Duration::from_secs(1)), self.logs.flush())
            .await
            .is_err()
        {
            tracing::warn!("the access logs were not written out in time");
        }
        abandoned
    }
}

/// The registration state of a running provider's URLs, shared with the QoS
/// server: which (registry, URL) pairs are registered, changed only under
/// one lock so that online, offline and shutdown never interleave.
#[derive(Debug)]
pub(crate) struct Registration {
    /// Every provider URL with the service it exports.
    urls: Vec<Url>,
    keys: Vec<ServiceKey>,
    /// Each registration: a registry and the URL (its index) it holds.
    pairs: Vec<(Arc<dyn Registry>, usize)>,
    /// `registered[p]`: registration `p` is in its registry. Read without
    /// waiting for an operation in progress (QoS `ls`, probes).
    registered: Mutex<Vec<bool>>,
    /// Held for the whole of each online/offline operation.
    operation: tokio::sync::Mutex<()>,
    /// Set when shutdown begins: `online` is refused from then on.
    stopping: AtomicBool,
}

impl Registration {
    fn new(urls: Vec<(ServiceKey, Url)>, pairs: Vec<(Arc<dyn Registry>, usize)>) -> Self {
        let (keys, urls): (Vec<ServiceKey>, Vec<Url>) = urls.into_iter().unzip();
        Registration {
            registered: Mutex::new(vec![false; pairs.len()]),
            urls,
            keys,
            pairs,
            operation: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Registers (`online`) or unregisters the URLs of the services matching
    /// `pattern`, in the registries their exports name; returns how many
    /// services matched.
    pub(crate) async fn set_online(&self, pattern: &str, online: bool) -> Result<usize, Error> {
        let _operation = self.operation.lock().await;
        if online && self.stopping.load(Ordering::SeqCst) {
            return Err(Error::Config(
                "the provider is shutting down: its services cannot go online again".into(),
            ));
        }
        let services: std::collections::HashSet<&ServiceKey> =
            self.keys.iter().filter(|key| service_matches(pattern, key)).collect();
        let pending: Vec<usize> = {
            let registered = lock(&self.registered);
            (0..self.pairs.len())
                .filter(|&p| registered[p] != online && services.contains(&self.keys[self.pairs[p].1]))
                .collect()
        };
        let results = futures::future::join_all(pending.iter().map(|&p| async move {
            let (registry, u) = &self.pairs[p];
            let url = &self.urls[*u];
            let result = if online {
                registry.register(url).await
            } else {
                registry.unregister(url).await
            };
            match &result {
                Ok(()) => {
                    lock(&self.registered)[p] = online;
                    let url = url.redacted();
                    if online {
                        tracing::info!(%url, registry = %registry.url(), "registered");
                    } else {
                        tracing::info!(%url, registry = %registry.url(), "unregistered");
                    }
                }
                Err(e) => {
                    let action = if online { "cannot register" } else { "cannot unregister" };
                    tracing::warn!(url = %url.redacted(), registry = %registry.url(), error = %e, "{action}");
                }
            }
            result
        }))
        .await;
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(e.into()),
            None => Ok(services.len()),
        }
    }

    /// Every provider URL.
    pub(crate) fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// Each exported service, once, and whether any of its URLs is registered.
    pub(crate) fn services(&self) -> Vec<(ServiceKey, bool)> {
        let registered = lock(&self.registered);
        let mut services: Vec<(ServiceKey, bool)> = Vec::new();
        for key in &self.keys {
            if !services.iter().any(|(k, _)| k == key) {
                services.push((key.clone(), false));
            }
        }
        for (p, (_, u)) in self.pairs.iter().enumerate() {
            if registered[p]
                && let Some((_, on)) = services.iter_mut().find(|(k, _)| *k == self.keys[*u])
            {
                *on = true;
            }
        }
        services
    }

    /// Serving, and findable: not shutting down, and registered in some
    /// registry unless it has none (then consumers reach it directly).
    pub(crate) fn ready(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && (self.pairs.is_empty() || lock(&self.registered).iter().any(|&on| on))
    }

    /// Started and not stopping.
    pub(crate) fn started(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `pattern` names `key`: `*`, `.*` or nothing names every service;
/// otherwise the pattern must match the whole service key or the interface,
/// `*` matching any text (Dubbo takes a Java regular expression; its common
/// forms, a name or `.*`, mean the same here).
pub(crate) fn service_matches(pattern: &str, key: &ServiceKey) -> bool {
    let pattern = pattern.trim().replace(".*", "*");
    if pattern.is_empty() || pattern == "*" {
        return true;
    }
    glob(&pattern, &key.to_string()) || glob(&pattern, key.interface())
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // matches[j]: pattern[..i] matches text[..j], row by row.
    let mut matches = vec![false; t.len() + 1];
    matches[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= matches[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = matches[j - 1] && t[j - 1] == pc;
            }
        }
        matches = next;
    }
    matches[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_patterns_match_the_key_or_the_interface() {
        let key = ServiceKey::new("org.example.Greeter", Some("1.0.0"), Some("blue"));
        for pattern in [
            "*",
            ".*",
            "",
            "org.example.Greeter",
            "blue/org.example.Greeter:1.0.0",
            "org.example.*",
            "*:1.0.0",
        ] {
            assert!(service_matches(pattern, &key), "{pattern}");
        }
        for pattern in ["org.example", "Greeter", "*:2.0.0", "org.example.Greeter:1.0.0x"] {
            assert!(!service_matches(pattern, &key), "{pattern}");
        }
    }
}
