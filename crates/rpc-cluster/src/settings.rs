//! The settings of a call: the one place that merges every level.
//!
//! Strongest first:
//!
//! 0. a consumer-side override rule from the registry
//!    ([`governance`](crate::governance): `timeout`, `retries`, `loadbalance`,
//!    method-level too), applied per call by the cluster while one is in
//!    force (Dubbo's configurators apply last); its `timeout` is the whole
//!    call's budget, where Dubbo's is one attempt's;
//! 1. the consumer's setting for the method (`ReferenceBuilder::method`);
//! 2. the method's declaration on the trait (`#[rpc(timeout = "300ms")]`);
//! 3. the reference (`ReferenceBuilder::timeout`, `.cluster`, ...);
//! 4. the consumer's defaults (`ConsumerBuilder::timeout`, ...);
//! 5. what the providers publish in their registry URLs: `{method}.timeout`,
//!    then `timeout`; `{method}.loadbalance`, then `loadbalance`;
//! 6. the built-in defaults ([`DEFAULT_TIMEOUT`], [`DEFAULT_RETRIES`] retries,
//!    failover, random, [`DEFAULT_FORKS`] forks, no concurrency limit).
//!
//! Levels 1 to 4 are static: [`consumer_side`] merges them once per method
//! when a reference is built. Levels 5 and 6 are added by [`Settings::resolve`], once
//! per call, before the first provider is picked; the result, a [`Settings`],
//! travels with the call through the policy, the picker and each attempt.
//!
//! # What the providers publish
//!
//! The whole call's budget and its balancer cannot wait for a provider to be
//! picked, and providers of one service may publish different values. When
//! the consumer sets no timeout, the budget is the **largest** timeout the
//! current providers publish for the method, and each attempt sent to a
//! provider is also capped by **that provider's** timeout (what `timeout`
//! means in Dubbo: one attempt); a `dubbo://` provider's (Java Dubbo's) caps
//! each attempt sent to it even when the consumer set the budget. When the
//! consumer sets no balancer, the one
//! **most** providers publish is used (ties: the first in Dubbo's order,
//! random first). A provider's weight and warm-up are read by the balancers
//! themselves.
//!
//! Retries, idempotence, the cluster policy, forks and concurrency limits are
//! the consumer's decision only, as in Dubbo 3: a provider cannot make its
//! callers retry a write, so those parameters of a provider URL are ignored.

use std::time::Duration;

use rpc_core::Url;

use crate::config::{Balancer, ClusterPolicy, MethodConfig, keys};

/// Timeout of a call when no level sets one (Dubbo's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Extra attempts of the failover policy when nothing says otherwise.
pub const DEFAULT_RETRIES: u32 = 2;
/// Parallel calls of the forking policy when nothing says otherwise.
pub const DEFAULT_FORKS: u32 = 2;

/// The settings one call runs with, every level merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The whole call's time budget, across attempts.
    pub timeout: Duration,
    /// One attempt's budget, if limited.
    pub attempt_timeout: Option<Duration>,
    /// Whether each attempt is also capped by the timeout its provider
    /// publishes (when the consumer set no timeout of its own).
    pub provider_timeouts: bool,
    /// Extra attempts (failover).
    pub retries: u32,
    /// Whether unknown outcomes may be retried.
    pub idempotent: bool,
    /// The load balancer, unless the reference has one of its own
    /// (`loadbalance_with`) and nothing names another.
    pub loadbalance: Balance,
    /// Parallel calls (forking), at least 1.
    pub forks: u32,
    /// Concurrency limit; 0 for none.
    pub actives: u32,
}

/// Which balancer picks the provider of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// One of the built-in balancers.
    Builtin(Balancer),
    /// The reference's own (`loadbalance_with`).
    Custom,
}

impl Settings {
    /// The settings of `consumer` (levels 1 to 4) over `published` (level 5),
    /// with the defaults where neither says anything.
    pub fn resolve(consumer: &MethodConfig, published: &MethodConfig, custom_balancer: bool) -> Settings {
        let loadbalance = match consumer.loadbalance {
            Some(kind) => Balance::Builtin(kind),
            None if custom_balancer => Balance::Custom,
            None => Balance::Builtin(published.loadbalance.unwrap_or(Balancer::Random)),
        };
        Settings {
            timeout: consumer.timeout.or(published.timeout).unwrap_or(DEFAULT_TIMEOUT),
            attempt_timeout: consumer.attempt_timeout,
            provider_timeouts: consumer.timeout.is_none(),
            retries: consumer.retries.unwrap_or(DEFAULT_RETRIES),
            idempotent: consumer.is_idempotent(),
            loadbalance,
            forks: consumer.forks.unwrap_or(DEFAULT_FORKS).max(1),
            actives: consumer.actives.unwrap_or(0),
        }
    }

    /// Whether this call's balancer reads response times (so each attempt
    /// is timed).
    pub fn times_attempts(&self) -> bool {
        matches!(
            self.loadbalance,
            Balance::Builtin(Balancer::ShortestResponse | Balancer::P2c) | Balance::Custom
        )
    }
}

/// The consumer's settings of a method (levels 1 to 4): the consumer's
/// setting for the method over the method's declaration, over the reference,
/// over the consumer's defaults.
pub fn consumer_side(
    method: Option<&MethodConfig>,
    declared: &MethodConfig,
    reference: &MethodConfig,
    consumer: &MethodConfig,
) -> MethodConfig {
    let declared = declared.or(*reference).or(*consumer);
    match method {
        Some(method) => method.or(declared),
        None => declared,
    }
}

/// What the current providers publish (level 5), from what each publishes
/// for the method ([`provider_defaults`]), by the rule in the module docs: the
/// largest timeout, the most common balancer.
pub fn published(each: impl IntoIterator<Item = MethodConfig>) -> MethodConfig {
    let mut timeout: Option<Duration> = None;
    let mut votes = [0usize; Balancer::ALL.len()];
    for own in each {
        timeout = timeout.max(own.timeout);
        if let Some(kind) = own.loadbalance
            && let Some(slot) = Balancer::ALL.iter().position(|k| *k == kind)
        {
            votes[slot] += 1;
        }
    }
    let most = votes.iter().copied().max().unwrap_or(0);
    let loadbalance = (most > 0)
        .then(|| votes.iter().position(|v| *v == most).map(|i| Balancer::ALL[i]))
        .flatten();
    MethodConfig {
        timeout,
        loadbalance,
        ..MethodConfig::new()
    }
}

/// What one provider URL publishes for `method`: its timeout and load
/// balancer (method-level parameters over interface-level ones). Unparsable
/// values are ignored. Retries and the cluster policy are never taken from a
/// provider.
pub fn provider_defaults(url: &Url, method: &str) -> MethodConfig {
    let param = |key: &str| {
        if method.is_empty() {
            url.param(key)
        } else {
            url.param(&format!("{method}.{key}")).or_else(|| url.param(key))
        }
    };
    let timeout = param(keys::TIMEOUT)
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let loadbalance = param(keys::LOADBALANCE).and_then(|name| name.parse().ok());
    MethodConfig {
        timeout,
        loadbalance,
        ..MethodConfig::new()
    }
}

/// The cluster policy of a method's consumer-side settings (default failover).
pub fn policy_of(consumer: &MethodConfig) -> ClusterPolicy {
    consumer.cluster.unwrap_or(ClusterPolicy::Failover)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn resolve_one(consumer: &MethodConfig, provider: Option<&Url>, method: &str) -> Settings {
        let published = provider.map(|u| provider_defaults(u, method)).unwrap_or_default();
        Settings::resolve(consumer, &published, false)
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let e = resolve_one(&MethodConfig::new(), None, "m");
        assert_eq!(e.timeout, DEFAULT_TIMEOUT);
        assert_eq!(e.retries, 2);
        assert!(e.idempotent);
        assert_eq!(e.loadbalance, Balance::Builtin(Balancer::Random));
        assert_eq!(e.forks, 2);
        assert_eq!(e.actives, 0);
        assert_eq!(e.attempt_timeout, None);
        assert!(e.provider_timeouts);
        assert_eq!(policy_of(&MethodConfig::new()), ClusterPolicy::Failover);
    }

    #[test]
    fn provider_publishes_timeout_and_balancer_method_level_first() {
        let p = url(
            "rpc://h:1/a.B?timeout=700&loadbalance=leastactive&sayHello.timeout=300&retries=9&cluster=broadcast&forks=7",
        );
        let e = resolve_one(&MethodConfig::new(), Some(&p), "sayHello");
        assert_eq!(e.timeout, Duration::from_millis(300));
        assert_eq!(e.loadbalance, Balance::Builtin(Balancer::LeastActive));
        // Retries, forks and the policy are the consumer's only.
        assert_eq!(e.retries, 2);
        assert_eq!(e.forks, 2);
        assert_eq!(provider_defaults(&p, "sayHello").cluster, None);
        let other = resolve_one(&MethodConfig::new(), Some(&p), "other");
        assert_eq!(other.timeout, Duration::from_millis(700));
    }

    #[test]
    fn consumer_beats_provider() {
        let p = url("rpc://h:1/a.B?timeout=700&loadbalance=leastactive");
        let consumer = MethodConfig::new()
            .with_timeout(Duration::from_millis(50))
            .with_loadbalance(Balancer::RoundRobin);
        let e = resolve_one(&consumer, Some(&p), "m");
        assert_eq!(e.timeout, Duration::from_millis(50));
        assert_eq!(e.loadbalance, Balance::Builtin(Balancer::RoundRobin));
        assert!(
            !e.provider_timeouts,
            "the consumer's own timeout is not capped by providers"
        );
    }

    #[test]
    fn a_custom_balancer_stands_unless_a_level_names_a_builtin() {
        let published = MethodConfig::new().with_loadbalance(Balancer::LeastActive);
        assert_eq!(
            Settings::resolve(&MethodConfig::new(), &published, true).loadbalance,
            Balance::Custom
        );
        let named = MethodConfig::new().with_loadbalance(Balancer::P2c);
        assert_eq!(
            Settings::resolve(&named, &published, true).loadbalance,
            Balance::Builtin(Balancer::P2c)
        );
    }

    #[test]
    fn garbage_in_a_provider_url_is_ignored() {
        let p = url("rpc://h:1/a.B?timeout=soon&loadbalance=fastest");
        let e = resolve_one(&MethodConfig::new(), Some(&p), "m");
        assert_eq!(e.timeout, DEFAULT_TIMEOUT);
        assert_eq!(e.loadbalance, Balance::Builtin(Balancer::Random));
    }

    #[test]
    fn levels_merge_strongest_first() {
        let method = MethodConfig::new().with_retries(0);
        let declared = MethodConfig::new()
            .with_timeout(Duration::from_millis(300))
            .with_retries(5);
        let reference = MethodConfig::new()
            .with_timeout(Duration::from_secs(2))
            .with_forks(4)
            .with_retries(7);
        let consumer = MethodConfig::new().with_forks(9).with_actives(3);
        let merged = consumer_side(Some(&method), &declared, &reference, &consumer);
        assert_eq!(merged.retries, Some(0), "the consumer's method setting wins");
        assert_eq!(merged.timeout, Some(Duration::from_millis(300)), "then the declaration");
        assert_eq!(merged.forks, Some(4), "then the reference");
        assert_eq!(merged.actives, Some(3), "then the consumer");
        let e = Settings::resolve(&merged, &MethodConfig::new(), false);
        assert_eq!(e.forks, 4);
        let none = Settings::resolve(&MethodConfig::new().with_forks(0), &MethodConfig::new(), false);
        assert_eq!(none.forks, 1, "at least one fork");
    }
}
