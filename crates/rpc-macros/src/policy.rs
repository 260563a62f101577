//! The named choices of `#[rpc(cluster = "...", loadbalance = "...")]`.
//!
//! A proc-macro crate cannot depend on `rpc_core`, so the names (Dubbo's) and
//! the variants they map to are listed here; they mirror `rpc_core::ClusterPolicy`
//! and `rpc_core::LoadBalancer`, which the expansion tests compare against.

use crate::naming::suggest;

/// An enum of `rpc_core` whose values are chosen by name (the generated code
/// names the enum itself, in `expand::descriptor`).
pub(crate) struct NamedEnum {
    /// What a value is called in messages, e.g. "cluster policy".
    pub(crate) what: &'static str,
    /// Each value's name and variant, in declaration order.
    values: &'static [(&'static str, &'static str)],
}

/// `rpc_core::ClusterPolicy`.
pub(crate) const CLUSTER_POLICY: NamedEnum = NamedEnum {
    what: "cluster policy",
    values: &[
        ("failover", "Failover"),
        ("failfast", "Failfast"),
        ("failsafe", "Failsafe"),
        ("failback", "Failback"),
        ("forking", "Forking"),
        ("broadcast", "Broadcast"),
    ],
};

/// `rpc_core::LoadBalancer`.
pub(crate) const LOAD_BALANCER: NamedEnum = NamedEnum {
    what: "load balancer",
    values: &[
        ("random", "Random"),
        ("roundrobin", "RoundRobin"),
        ("leastactive", "LeastActive"),
        ("shortestresponse", "ShortestResponse"),
        ("consistenthash", "ConsistentHash"),
        ("p2c", "P2c"),
    ],
};

impl NamedEnum {
    /// The variant named `text`, compared as `rpc_core` does when parsing:
    /// ignoring case, surrounding spaces, `-` and `_` (`"Fail_Fast"` is `failfast`).
    pub(crate) fn variant(&self, text: &str) -> Option<&'static str> {
        let wanted = normalize(text);
        self.values
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, variant)| *variant)
    }

    /// What to say when `text` names no variant: the valid names, after a
    /// suggestion for a typo, or instead `hint` when given.
    pub(crate) fn unknown_message(&self, text: &str, hint: Option<String>) -> String {
        let names: Vec<&str> = self.values.iter().map(|(name, _)| *name).collect();
        let hint = match hint {
            Some(hint) => format!("{hint}; "),
            None => suggest(&normalize(text), &names)
                .map(|name| format!("did you mean \"{name}\"? "))
                .unwrap_or_default(),
        };
        format!(
            "unknown {} \"{text}\"; {hint}expected one of: {}",
            self.what,
            names.join(", ")
        )
    }
}

/// `text` lower-cased, without surrounding spaces, `-` or `_`.
fn normalize(text: &str) -> String {
    text.trim().to_ascii_lowercase().replace(['-', '_'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_loosely() {
        assert_eq!(CLUSTER_POLICY.variant("failfast"), Some("Failfast"));
        assert_eq!(CLUSTER_POLICY.variant("Fail_Fast"), Some("Failfast"));
        assert_eq!(CLUSTER_POLICY.variant("FAIL-OVER"), Some("Failover"));
        assert_eq!(LOAD_BALANCER.variant("least_active"), Some("LeastActive"));
        assert_eq!(LOAD_BALANCER.variant("RoundRobin"), Some("RoundRobin"));
        assert_eq!(LOAD_BALANCER.variant("consistent-hash"), Some("ConsistentHash"));
        assert_eq!(LOAD_BALANCER.variant("P2C"), Some("P2c"));
        assert_eq!(LOAD_BALANCER.variant(""), None);
        assert_eq!(CLUSTER_POLICY.variant("random"), None);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let message = CLUSTER_POLICY.unknown_message("failfas", None);
        assert_eq!(
            message,
            "unknown cluster policy \"failfas\"; did you mean \"failfast\"? expected one of: failover, failfast, \
             failsafe, failback, forking, broadcast"
        );
        let message = LOAD_BALANCER.unknown_message("fastest", None);
        assert!(!message.contains("did you mean"), "{message}");
        assert!(
            message.starts_with("unknown load balancer \"fastest\"; expected"),
            "{message}"
        );
        let message = LOAD_BALANCER.unknown_message("failfas", Some("a hint".into()));
        assert!(
            message.contains("\"failfas\"; a hint; expected one of: random,"),
            "{message}"
        );
    }
}
