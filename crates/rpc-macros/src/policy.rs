//! The named choices of `#[rpc(cluster = "...", loadbalance = "...")]`.
//!
//! The macro checks the names at compile time and writes the canonical one
//! into the method's descriptor parameters, where `rpc-cluster` parses it into
//! its `ClusterPolicy` or `Balancer`. A proc-macro crate cannot depend on
//! `rpc-cluster`, so Dubbo's names are listed here; the expansion tests check
//! that every one of them parses there.

use crate::naming::suggest;

/// A setting whose values are chosen by name.
pub(crate) struct NamedEnum {
    /// What a value is called in messages, e.g. "cluster policy".
    pub(crate) what: &'static str,
    /// Each value's canonical name, in `rpc-cluster`'s declaration order.
    values: &'static [&'static str],
}

/// `rpc_cluster::ClusterPolicy`.
pub(crate) const CLUSTER_POLICY: NamedEnum = NamedEnum {
    what: "cluster policy",
    values: &["failover", "failfast", "failsafe", "failback", "forking", "broadcast"],
};

/// `rpc_cluster::Balancer`.
pub(crate) const LOAD_BALANCER: NamedEnum = NamedEnum {
    what: "load balancer",
    values: &[
        "random",
        "roundrobin",
        "leastactive",
        "shortestresponse",
        "consistenthash",
        "p2c",
    ],
};

impl NamedEnum {
    /// The canonical name `text` stands for, compared as `rpc-cluster` does
    /// when parsing: ignoring case, surrounding spaces, `-` and `_`
    /// (`"Fail_Fast"` is `failfast`).
    pub(crate) fn canonical(&self, text: &str) -> Option<&'static str> {
        let wanted = normalize(text);
        self.values.iter().copied().find(|name| *name == wanted)
    }

    /// What to say when `text` names no variant: the valid names, after a
    /// suggestion for a typo, or instead `hint` when given.
    pub(crate) fn unknown_message(&self, text: &str, hint: Option<String>) -> String {
        let names: Vec<&str> = self.values.to_vec();
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
        assert_eq!(CLUSTER_POLICY.canonical("failfast"), Some("failfast"));
        assert_eq!(CLUSTER_POLICY.canonical("Fail_Fast"), Some("failfast"));
        assert_eq!(CLUSTER_POLICY.canonical("FAIL-OVER"), Some("failover"));
        assert_eq!(LOAD_BALANCER.canonical("least_active"), Some("leastactive"));
        assert_eq!(LOAD_BALANCER.canonical("RoundRobin"), Some("roundrobin"));
        assert_eq!(LOAD_BALANCER.canonical("consistent-hash"), Some("consistenthash"));
        assert_eq!(LOAD_BALANCER.canonical("P2C"), Some("p2c"));
        assert_eq!(LOAD_BALANCER.canonical(""), None);
        assert_eq!(CLUSTER_POLICY.canonical("random"), None);
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
