//! [`Metrics`]: Dubbo-named Prometheus metrics of calls, directories and servers.
//!
//! A [`Metrics`] handle is given to the builders
//! ([`ConsumerBuilder::metrics`](crate::ConsumerBuilder::metrics),
//! [`ProviderBuilder::metrics`](crate::ProviderBuilder::metrics)); every
//! reference and export built with it records each call (consumer: once per
//! call, whatever its attempts; provider: once per request) into counters of
//! its own (service, method), resolved when the reference or export is
//! built, so a call costs no lookup by label. Each thread that records calls
//! writes counters of its own (a shard per thread and method, summed when
//! rendered): threads recording at once never contend for a cache line, and
//! a thread with a shard of its own counts with plain loads and stores.
//! [`Metrics::render`] writes them all, with the directories', servers' and
//! channels' gauges read at that moment, in the Prometheus text format
//! (encoded by the `prometheus-client` crate).
//!
//! Names and labels are Dubbo 3's (`MetricsKey`): `dubbo_{side}_requests_total`
//! and its kinds of failure, `dubbo_{side}_requests_processing`, the
//! precomputed latency gauges `dubbo_{side}_rt_milliseconds_{min,max,avg,sum,last,p50,p90,p95,p99}`,
//! labelled `application_name`, `interface`, `method`, `group`, `version`.
//! The quantiles are computed at render time from the latest
//! [`RT_WINDOW`] latencies of each method on each thread that records it (a
//! ring per shard, every call writing one slot); min, max, sum, avg and last
//! cover every call since start, as Dubbo's.
//!
//! Beside Dubbo's, under `rpc_` names (Dubbo has none for them): a
//! provider's servers (`rpc_server_connections`, `_requests_in_flight`,
//! `_requests_queued`, `_connections_refused_total`,
//! `_requests_refused_total`, read from
//! [`ServerHandle::stats`](rpc_core::protocol::server::ServerHandle::stats))
//! and a consumer's connections (`rpc_consumer_reconnects_total` per
//! provider address, read from its channels).

mod shard;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rpc_core::{ErrorKind, RpcError, ServiceKey, Status};

use shard::Shard;

/// How many of each method's latest latencies per recording thread the
/// quantile gauges (`_rt_milliseconds_p50` … `_p99`) are computed from.
pub const RT_WINDOW: usize = 1024;

/// Upper bounds (milliseconds) of the latency histogram's buckets
/// (`dubbo_{side}_rt_milliseconds_histogram`).
pub const RT_BUCKETS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` of [`Metrics::render_openmetrics`]'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which side of a call a metric counts: the `{side}` in Dubbo's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Calls a consumer made (`dubbo_consumer_…`).
    Consumer,
    /// Requests a provider served (`dubbo_provider_…`).
    Provider,
}

impl Side {
    /// `consumer` or `provider`.
    pub const fn name(self) -> &'static str {
        match self {
            Side::Consumer => "consumer",
            Side::Provider => "provider",
        }
    }
}

/// The kind of a failed call, as Dubbo's metrics count it. See
/// [`FailureKind::of`] for the mapping from [`ErrorKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The service implementation failed: `_requests_business_failed_total`.
    Business,
    /// The deadline passed: `_requests_timeout_total`.
    Timeout,
    /// A limit refused the call: `_requests_limit_total`.
    Limit,
    /// The connection failed or broke: `_requests_failed_network_total`.
    Network,
    /// A payload could not be encoded or decoded: `_requests_failed_codec_total`.
    Codec,
    /// No provider, or no such service there: `_requests_failed_service_unavailable_total`.
    ServiceUnavailable,
    /// Anything else: `_requests_unknown_failed_total`.
    Unknown,
}

impl FailureKind {
    /// The Dubbo counter an error of `kind` counts in:
    ///
    /// | [`ErrorKind`] | kind |
    /// |---|---|
    /// | `Remote(ServiceError)` (the handler panicked, a provider filter failed it, a Java exception) | business |
    /// | `Timeout`, `Expired`, `Remote(ServerTimeout)`, `Remote(ClientTimeout)` | timeout |
    /// | `LocalLimit`, `Remote(ServerOverloaded)` | limit |
    /// | `Connect`, `Closed`, `ConnectionLost`, `Remote(ChannelInactive)` | network |
    /// | `Encode`, `Decode`, `PayloadTooLarge`, `Remote(SerializationError)`, `Remote(BadRequest)`, `Remote(BadResponse)` | codec |
    /// | `NoProvider`, `Remote(ServiceNotFound)` | service unavailable |
    /// | `Layer`, any other `Remote` status | unknown |
    ///
    /// A `Result::Err` a method returns is an answer, not a failure: it counts as succeeded.
    pub const fn of(kind: ErrorKind) -> FailureKind {
        match kind {
            ErrorKind::Remote(Status::ServiceError) => FailureKind::Business,
            ErrorKind::Timeout
            | ErrorKind::Expired
            | ErrorKind::Remote(Status::ServerTimeout)
            | ErrorKind::Remote(Status::ClientTimeout) => FailureKind::Timeout,
            ErrorKind::LocalLimit | ErrorKind::Remote(Status::ServerOverloaded) => FailureKind::Limit,
            ErrorKind::Connect
            | ErrorKind::Closed
            | ErrorKind::ConnectionLost
            | ErrorKind::Remote(Status::ChannelInactive) => FailureKind::Network,
            ErrorKind::Encode
            | ErrorKind::Decode
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Remote(Status::SerializationError)
            | ErrorKind::Remote(Status::BadRequest)
            | ErrorKind::Remote(Status::BadResponse) => FailureKind::Codec,
            ErrorKind::NoProvider | ErrorKind::Remote(Status::ServiceNotFound) => FailureKind::ServiceUnavailable,
            _ => FailureKind::Unknown,
        }
    }

    const ALL: [FailureKind; 7] = [
        FailureKind::Business,
        FailureKind::Timeout,
        FailureKind::Limit,
        FailureKind::Network,
        FailureKind::Codec,
        FailureKind::ServiceUnavailable,
        FailureKind::Unknown,
    ];

    /// The counter's name after `dubbo_{side}_`, without `_total`.
    const fn metric(self) -> &'static str {
        match self {
            FailureKind::Business => "requests_business_failed",
            FailureKind::Timeout => "requests_timeout",
            FailureKind::Limit => "requests_limit",
            FailureKind::Network => "requests_failed_network",
            FailureKind::Codec => "requests_failed_codec",
            FailureKind::ServiceUnavailable => "requests_failed_service_unavailable",
            FailureKind::Unknown => "requests_unknown_failed",
        }
    }

    const fn help(self) -> &'static str {
        match self {
            FailureKind::Business => "Total Failed Business Requests",
            FailureKind::Timeout => "Total Timeout Failed Requests",
            FailureKind::Limit => "Total Limit Failed Requests",
            FailureKind::Network => "Total network Failed Requests",
            FailureKind::Codec => "Total Codec Failed Requests",
            FailureKind::ServiceUnavailable => "Total Service Unavailable Failed Requests",
            FailureKind::Unknown => "Total Unknown Failed Requests",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// A registry of call metrics, shared by the consumers and providers built
/// with it. Cloning is cheap: clones share the counters. It is also a
/// `prometheus-client` [`Collector`]: register it in a `Registry` of your own
/// to expose it beside your metrics.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    methods: BTreeMap<MethodKey, Arc<MethodStats>>,
    directories: Vec<(Labels, Weak<rpc_cluster::Directory>)>,
    servers: Vec<(Labels, rpc_core::protocol::server::ServerHandle)>,
    /// A consumer's channels, by its application name.
    channels: Vec<(String, Weak<dyn Reconnects>)>,
}

/// `(protocol, address, reconnections)` of one channel.
pub(crate) type ChannelReconnects = (&'static str, String, u64);

/// A consumer's channels to its providers, read when metrics are rendered.
pub(crate) trait Reconnects: Send + Sync + 'static {
    /// What every channel open now counted.
    fn reconnects(&self) -> Vec<ChannelReconnects>;
}

impl std::fmt::Debug for dyn Reconnects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reconnects")
    }
}

/// `(side, application, interface, method, group, version)`: one set of counters.
type MethodKey = (Side, String, String, String, String, String);

type Labels = Vec<(&'static str, String)>;

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Every metric, in the Prometheus text format 0.0.4
    /// ([`PROMETHEUS_CONTENT_TYPE`]): what a `/metrics` endpoint serves.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }

    /// Every metric, in the OpenMetrics text format ([`OPENMETRICS_CONTENT_TYPE`]).
    pub fn render_openmetrics(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// The counters of `method` of `service` on `side`, made on first use.
    pub(crate) fn method(&self, side: Side, application: &str, service: &ServiceKey, method: &str) -> Arc<MethodStats> {
        let key: MethodKey = (
            side,
            application.to_string(),
            service.interface().to_string(),
            method.to_string(),
            service.group().unwrap_or_default().to_string(),
            service.version().unwrap_or_default().to_string(),
        );
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .methods
            .entry(key)
            .or_insert_with_key(|(_, app, interface, method, group, version)| {
                Arc::new(MethodStats::new(vec![
                    ("application_name", app.clone()),
                    ("interface", interface.clone()),
                    ("method", method.clone()),
                    ("group", group.clone()),
                    ("version", version.clone()),
                ]))
            })
            .clone()
    }

    /// The counters of every method of `service` on `side`, for one
    /// reference or export.
    pub(crate) fn service(
        &self,
        side: Side,
        application: &str,
        service: &ServiceKey,
        methods: impl IntoIterator<Item = &'static str>,
    ) -> ServiceStats {
        ServiceStats {
            metrics: self.clone(),
            side,
            application: application.into(),
            service: service.clone(),
            methods: methods
                .into_iter()
                .map(|m| (m, self.method(side, application, service, m)))
                .collect(),
            undeclared: Arc::default(),
        }
    }

    /// `exported` (a service run by a [`Dispatcher`](rpc_core::Dispatcher)
    /// of your own, not a [`Provider`](crate::Provider)) with its requests
    /// counted here as a provider's are, under `application` and `key`.
    pub fn observe_export(
        &self,
        application: &str,
        key: &ServiceKey,
        exported: rpc_core::Exported,
    ) -> rpc_core::Exported {
        let methods = exported.descriptor().methods.iter().map(|m| m.name);
        let stats = self.service(Side::Provider, application, key, methods);
        exported.map_invoker(|invoker| super::ServeObserver::wrap(invoker, Some(stats), false))
    }

    /// Reports `directory`'s providers (`dubbo_registry_directory_num_*`)
    /// while it lives.
    pub(crate) fn watch_directory(&self, application: &str, directory: &Arc<rpc_cluster::Directory>) {
        let key = directory.key();
        let labels = vec![
            ("application_name", application.to_string()),
            ("interface", key.interface().to_string()),
            ("group", key.group().unwrap_or_default().to_string()),
            ("version", key.version().unwrap_or_default().to_string()),
        ];
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.directories.retain(|(_, d)| d.strong_count() > 0);
        state.directories.push((labels, Arc::downgrade(directory)));
    }

    /// Reports the reconnections of a consumer's channels
    /// (`rpc_consumer_reconnects_total`) while the consumer lives.
    pub(crate) fn watch_channels(&self, application: &str, channels: Weak<dyn Reconnects>) {
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.channels.retain(|(_, c)| c.strong_count() > 0);
        state.channels.push((application.to_string(), channels));
    }

    /// Reports `server`'s connections and calls in flight.
    pub(crate) fn watch_server(
        &self,
        application: &str,
        protocol: &str,
        server: &rpc_core::protocol::server::ServerHandle,
    ) {
        let labels = vec![
            ("application_name", application.to_string()),
            ("protocol", protocol.to_string()),
            ("address", server.local_addr().to_string()),
        ];
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A server at the same address replaces one that ran there before.
        state.servers.retain(|(_, s)| s.local_addr() != server.local_addr());
        state.servers.push((labels, server.clone()));
    }
}

/// How many method names a service's descriptor does not declare (`$echo`,
/// `$invoke`, or names a caller made up) get counters of their own; calls of
/// any further ones count under the method [`OTHER_METHODS`], so a caller
/// cannot grow the metrics without bound.
pub const UNDECLARED_METHODS: usize = 8;

/// The `method` label of calls of undeclared methods beyond [`UNDECLARED_METHODS`].
pub const OTHER_METHODS: &str = "(other)";

/// The counters of one reference's or export's methods, found by name
/// without hashing (a service has few methods).
#[derive(Clone, Debug)]
pub(crate) struct ServiceStats {
    metrics: Metrics,
    side: Side,
    application: Arc<str>,
    service: ServiceKey,
    methods: Vec<(&'static str, Arc<MethodStats>)>,
    undeclared: Arc<Mutex<Undeclared>>,
}

/// The counters of the undeclared methods called so far, by name.
type Undeclared = Vec<(Box<str>, Arc<MethodStats>)>;

impl ServiceStats {
    /// The counters of `method`: the declared methods' were made with the
    /// reference or export; others' on first use, up to [`UNDECLARED_METHODS`].
    pub(crate) fn get(&self, method: &str) -> Arc<MethodStats> {
        if let Some((_, stats)) = self.methods.iter().find(|(name, _)| *name == method) {
            return stats.clone();
        }
        let mut undeclared = self.undeclared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, stats)) = undeclared.iter().find(|(name, _)| &**name == method) {
            return stats.clone();
        }
        let name = if undeclared.len() < UNDECLARED_METHODS {
            method
        } else {
            OTHER_METHODS
        };
        let stats = self.metrics.method(self.side, &self.application, &self.service, name);
        if name == method {
            undeclared.push((method.into(), stats.clone()));
        }
        stats
    }
}

/// The counters of one (side, service, method): a [`Shard`] per thread that
/// records calls (see [`shard`]), summed when rendered, so that threads
/// recording calls at once do not write the same cache line; the extremes
/// are shared, and written only when a call moves them. Aligned so that the
/// reference counts of the `Arc` it lives in, which every call changes, do
/// not share a cache line with the fields every call reads.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct MethodStats {
    labels: Labels,
    shards: shard::Shards,
    rt_min_us: AtomicU64,
    rt_max_us: AtomicU64,
}

impl MethodStats {
    fn new(labels: Labels) -> Self {
        MethodStats {
            labels,
            shards: shard::Shards::default(),
            rt_min_us: AtomicU64::new(u64::MAX),
            rt_max_us: AtomicU64::new(0),
        }
    }

    /// A call starts: counted, and in flight until [`finish`](Self::finish)
    /// (calls in flight are those started and not finished: no counter of
    /// their own).
    pub(crate) fn start(&self, bytes_out: usize) {
        let (shard, owned) = self.shards.mine();
        shard.add(&shard.requests, 1, owned);
        shard.add(&shard.bytes_out, bytes_out as u64, owned);
    }

    /// The sum over the shards of what `field` picks.
    fn sum(&self, field: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| field(s).load(Ordering::Relaxed)).sum()
    }

    fn succeeded(&self) -> u64 {
        self.sum(|s| &s.outcomes[0])
    }

    fn failed(&self) -> u64 {
        (1..shard::OUTCOMES).map(|i| self.sum(|s| &s.outcomes[i])).sum()
    }

    fn failures(&self, kind: FailureKind) -> u64 {
        self.sum(|s| &s.outcomes[1 + kind.index()])
    }

    /// Calls that ended, either way.
    fn finished(&self) -> u64 {
        (0..shard::OUTCOMES).map(|i| self.sum(|s| &s.outcomes[i])).sum()
    }

    /// Calls started and not finished yet.
    fn processing(&self) -> u64 {
        // Read the finished ones first: every counter only grows, and a call
        // is counted started before it is counted finished, so the
        // difference cannot be negative.
        let finished = self.finished();
        self.sum(|s| &s.requests).saturating_sub(finished)
    }

    /// The latency of the call that finished last, in microseconds.
    fn last_us(&self) -> u64 {
        self.shards
            .iter()
            .max_by_key(|s| s.last_at.load(Ordering::Relaxed))
            .map_or(0, |s| s.last_us.load(Ordering::Relaxed))
    }

    /// Every latency of the windows (plus one, as stored), sorted.
    fn window(&self) -> Vec<u32> {
        let mut window: Vec<u32> = self
            .shards
            .iter()
            .flat_map(|s| s.window.iter().map(|slot| slot.load(Ordering::Relaxed)))
            .filter(|&v| v > 0)
            .collect();
        window.sort_unstable();
        window
    }

    /// A call started with [`start`](Self::start) at `started` ended at
    /// `ended`: succeeded (with a response of `bytes_in`), or failed as
    /// `failure`.
    pub(crate) fn finish(&self, started: Instant, ended: Instant, result: Result<usize, FailureKind>) {
        let (shard, owned) = self.shards.mine();
        match result {
            Ok(bytes_in) => {
                shard.add(&shard.outcomes[0], 1, owned);
                shard.add(&shard.bytes_in, bytes_in as u64, owned);
            }
            Err(kind) => shard.add(&shard.outcomes[1 + kind.index()], 1, owned),
        }
        let us = u64::try_from(ended.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
        shard.add(&shard.rt_sum_us, us, owned);
        shard.last_us.store(us, Ordering::Relaxed);
        shard.last_at.store(shard::stamp(ended), Ordering::Relaxed);
        // Read first: the extremes rarely move, and a read of a line no one
        // writes costs less than the read-modify-write.
        if us < self.rt_min_us.load(Ordering::Relaxed) {
            self.rt_min_us.fetch_min(us, Ordering::Relaxed);
        }
        if us > self.rt_max_us.load(Ordering::Relaxed) {
            self.rt_max_us.fetch_max(us, Ordering::Relaxed);
        }
        // The latest calls of this shard; two threads sharing the overflow
        // shard may take the same slot, which loses one sample, never a count.
        let next = shard.window_next.load(Ordering::Relaxed);
        shard.window_next.store(next.wrapping_add(1), Ordering::Relaxed);
        // Stored plus one, so that 0 marks a slot not written yet.
        shard.window[next % RT_WINDOW].store(u32::try_from(us).unwrap_or(u32::MAX - 1) + 1, Ordering::Relaxed);
        if let Some(bucket) = RT_BUCKETS_US.iter().position(|&bound| us <= bound) {
            shard.add(&shard.buckets[bucket], 1, owned);
        }
    }

    /// The failure kind of `error`, finishing the call with it.
    pub(crate) fn finish_err(&self, started: Instant, ended: Instant, error: &RpcError) {
        self.finish(started, ended, Err(FailureKind::of(error.kind())));
    }
}

/// [`RT_BUCKETS_MS`] in microseconds, as calls are timed.
const RT_BUCKETS_US: [u64; RT_BUCKETS_MS.len()] = {
    let mut us = [0; RT_BUCKETS_MS.len()];
    let mut i = 0;
    while i < us.len() {
        us[i] = RT_BUCKETS_MS[i] as u64 * 1000;
        i += 1;
    }
    us
};

/// A value of every method's stats, for one metric family.
fn family<F>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    rows: &[&Arc<MethodStats>],
    value: F,
) -> Result<(), std::fmt::Error>
where
    F: Fn(&MethodStats) -> Option<f64>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for stats in rows {
        let Some(v) = value(stats) else { continue };
        let family = metric.encode_family(&stats.labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(v as u64).encode(family)?,
            _ => ConstGauge::new(v).encode(family)?,
        }
    }
    Ok(())
}

/// The `q` quantile (0..1) of the window, in milliseconds.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1] - 1) / 1000.0
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        for side in [Side::Consumer, Side::Provider] {
            let rows: Vec<&Arc<MethodStats>> = state
                .methods
                .iter()
                .filter(|((s, ..), _)| *s == side)
                .map(|(_, stats)| stats)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let s = side.name();
            let c = MetricType::Counter;
            let g = MetricType::Gauge;
            let e = &mut encoder;
            family(e, &format!("dubbo_{s}_requests"), "Total Requests", c, &rows, |m| {
                Some(m.sum(|s| &s.requests) as f64)
            })?;
            family(
                e,
                &format!("dubbo_{s}_requests_succeed"),
                "Total Succeed Requests",
                c,
                &rows,
                |m| Some(m.succeeded() as f64),
            )?;
            family(
                e,
                &format!("dubbo_{s}_requests_failed"),
                "Total Failed Requests",
                c,
                &rows,
                |m| Some(m.failed() as f64),
            )?;
            for kind in FailureKind::ALL {
                family(e, &format!("dubbo_{s}_{}", kind.metric()), kind.help(), c, &rows, |m| {
                    Some(m.failures(kind) as f64)
                })?;
            }
            family(
                e,
                &format!("dubbo_{s}_requests_processing"),
                "Processing Requests",
                g,
                &rows,
                |m| Some(m.processing() as f64),
            )?;
            // Latency gauges, from one snapshot of each method's window.
            let windows: Vec<Vec<u32>> = rows.iter().map(|m| m.window()).collect();
            let finished = |m: &MethodStats| m.finished();
            let ms = |us: u64| us as f64 / 1000.0;
            let rt = |e: &mut DescriptorEncoder<'_>, name: &str, help: &str, f: &dyn Fn(usize, &MethodStats) -> f64| {
                let full = format!("dubbo_{s}_rt_milliseconds_{name}");
                let mut metric = e.encode_descriptor(&full, help, None, g)?;
                for (i, stats) in rows.iter().enumerate() {
                    if finished(stats) == 0 {
                        continue;
                    }
                    ConstGauge::new(f(i, stats)).encode(metric.encode_family(&stats.labels)?)?;
                }
                Ok::<_, std::fmt::Error>(())
            };
            rt(e, "last", "Last Response Time", &|_, m| ms(m.last_us()))?;
            rt(e, "min", "Min Response Time", &|_, m| {
                ms(m.rt_min_us.load(Ordering::Relaxed))
            })?;
            rt(e, "max", "Max Response Time", &|_, m| {
                ms(m.rt_max_us.load(Ordering::Relaxed))
            })?;
            rt(e, "sum", "Sum Response Time", &|_, m| ms(m.sum(|s| &s.rt_sum_us)))?;
            rt(e, "avg", "Average Response Time", &|_, m| {
                ms(m.sum(|s| &s.rt_sum_us)) / finished(m).max(1) as f64
            })?;
            for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99)] {
                let help = format!("Response Time {}", name.to_uppercase());
                rt(e, name, &help, &|i, _| quantile(&windows[i], q))?;
            }
            let histogram_name = format!("dubbo_{s}_rt_milliseconds_histogram");
            let mut histogram =
                encoder.encode_descriptor(&histogram_name, "Response Time Histogram", None, MetricType::Histogram)?;
            for stats in &rows {
                // Counts per bucket: the encoder makes them cumulative.
                let mut below = 0;
                let mut buckets = Vec::with_capacity(RT_BUCKETS_MS.len() + 1);
                for (i, bound) in RT_BUCKETS_MS.iter().enumerate() {
                    let count = stats.sum(|s| &s.buckets[i]);
                    below += count;
                    buckets.push((*bound, count));
                }
                let count = finished(stats);
                buckets.push((f64::INFINITY, count.saturating_sub(below)));
                let sum = ms(stats.sum(|s| &s.rt_sum_us));
                histogram
                    .encode_family(&stats.labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
            }
            let e = &mut encoder;
            family(
                e,
                &format!("rpc_{s}_request_bytes"),
                "Request payload bytes",
                c,
                &rows,
                |m| Some(m.sum(|s| &s.bytes_out) as f64),
            )?;
            family(
                e,
                &format!("rpc_{s}_response_bytes"),
                "Response payload bytes",
                c,
                &rows,
                |m| Some(m.sum(|s| &s.bytes_in) as f64),
            )?;
        }
        let directories: Vec<(&Labels, Arc<rpc_cluster::Directory>)> = state
            .directories
            .iter()
            .filter_map(|(labels, d)| Some((labels, d.upgrade()?)))
            .collect();
        if !directories.is_empty() {
            let counts: Vec<(usize, usize)> = directories
                .iter()
                .map(|(_, d)| {
                    let endpoints = d.endpoints();
                    (endpoints.len(), endpoints.iter().filter(|e| e.is_available()).count())
                })
                .collect();
            type Pick = fn(&(usize, usize)) -> usize;
            let gauges: [(&str, &str, Pick); 3] = [
                ("dubbo_registry_directory_num_all", "All Directory Urls", |c| c.0),
                (
                    "dubbo_registry_directory_num_valid_total",
                    "Valid Directory Urls",
                    |c| c.1,
                ),
                (
                    "dubbo_registry_directory_num_to_reconnect_total",
                    "ToReconnect Directory Urls",
                    |c| c.0 - c.1,
                ),
            ];
            for (name, help, pick) in gauges {
                let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for ((labels, _), count) in directories.iter().zip(&counts) {
                    ConstGauge::new(pick(count) as i64).encode(metric.encode_family(*labels)?)?;
                }
            }
        }
        if !state.servers.is_empty() {
            let stats: Vec<_> = state.servers.iter().map(|(labels, s)| (labels, s.stats())).collect();
            type Read = fn(&rpc_core::protocol::server::ServerStats) -> u64;
            let gauges: [(&str, &str, Read); 3] = [
                ("rpc_server_connections", "Open connections of the server", |s| {
                    s.connections as u64
                }),
                (
                    "rpc_server_requests_in_flight",
                    "Requests the server is handling",
                    |s| s.in_flight as u64,
                ),
                (
                    "rpc_server_requests_queued",
                    "Requests read and waiting for their connection's in-flight limit",
                    |s| s.queued as u64,
                ),
            ];
            for (name, help, read) in gauges {
                let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (labels, s) in &stats {
                    ConstGauge::new(read(s) as i64).encode(metric.encode_family(*labels)?)?;
                }
            }
            let counters: [(&str, &str, Read); 2] = [
                (
                    "rpc_server_connections_refused",
                    "Connections closed at accept by the server's connection limit",
                    |s| s.refused_connections,
                ),
                (
                    "rpc_server_requests_refused",
                    "Requests refused unrun by the server's in-flight limit",
                    |s| s.refused_requests,
                ),
            ];
            for (name, help, read) in counters {
                let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (labels, s) in &stats {
                    ConstCounter::new(read(s)).encode(metric.encode_family(*labels)?)?;
                }
            }
        }
        let channels: Vec<(&String, Vec<ChannelReconnects>)> = state
            .channels
            .iter()
            .filter_map(|(application, c)| Some((application, c.upgrade()?.reconnects())))
            .collect();
        if channels.iter().any(|(_, c)| !c.is_empty()) {
            let mut metric = encoder.encode_descriptor(
                "rpc_consumer_reconnects",
                "Connections a consumer made to a provider after its first one",
                None,
                MetricType::Counter,
            )?;
            for (application, list) in &channels {
                for (protocol, address, count) in list {
                    let labels: [(&str, &str); 3] = [
                        ("application_name", application),
                        ("protocol", protocol),
                        ("address", address),
                    ];
                    ConstCounter::new(*count).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failure_kinds_follow_the_documented_table() {
        assert_eq!(
            FailureKind::of(ErrorKind::Remote(Status::ServiceError)),
            FailureKind::Business
        );
        assert_eq!(FailureKind::of(ErrorKind::Timeout), FailureKind::Timeout);
        assert_eq!(
            FailureKind::of(ErrorKind::Remote(Status::ServerTimeout)),
            FailureKind::Timeout
        );
        assert_eq!(FailureKind::of(ErrorKind::LocalLimit), FailureKind::Limit);
        assert_eq!(FailureKind::of(ErrorKind::ConnectionLost), FailureKind::Network);
        assert_eq!(FailureKind::of(ErrorKind::Decode), FailureKind::Codec);
        assert_eq!(FailureKind::of(ErrorKind::NoProvider), FailureKind::ServiceUnavailable);
        assert_eq!(FailureKind::of(ErrorKind::Layer), FailureKind::Unknown);
    }

    #[test]
    fn undeclared_method_names_are_bounded() {
        let metrics = Metrics::new();
        let key = ServiceKey::new("org.example.Greeter", None, None);
        let service = metrics.service(Side::Provider, "app", &key, ["sayHello"]);
        for i in 0..1000 {
            service.get(&format!("made-up-{i}")).start(0);
        }
        service.get("sayHello").start(0);
        let text = metrics.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("dubbo_provider_requests_total{"))
            .count();
        assert_eq!(series, 1 + UNDECLARED_METHODS + 1, "{text}");
        assert!(text.contains(&format!("method=\"{OTHER_METHODS}\"")), "{text}");
    }

    #[test]
    fn quantiles_come_from_the_window_and_totals_from_every_call() {
        let metrics = Metrics::new();
        let key = ServiceKey::new("org.example.Greeter", Some("1.0.0"), None);
        let stats = metrics.method(Side::Consumer, "app", &key, "sayHello");
        let t0 = Instant::now();
        for ms in 1..=100u64 {
            stats.start(10);
            stats.finish(t0, t0 + Duration::from_millis(ms), Ok(5));
        }
        stats.start(10);
        // The last to end, so the `last` gauge shows it.
        let t1 = t0 + Duration::from_millis(200);
        stats.finish(t1, t1 + Duration::from_millis(7), Err(FailureKind::Timeout));
        let text = metrics.render();
        let labels =
            r#"{application_name="app",interface="org.example.Greeter",method="sayHello",group="",version="1.0.0"}"#;
        for (name, value) in [
            ("dubbo_consumer_requests_total", "101"),
            ("dubbo_consumer_requests_succeed_total", "100"),
            ("dubbo_consumer_requests_failed_total", "1"),
            ("dubbo_consumer_requests_timeout_total", "1"),
            ("dubbo_consumer_requests_processing", "0.0"),
            ("dubbo_consumer_rt_milliseconds_max", "100.0"),
            ("dubbo_consumer_rt_milliseconds_min", "1.0"),
            ("dubbo_consumer_rt_milliseconds_p50", "50.0"),
            ("dubbo_consumer_rt_milliseconds_p99", "99.0"),
            ("dubbo_consumer_rt_milliseconds_last", "7.0"),
            ("rpc_consumer_request_bytes_total", "1010"),
            ("rpc_consumer_response_bytes_total", "500"),
        ] {
            let line = format!("{name}{labels} {value}\n");
            assert!(text.contains(&line), "missing `{line}` in:\n{text}");
        }
    }
}
