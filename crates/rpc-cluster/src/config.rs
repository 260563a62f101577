//! The effective settings of a call: the one place that merges every level.
//!
//! Strongest first:
//!
//! 1. the consumer's setting for the method (`ReferenceBuilder::method`);
//! 2. the method's declaration on the trait (`#[rpc(timeout = "300ms")]`);
//! 3. the reference (`ReferenceBuilder::timeout`, `.cluster`, ...);
//! 4. the consumer's defaults (`ConsumerBuilder::timeout`, ...);
//! 5. what the provider publishes in its registry URL: `{method}.timeout`, then
//!    `timeout`; `{method}.loadbalance`, then `loadbalance` (weight and warm-up
//!    are read from the provider URL by the balancers themselves);
//! 6. the built-in defaults ([`DEFAULT_TIMEOUT`], 2 retries, failover, random,
//!    2 forks, no concurrency limit).
//!
//! Levels 1 to 4 are merged by the stub ([`rpc_core::Stub::effective_config`])
//! into the [`MethodConfig`] an [`Invocation`](rpc_core::Invocation) carries;
//! [`effective`] adds levels 5 and 6. Retries, idempotence, the cluster policy,
//! forks and concurrency limits are the consumer's decision only, as in
//! Dubbo 3: a provider cannot make its callers retry a write, so those
//! parameters of a provider URL are ignored.

use std::time::Duration;

use rpc_core::service::DEFAULT_TIMEOUT;
use rpc_core::url::keys;
use rpc_core::{ClusterPolicy, LoadBalancer, MethodConfig, Url};

/// Extra attempts of the failover policy when nothing says otherwise.
pub const DEFAULT_RETRIES: u32 = 2;
/// Parallel calls of the forking policy when nothing says otherwise.
pub const DEFAULT_FORKS: u32 = 2;
/// URL parameter: the provider's default load balancer.
pub const LOADBALANCE: &str = "loadbalance";

/// The settings a call runs with, every level merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The whole call's time budget, across attempts.
    pub timeout: Duration,
    /// One attempt's budget, if limited.
    pub attempt_timeout: Option<Duration>,
    /// Extra attempts (failover).
    pub retries: u32,
    /// Whether unknown outcomes may be retried.
    pub idempotent: bool,
    /// The fault-tolerance policy.
    pub cluster: ClusterPolicy,
    /// The load balancer.
    pub loadbalance: LoadBalancer,
    /// Parallel calls (forking), at least 1.
    pub forks: u32,
    /// Concurrency limit; 0 for none.
    pub actives: u32,
}

impl Effective {
    /// `consumer` with the built-in defaults where it sets nothing.
    pub fn of(consumer: &MethodConfig) -> Effective {
        Effective {
            timeout: consumer.timeout.unwrap_or(DEFAULT_TIMEOUT),
            attempt_timeout: consumer.attempt_timeout,
            retries: consumer.retries.unwrap_or(DEFAULT_RETRIES),
            idempotent: consumer.is_idempotent(),
            cluster: consumer.cluster.unwrap_or(ClusterPolicy::Failover),
            loadbalance: consumer.loadbalance.unwrap_or(LoadBalancer::Random),
            forks: consumer.forks.unwrap_or(DEFAULT_FORKS).max(1),
            actives: consumer.actives.unwrap_or(0),
        }
    }

    /// The same settings as a fully set [`MethodConfig`].
    pub fn to_config(self) -> MethodConfig {
        MethodConfig {
            timeout: Some(self.timeout),
            attempt_timeout: self.attempt_timeout,
            retries: Some(self.retries),
            idempotent: Some(self.idempotent),
            cluster: Some(self.cluster),
            loadbalance: Some(self.loadbalance),
            forks: Some(self.forks),
            actives: Some(self.actives),
            hash_arguments: None,
        }
    }
}

/// The settings of a call of `method`: the consumer's (levels 1 to 4, as the
/// stub merged them), then what `provider`'s URL publishes, then the defaults.
pub fn effective(consumer: &MethodConfig, provider: Option<&Url>, method: &str) -> Effective {
    let published = provider.map(|url| provider_defaults(url, method)).unwrap_or_default();
    Effective::of(&consumer.or(published))
}

/// What a provider URL publishes for `method`: its timeout and load balancer
/// (method-level parameters over interface-level ones). Unparsable values are
/// ignored. Retries and the cluster policy are never taken from a provider.
pub fn provider_defaults(url: &Url, method: &str) -> MethodConfig {
    let param = |key: &str| url.param(&format!("{method}.{key}")).or_else(|| url.param(key));
    let timeout = param(keys::TIMEOUT)
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let loadbalance = param(LOADBALANCE).and_then(|name| name.parse().ok());
    MethodConfig {
        timeout,
        loadbalance,
        ..MethodConfig::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let e = effective(&MethodConfig::new(), None, "m");
        assert_eq!(e.timeout, DEFAULT_TIMEOUT);
        assert_eq!(e.retries, 2);
        assert!(e.idempotent);
        assert_eq!(e.cluster, ClusterPolicy::Failover);
        assert_eq!(e.loadbalance, LoadBalancer::Random);
        assert_eq!(e.forks, 2);
        assert_eq!(e.actives, 0);
        assert_eq!(e.attempt_timeout, None);
    }

    #[test]
    fn provider_publishes_timeout_and_balancer_method_level_first() {
        let p = url(
            "rpc://h:1/a.B?timeout=700&loadbalance=leastactive&sayHello.timeout=300&retries=9&cluster=broadcast&forks=7",
        );
        let e = effective(&MethodConfig::new(), Some(&p), "sayHello");
        assert_eq!(e.timeout, Duration::from_millis(300));
        assert_eq!(e.loadbalance, LoadBalancer::LeastActive);
        // Retries and policy are the consumer's only.
        assert_eq!(e.retries, 2);
        assert_eq!(e.cluster, ClusterPolicy::Failover);
        assert_eq!(e.forks, 2);
        let other = effective(&MethodConfig::new(), Some(&p), "other");
        assert_eq!(other.timeout, Duration::from_millis(700));
    }

    #[test]
    fn consumer_beats_provider() {
        let p = url("rpc://h:1/a.B?timeout=700&loadbalance=leastactive");
        let consumer = MethodConfig::new()
            .with_timeout(Duration::from_millis(50))
            .with_loadbalance(LoadBalancer::RoundRobin);
        let e = effective(&consumer, Some(&p), "m");
        assert_eq!(e.timeout, Duration::from_millis(50));
        assert_eq!(e.loadbalance, LoadBalancer::RoundRobin);
    }

    #[test]
    fn garbage_in_a_provider_url_is_ignored() {
        let p = url("rpc://h:1/a.B?timeout=soon&loadbalance=fastest");
        let e = effective(&MethodConfig::new(), Some(&p), "m");
        assert_eq!(e.timeout, DEFAULT_TIMEOUT);
        assert_eq!(e.loadbalance, LoadBalancer::Random);
    }

    #[test]
    fn round_trips_through_a_method_config() {
        let e = Effective::of(&MethodConfig::new().with_forks(0).with_actives(3));
        assert_eq!(e.forks, 1);
        assert_eq!(Effective::of(&e.to_config()), e);
    }
}
