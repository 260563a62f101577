//! What a consumer may set about a method's calls: [`MethodConfig`], with the
//! choices it names, [`ClusterPolicy`] and [`Balancer`].
//!
//! The same settings come from four places (see [`settings`](crate::settings)
//! for how they merge): the consumer's builders set a `MethodConfig` directly;
//! a method's declaration (`#[rpc(timeout = "300ms", cluster = "failfast")]`)
//! reaches the cluster as the Dubbo-style parameters of its
//! [`MethodDescriptor`], which [`MethodConfig::from_params`] reads once per
//! reference build. Core carries those parameters as text, so that it names no
//! cluster concept; the macro has checked them at compile time, and a
//! hand-written descriptor whose value does not parse is refused with the key
//! and the value, never half-read.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rpc_core::{ArgumentMask, MethodDescriptor};

/// The parameter names of a method's settings, Dubbo's where Dubbo has one.
/// They name descriptor parameters ([`MethodDescriptor::params`]) and, for
/// `timeout` and `loadbalance`, what a provider publishes in its URL.
pub mod keys {
    /// The call's budget, in milliseconds.
    pub const TIMEOUT: &str = rpc_core::url::keys::TIMEOUT;
    /// One attempt's budget, in milliseconds (ours; Dubbo has none).
    pub const ATTEMPT_TIMEOUT: &str = "attempt.timeout";
    /// Extra attempts after the first.
    pub const RETRIES: &str = "retries";
    /// `true` or `false` (ours; Dubbo has none).
    pub const IDEMPOTENT: &str = "idempotent";
    /// The fault-tolerance policy, by name.
    pub const CLUSTER: &str = "cluster";
    /// The load balancer, by name.
    pub const LOADBALANCE: &str = "loadbalance";
    /// Providers the forking policy calls at once (at least 1).
    pub const FORKS: &str = "forks";
    /// Most calls in flight at once (0: no limit).
    pub const ACTIVES: &str = "actives";
    /// The argument positions consistent hashing keys on, comma-separated (`0,2`).
    pub const HASH_ARGUMENTS: &str = "hash.arguments";

    /// Every key a method's settings may carry.
    pub const ALL: &[&str] = &[
        TIMEOUT,
        ATTEMPT_TIMEOUT,
        RETRIES,
        IDEMPOTENT,
        CLUSTER,
        LOADBALANCE,
        FORKS,
        ACTIVES,
        HASH_ARGUMENTS,
    ];
}

/// Per-method settings declared with `#[rpc(...)]` on a trait method, or set on
/// a reference or a consumer. `None` means "not set here": the next level
/// decides. The levels, strongest first: consumer method setting > method
/// declaration > reference > consumer defaults > the provider's URL (timeout,
/// load balancer only) > built-in defaults; [`settings`](crate::settings)
/// merges them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodConfig {
    /// How long a call may take, end to end, across all attempts.
    pub timeout: Option<Duration>,
    /// Longest one attempt may take (failover, forking, failback): an attempt
    /// still unanswered then counts as timed out and the policy moves on, while
    /// the call as a whole stays within `timeout`. Unset: an attempt may use
    /// all the time the call has left.
    pub attempt_timeout: Option<Duration>,
    /// Extra attempts after the first (failover); `Some(0)` disables retries.
    pub retries: Option<u32>,
    /// Whether running the method twice is harmless. Calls whose outcome is
    /// unknown (timeout, connection lost after sending) are retried only when
    /// this is true. `None` means the default: idempotent, as in Dubbo.
    pub idempotent: Option<bool>,
    /// The fault-tolerance policy (default failover).
    pub cluster: Option<ClusterPolicy>,
    /// The load balancer (default random).
    pub loadbalance: Option<Balancer>,
    /// Providers called in parallel by the forking policy (default 2).
    pub forks: Option<u32>,
    /// Most calls of the method in flight at once from this reference; further
    /// calls wait (up to their deadline) for a slot. 0 or unset: no limit.
    pub actives: Option<u32>,
    /// The arguments the consistent-hash balancer hashes (default: the first,
    /// as in Dubbo).
    pub hash_arguments: Option<ArgumentMask>,
}

impl MethodConfig {
    /// Nothing set.
    pub const fn new() -> Self {
        MethodConfig {
            timeout: None,
            attempt_timeout: None,
            retries: None,
            idempotent: None,
            cluster: None,
            loadbalance: None,
            forks: None,
            actives: None,
            hash_arguments: None,
        }
    }

    /// Sets the timeout.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the per-attempt timeout.
    pub const fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets the number of retries.
    pub const fn with_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Sets idempotence.
    pub const fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Sets the fault-tolerance policy.
    pub const fn with_cluster(mut self, cluster: ClusterPolicy) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Sets the load balancer.
    pub const fn with_loadbalance(mut self, loadbalance: Balancer) -> Self {
        self.loadbalance = Some(loadbalance);
        self
    }

    /// Sets the number of parallel calls of the forking policy.
    pub const fn with_forks(mut self, forks: u32) -> Self {
        self.forks = Some(forks);
        self
    }

    /// Sets the concurrency limit.
    pub const fn with_actives(mut self, actives: u32) -> Self {
        self.actives = Some(actives);
        self
    }

    /// Sets the arguments consistent hashing keys on, by position.
    pub const fn with_hash_arguments(mut self, positions: &[u8]) -> Self {
        self.hash_arguments = Some(ArgumentMask::of(positions));
        self
    }

    /// `self` where set, `fallback` elsewhere.
    pub const fn or(self, fallback: MethodConfig) -> MethodConfig {
        macro_rules! pick {
            ($field:ident) => {
                match self.$field {
                    Some(v) => Some(v),
                    None => fallback.$field,
                }
            };
        }
        MethodConfig {
            timeout: pick!(timeout),
            attempt_timeout: pick!(attempt_timeout),
            retries: pick!(retries),
            idempotent: pick!(idempotent),
            cluster: pick!(cluster),
            loadbalance: pick!(loadbalance),
            forks: pick!(forks),
            actives: pick!(actives),
            hash_arguments: pick!(hash_arguments),
        }
    }

    /// Whether unknown-outcome failures may be retried: explicitly idempotent, or
    /// unset (Dubbo's default).
    pub const fn is_idempotent(&self) -> bool {
        match self.idempotent {
            Some(i) => i,
            None => true,
        }
    }

    /// The settings a method declares: its descriptor's parameters
    /// ([`MethodDescriptor::params`], keys in [`keys`]).
    ///
    /// # Errors
    ///
    /// The first parameter that cannot be read, naming the method, the key
    /// and the value: an unknown key, a value of the wrong form, a zero
    /// timeout or fork count, an unknown policy or balancer, or a hashed
    /// position above 31 or repeated. Nothing is half-read.
    pub fn declared(method: &MethodDescriptor) -> Result<MethodConfig, String> {
        MethodConfig::from_params(method.params).map_err(|why| format!("method `{}` declares {why}", method.name))
    }

    /// The settings `params` (`(key, value)` pairs, keys in [`keys`]) name;
    /// errors as [`declared`](Self::declared)'s, without the method's name.
    fn from_params(params: &[(&str, &str)]) -> Result<MethodConfig, String> {
        let mut config = MethodConfig::new();
        for &(key, value) in params {
            read_param(&mut config, key, value.trim())
                .map_err(|why| format!("`{key}` = `{value}`, which cannot be used: {why}"))?;
        }
        Ok(config)
    }
}

/// Sets the field of `config` that `key` names from `value`.
fn read_param(config: &mut MethodConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        keys::TIMEOUT => config.timeout = Some(millis(value)?),
        keys::ATTEMPT_TIMEOUT => config.attempt_timeout = Some(millis(value)?),
        keys::RETRIES => config.retries = Some(count(value)?),
        keys::IDEMPOTENT => {
            config.idempotent = Some(match value {
                "true" => true,
                "false" => false,
                _ => return Err("expected `true` or `false`".into()),
            })
        }
        keys::CLUSTER => config.cluster = Some(value.parse()?),
        keys::LOADBALANCE => config.loadbalance = Some(value.parse()?),
        keys::FORKS => match count(value)? {
            0 => return Err("the forking policy needs at least 1 fork".into()),
            forks => config.forks = Some(forks),
        },
        keys::ACTIVES => config.actives = Some(count(value)?),
        keys::HASH_ARGUMENTS => config.hash_arguments = Some(positions(value)?),
        _ => return Err(format!("unknown key (expected one of: {})", keys::ALL.join(", "))),
    }
    Ok(())
}

/// A positive number of milliseconds.
fn millis(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("a zero timeout would fail every call".into()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err("expected a whole number of milliseconds".into()),
    }
}

/// A count that fits in 32 bits.
fn count(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| "expected a whole number from 0 to 4294967295".into())
}

/// Distinct argument positions from 0 to 31, comma-separated.
fn positions(value: &str) -> Result<ArgumentMask, String> {
    let mut seen: Vec<u8> = Vec::new();
    for item in value.split(',') {
        let position = item
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|&p| p < 32)
            .ok_or_else(|| format!("`{}` is not an argument position from 0 to 31", item.trim()))?;
        if seen.contains(&position) {
            return Err(format!("position {position} is listed twice"));
        }
        seen.push(position);
    }
    Ok(ArgumentMask::of(&seen))
}

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in URLs and configuration (Dubbo's).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Parses a name ignoring case, surrounding spaces, `-` and `_`
        /// (`"Fail_Fast"`, `"least-active"`), as `#[rpc(..)]` does.
        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == wanted)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                        format!("unknown {} `{s}` (expected one of: {})", $what, names.join(", "))
                    })
            }
        }
    };
}

named_enum! {
    /// What the cluster does when a call fails (Dubbo's `cluster`).
    pub enum ClusterPolicy ("cluster policy") {
        /// Retry on other providers (`retries` extra attempts). The default.
        Failover = "failover",
        /// One attempt; its error is the call's.
        Failfast = "failfast",
        /// On failure, log and return the return type's zero value.
        Failsafe = "failsafe",
        /// Like failsafe, and retry the call in the background.
        Failback = "failback",
        /// Call `forks` providers at once; the first success wins.
        Forking = "forking",
        /// Call every provider; fail if any fails.
        Broadcast = "broadcast",
    }
}

named_enum! {
    /// Which built-in load balancer picks a provider for a call (Dubbo's
    /// `loadbalance`); a balancer of one's own implements
    /// [`LoadBalance`](crate::LoadBalance).
    pub enum Balancer ("load balancer") {
        /// Weighted random with warm-up. The default.
        Random = "random",
        /// Smooth weighted round robin.
        RoundRobin = "roundrobin",
        /// Fewest calls in flight.
        LeastActive = "leastactive",
        /// Lowest expected response time.
        ShortestResponse = "shortestresponse",
        /// The same arguments go to the same provider.
        ConsistentHash = "consistenthash",
        /// Power of two choices over peak-EWMA latency.
        P2c = "p2c",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_round_trip_and_parse_loosely() {
        for policy in ClusterPolicy::ALL {
            assert_eq!(policy.name().parse::<ClusterPolicy>().unwrap(), *policy);
            assert_eq!(policy.to_string(), policy.name());
        }
        for balancer in Balancer::ALL {
            assert_eq!(balancer.name().parse::<Balancer>().unwrap(), *balancer);
        }
        assert_eq!(" Fail_Fast ".parse::<ClusterPolicy>().unwrap(), ClusterPolicy::Failfast);
        assert_eq!("least-active".parse::<Balancer>().unwrap(), Balancer::LeastActive);
        assert_eq!("P2C".parse::<Balancer>().unwrap(), Balancer::P2c);
        let error = "fastest".parse::<Balancer>().unwrap_err();
        assert_eq!(
            error,
            "unknown load balancer `fastest` (expected one of: random, roundrobin, leastactive, \
             shortestresponse, consistenthash, p2c)"
        );
    }

    /// What `#[rpc(timeout = "300ms", retries = 0, idempotent = false,
    /// cluster = "failfast", loadbalance = "consistenthash", forks = 3,
    /// actives = 10, attempt_timeout = "1m", hash_arguments = [0, 2])]` emits.
    #[test]
    fn every_declared_param_is_read() {
        let params = [
            ("timeout", "300"),
            ("attempt.timeout", "60000"),
            ("retries", "0"),
            ("idempotent", "false"),
            ("cluster", "failfast"),
            ("loadbalance", "consistenthash"),
            ("forks", "3"),
            ("actives", "10"),
            ("hash.arguments", "0,2"),
        ];
        assert_eq!(
            MethodConfig::from_params(&params).unwrap(),
            MethodConfig::new()
                .with_timeout(Duration::from_millis(300))
                .with_attempt_timeout(Duration::from_secs(60))
                .with_retries(0)
                .with_idempotent(false)
                .with_cluster(ClusterPolicy::Failfast)
                .with_loadbalance(Balancer::ConsistentHash)
                .with_forks(3)
                .with_actives(10)
                .with_hash_arguments(&[0, 2])
        );
        assert_eq!(MethodConfig::from_params(&[]).unwrap(), MethodConfig::new());
        assert_eq!(
            MethodConfig::from_params(&[("actives", "0"), ("idempotent", "true")]).unwrap(),
            MethodConfig::new().with_actives(0).with_idempotent(true)
        );
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key_and_value() {
        let cases: &[((&str, &str), &str)] = &[
            (("timeout", "soon"), "whole number of milliseconds"),
            (("timeout", "0"), "zero timeout"),
            (("attempt.timeout", "-5"), "whole number of milliseconds"),
            (("retries", "many"), "whole number"),
            (("retries", "4294967296"), "whole number"),
            (("idempotent", "yes"), "`true` or `false`"),
            (("cluster", "fastest"), "unknown cluster policy `fastest`"),
            (("cluster", "random"), "unknown cluster policy `random`"),
            (("loadbalance", "failfast"), "unknown load balancer `failfast`"),
            (("forks", "0"), "at least 1 fork"),
            (("actives", "-1"), "whole number"),
            (("hash.arguments", "0,32"), "`32` is not an argument position"),
            (("hash.arguments", ""), "`` is not an argument position"),
            (("hash.arguments", "1,1"), "position 1 is listed twice"),
            (
                ("hash_arguments", "0"),
                "unknown key (expected one of: timeout, attempt.timeout,",
            ),
        ];
        for ((key, value), why) in cases {
            let error = MethodConfig::from_params(&[("retries", "1"), (key, value)]).unwrap_err();
            assert!(
                error.starts_with(&format!("`{key}` = `{value}`, which cannot be used: ")),
                "{error}"
            );
            assert!(error.contains(why), "{key}={value}: {error}");
        }
    }

    #[test]
    fn a_descriptor_error_names_the_method() {
        let method = MethodDescriptor::new("placeOrder", "place_order").with_params(&[("retries", "x")]);
        let error = MethodConfig::declared(&method).unwrap_err();
        assert!(
            error.starts_with("method `placeOrder` declares `retries` = `x`, which cannot be used"),
            "{error}"
        );
    }
}
