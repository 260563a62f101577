//! The consumer's cluster layers alone, in process: nanoseconds per call
//! through directory, failover and round robin to providers that answer at
//! once, against the same calls sent straight to such a provider.
//!
//! No network and one thread, so the difference is the layers' own work per
//! call, repeatable enough to tell small changes apart; the end-to-end table
//! shows what that work costs next to a real connection.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use rpc::cluster::{Cluster, Connect, Directory, Endpoint};
use rpc::{
    Balancer, BoxFuture, BoxInvoker, ClusterPolicy, Invocation, MethodConfig, Response, RpcError, Serialization,
    ServiceKey, Url,
};

/// Calls per measurement.
const CALLS: u32 = 1_000_000;

/// A provider that answers every call at once, with a boxed future like
/// the consumer's channels.
#[derive(Clone)]
struct AtOnce;

impl tower::Service<Invocation> for AtOnce {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RpcError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Invocation) -> Self::Future {
        Box::pin(std::future::ready(Ok(Response::new(Bytes::new()))))
    }
}

fn instant_provider() -> BoxInvoker {
    BoxInvoker::always_ready(AtOnce)
}

struct Instantly;

impl Connect for Instantly {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        // Like the consumer's own channels, which end calls by their deadline.
        Some(Endpoint::new(url.clone(), instant_provider(), || true).with_invoker_enforcing_deadlines())
    }
}

/// What one measurement found.
#[derive(Debug, Clone, Copy)]
pub struct Layers {
    /// Providers in the directory.
    pub providers: usize,
    /// Nanoseconds per call straight to a provider.
    pub direct_ns: f64,
    /// Nanoseconds per call through the cluster layers.
    pub cluster_ns: f64,
}

/// Measures 1 and 3 providers.
pub async fn measure() -> Result<Vec<Layers>, String> {
    let key = ServiceKey::new("bench.Echo", Some("1.0.0"), None);
    let config = MethodConfig::new()
        .with_timeout(Duration::from_secs(30))
        .with_cluster(ClusterPolicy::Failover)
        .with_loadbalance(Balancer::RoundRobin);
    let args = Serialization::Bincode
        .encode(&("x".repeat(64),))
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for providers in [1usize, 3] {
        let urls = (0..providers)
            .map(|i| Url::parse(&format!("rpc://127.0.0.1:{}/bench.Echo?version=1.0.0", 30_000 + i)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let source = futures::stream::once(std::future::ready(Arc::new(urls))).chain(futures::stream::pending());
        let directory = Directory::new(key.clone(), Arc::new(Instantly), vec![Box::pin(source)]).await;
        let cluster = Cluster::builder(directory)
            .reference(config)
            .build()
            .map_err(|e| e.to_string())?;
        let cluster = BoxInvoker::always_ready(cluster);
        let direct = instant_provider();
        let call = |invoker: &BoxInvoker| {
            let mut invocation = Invocation::new(key.clone(), "small", args.clone(), Serialization::Bincode);
            invocation.set_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(30)));
            invoker.invoke(invocation)
        };
        // Warm up both, then measure them alternately, keeping the faster run of each.
        let (mut direct_ns, mut cluster_ns) = (f64::MAX, f64::MAX);
        for round in 0..3 {
            let calls = if round == 0 { CALLS / 10 } else { CALLS };
            let d = time(calls, || call(&direct)).await?;
            let c = time(calls, || call(&cluster)).await?;
            if round > 0 {
                direct_ns = direct_ns.min(d);
                cluster_ns = cluster_ns.min(c);
            }
        }
        found.push(Layers {
            providers,
            direct_ns,
            cluster_ns,
        });
    }
    Ok(found)
}

/// Nanoseconds per call of `calls` calls made one after the other.
async fn time<F>(calls: u32, mut call: impl FnMut() -> F) -> Result<f64, String>
where
    F: Future<Output = Result<Response, RpcError>>,
{
    let started = Instant::now();
    for _ in 0..calls {
        call().await.map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed().as_nanos() as f64 / f64::from(calls.max(1)))
}

/// The cost of one set of governance rules.
#[cfg(feature = "rules")]
#[derive(Debug, Clone)]
pub struct RuleCost {
    /// What is in force.
    pub name: &'static str,
    /// Nanoseconds per call through the cluster layers.
    pub cluster_ns: f64,
}

/// Each governance rule type's cost per call: 3 providers (one `region=eu`,
/// one statically tagged `gray`), failover and round robin, the rule nodes
/// delivered as a registry would.
#[cfg(feature = "rules")]
pub async fn measure_rules() -> Result<Vec<RuleCost>, String> {
    use rpc::cluster::governance::RuleNode;

    let key = ServiceKey::new("bench.Echo", Some("1.0.0"), None);
    let config = MethodConfig::new()
        .with_timeout(Duration::from_secs(30))
        .with_cluster(ClusterPolicy::Failover)
        .with_loadbalance(Balancer::RoundRobin);
    let args = Serialization::Bincode
        .encode(&("x".repeat(64),))
        .map_err(|e| e.to_string())?;
    let node = "/dubbo/config/dubbo/bench.Echo:1.0.0:";
    let condition = "configVersion: v3.0\nkey: bench.Echo:1.0.0\nconditions:\n  - method=small => region=eu\n";
    let unmatched = "configVersion: v3.0\nkey: bench.Echo:1.0.0\nconditions:\n  - method=other => region=eu\n";
    let weighted = "configVersion: v3.1\nkey: bench.Echo:1.0.0\nconditions:\n  - from: {match: method=small}\n    to:\n      - {match: region=eu, weight: 80}\n      - {match: region=us, weight: 20}\n";
    let consumer_cluster = "configVersion: v3.0\nkey: bench.Echo:1.0.0\nconfigs:\n  - side: consumer\n    parameters: {cluster: failfast, actives: 1000}\n";
    let tag_rule = "configVersion: v3.0\nkey: bench\ntags:\n  - name: blue\n    addresses: [\"127.0.0.1:30001\"]\n";
    let consumer_override =
        "configVersion: v3.0\nkey: bench.Echo:1.0.0\nconfigs:\n  - side: consumer\n    parameters: {timeout: 30000}\n";
    let provider_override = "configVersion: v3.0\nkey: bench.Echo:1.0.0\nconfigs:\n  - side: provider\n    addresses: [\"127.0.0.1:30000\"]\n    parameters: {weight: 300}\n";
    type Case = (&'static str, bool, Vec<(String, &'static str)>, Option<&'static str>);
    let cases: Vec<Case> = vec![
        ("none", false, vec![], None),
        (
            "provider-side override (weight)",
            false,
            vec![(format!("{node}.configurators"), provider_override)],
            None,
        ),
        (
            "consumer-side override (timeout)",
            false,
            vec![(format!("{node}.configurators"), consumer_override)],
            None,
        ),
        (
            "consumer-side override (cluster, actives)",
            false,
            vec![(format!("{node}.configurators"), consumer_cluster)],
            None,
        ),
        (
            "condition rule, call not matched",
            false,
            vec![(format!("{node}.condition-router"), unmatched)],
            None,
        ),
        (
            "condition rule, call routed to 1 of 3",
            false,
            vec![(format!("{node}.condition-router"), condition)],
            None,
        ),
        (
            "v3.1 condition, 80:20 over two destinations",
            false,
            vec![(format!("{node}.condition-router"), weighted)],
            None,
        ),
        ("static tag on a provider, untagged call", true, vec![], None),
        ("static tag, call tagged gray", true, vec![], Some("gray")),
        (
            "tag rule, call tagged blue",
            true,
            vec![("/dubbo/config/dubbo/bench.tag-router".to_string(), tag_rule)],
            Some("blue"),
        ),
    ];
    let mut found = Vec::new();
    for (name, tagged, nodes, tag) in cases {
        let urls = (0..3)
            .map(|i| {
                let mut url = format!(
                    "rpc://127.0.0.1:{}/bench.Echo?version=1.0.0&application=bench",
                    30_000 + i
                );
                url.push_str(if i == 0 { "&region=eu" } else { "&region=us" });
                if tagged && i == 2 {
                    url.push_str("&dubbo.tag=gray");
                }
                Url::parse(&url)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let source = futures::stream::once(std::future::ready(Arc::new(urls))).chain(futures::stream::pending());
        let directory = Directory::new(key.clone(), Arc::new(Instantly), vec![Box::pin(source)]).await;
        let rules: Vec<RuleNode> = nodes.into_iter().map(|(p, t)| RuleNode::new(p, t)).collect();
        let rules = futures::stream::once(std::future::ready(Arc::new(rules))).chain(futures::stream::pending());
        let consumer = Url::parse("consumer://127.0.0.1/bench.Echo?application=shop").map_err(|e| e.to_string())?;
        directory.govern(consumer, vec![Box::pin(rules)]).await;
        let cluster = Cluster::builder(directory)
            .reference(config)
            .build()
            .map_err(|e| e.to_string())?;
        let cluster = BoxInvoker::always_ready(cluster);
        let call = |invoker: &BoxInvoker| {
            let mut invocation = Invocation::new(key.clone(), "small", args.clone(), Serialization::Bincode);
            invocation.set_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(30)));
            if let Some(tag) = tag {
                invocation.set_attachment("dubbo.tag", tag);
            }
            invoker.invoke(invocation)
        };
        let mut cluster_ns = f64::MAX;
        for round in 0..3 {
            let calls = if round == 0 { CALLS / 10 } else { CALLS };
            let c = time(calls, || call(&cluster)).await?;
            if round > 0 {
                cluster_ns = cluster_ns.min(c);
            }
        }
        found.push(RuleCost { name, cluster_ns });
    }
    Ok(found)
}
