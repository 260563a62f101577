//! Static descriptions of a service and its methods, emitted by `#[service]`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::hash_key::ArgumentMask;

/// Per-method settings declared with `#[rpc(...)]` on a trait method, or set on
/// a reference or a consumer. `None` means "not set here": the next level
/// decides. The levels, strongest first: consumer method setting > method
/// declaration > reference > consumer defaults > the provider's URL (timeout,
/// load balancer only) > built-in defaults. `rpc_cluster::config` computes the
/// final values.
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
    pub loadbalance: Option<LoadBalancer>,
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
    pub const fn with_loadbalance(mut self, loadbalance: LoadBalancer) -> Self {
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
    /// How the cluster picks a provider for a call (Dubbo's `loadbalance`).
    pub enum LoadBalancer ("load balancer") {
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

/// One method of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDescriptor {
    /// The wire name (lowerCamelCase of the Rust name unless overridden).
    pub name: &'static str,
    /// The Rust name.
    pub rust_name: &'static str,
    /// Settings declared on the method.
    pub config: MethodConfig,
}

impl MethodDescriptor {
    /// A method with no settings.
    pub const fn new(name: &'static str, rust_name: &'static str) -> Self {
        MethodDescriptor {
            name,
            rust_name,
            config: MethodConfig::new(),
        }
    }

    /// Sets the method's settings.
    pub const fn with_config(mut self, config: MethodConfig) -> Self {
        self.config = config;
        self
    }
}

/// A service: its interface name, default version and group, and methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The interface name, e.g. `org.example.Greeter`.
    pub interface: &'static str,
    /// The version declared on the trait, if any.
    pub version: Option<&'static str>,
    /// The group declared on the trait, if any.
    pub group: Option<&'static str>,
    /// The methods, in declaration order.
    pub methods: &'static [MethodDescriptor],
}

impl ServiceDescriptor {
    /// A service with no version, group or methods.
    pub const fn new(interface: &'static str) -> Self {
        ServiceDescriptor {
            interface,
            version: None,
            group: None,
            methods: &[],
        }
    }

    /// Sets the default version.
    pub const fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the default group.
    pub const fn with_group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self
    }

    /// Sets the methods.
    pub const fn with_methods(mut self, methods: &'static [MethodDescriptor]) -> Self {
        self.methods = methods;
        self
    }

    /// The method with wire name `name`.
    pub fn method(&self, name: &str) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The wire names of all methods, comma-separated (the `methods` URL parameter).
    pub fn method_names(&self) -> String {
        self.methods.iter().map(|m| m.name).collect::<Vec<_>>().join(",")
    }
}
