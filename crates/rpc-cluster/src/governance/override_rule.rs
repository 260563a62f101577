//! Override rules (Dubbo's configurators): parameters an operator sets on a
//! running estate, for the consumers (`timeout`, `retries`, `loadbalance`) or
//! for the provider URLs consumers see (`weight`, `disabled`, `timeout`).
//!
//! Two forms, as in Dubbo: the v3 YAML (`configVersion`, `scope`, `key`,
//! `enabled`, `configs: [{side, addresses, providerAddresses, services,
//! applications, parameters, match, enabled}]`) and the legacy
//! `override://host[:port]/interface?category=configurators&...` URL, where
//! every parameter that is not a condition (`category`, `dynamic`, `enabled`,
//! `application`, `side`, `group`, `version`, `~key`, ...) is set.
//!
//! Which URL a config applies to (Dubbo's `AbstractConfigurator`):
//! * `side: consumer`: the consumer, when an address is `0.0.0.0` (the
//!   default) or the consumer's host, and `applications` (if any) names the
//!   consumer's application;
//! * `side: provider`: each provider URL whose host an address names
//!   (`0.0.0.0` for all; a port, if given, must match) and whose address
//!   `providerAddresses` (if any) lists, of an application `applications`
//!   (if any) names;
//! * legacy URLs (no `configVersion`, no `side`): with a port, the provider
//!   at that host and port; without, every provider and the consumer when the
//!   host is `0.0.0.0`, the consumer alone when it is the consumer's host.

use std::collections::BTreeMap;

use rpc_core::Url;
use serde::Deserialize;

use super::condition::yes;

/// Which side a config sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The consumer's own settings.
    Consumer,
    /// The provider URLs the consumer sees.
    Provider,
    /// A legacy URL: either, by its address (see the module docs).
    Legacy,
}

/// A string condition of a `match` block (Dubbo's `StringMatch`): every
/// condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatch {
    /// Equal to this.
    #[serde(default)]
    pub exact: Option<String>,
    /// Starting with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A glob (`*` any, `a*`, `*b`, `a*b`).
    #[serde(default)]
    pub wildcard: Option<String>,
    /// Present and not empty.
    #[serde(default)]
    pub noempty: Option<String>,
    /// Absent or empty.
    #[serde(default)]
    pub empty: Option<String>,
    /// Matching this regular expression as a whole (Java's `Pattern.matches`).
    #[serde(default)]
    pub regex: Option<MatchRegex>,
}

/// A `regex` condition, compiled when the rule is read (a pattern that does
/// not compile makes the rule unreadable, so the last good one stays). It
/// must match the whole value, as Java's `Pattern.matches` does. Matching
/// takes linear time, whatever the pattern.
#[derive(Clone, Debug)]
pub struct MatchRegex(regex::Regex);

impl MatchRegex {
    /// The pattern as written in the rule.
    pub fn as_str(&self) -> &str {
        let anchored = self.0.as_str();
        anchored
            .strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(anchored)
    }
}

impl PartialEq for MatchRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for MatchRegex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(MatchRegex)
            .map_err(|e| serde::de::Error::custom(format!("regex `{pattern}` does not compile: {e}")))
    }
}

impl StringMatch {
    fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        self.exact.as_deref().is_none_or(|e| e == v)
            && self.prefix.as_deref().is_none_or(|p| v.starts_with(p))
            && self
                .wildcard
                .as_deref()
                .is_none_or(|w| super::pattern::Pattern::compile(w, &Url::new("x", "", 0)).matches(v))
            && self.noempty.as_ref().is_none_or(|_| !v.is_empty())
            && self.empty.as_ref().is_none_or(|_| v.is_empty())
            && self.regex.as_ref().is_none_or(|r| r.0.is_match(v))
    }
}

/// `address:` of a `match` block.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressMatch {
    /// A glob over `host:port` or `host`.
    #[serde(default)]
    pub wildcard: Option<String>,
    /// Exactly this `host:port` or `host`.
    #[serde(default)]
    pub exact: Option<String>,
}

impl AddressMatch {
    fn matches(&self, host: &str, address: &str) -> bool {
        let glob = |w: &str| {
            let p = super::pattern::Pattern::compile(w, &Url::new("x", "", 0));
            p.matches(address) || p.matches(host)
        };
        self.exact.as_deref().is_none_or(|e| e == address || e == host) && self.wildcard.as_deref().is_none_or(glob)
    }
}

/// A list condition: one of these.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMatch {
    /// Matches when one of them does.
    #[serde(default)]
    pub oneof: Vec<StringMatch>,
}

/// A parameter condition.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamMatch {
    /// The URL parameter.
    pub key: String,
    /// Its condition.
    pub value: StringMatch,
}

/// A config's `match` block (Dubbo 3.1's `ConditionMatch`), read against the
/// URL the config would set.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Match {
    /// The URL's address.
    #[serde(default)]
    pub address: Option<AddressMatch>,
    /// The provider's address (provider side).
    #[serde(default)]
    pub provider_address: Option<AddressMatch>,
    /// The service (interface).
    #[serde(default)]
    pub service: Option<ListMatch>,
    /// The application.
    #[serde(default)]
    pub app: Option<ListMatch>,
    /// Parameters.
    #[serde(default)]
    pub param: Vec<ParamMatch>,
}

impl Match {
    fn matches(&self, url: &Url) -> bool {
        let address = url.address();
        let list = |m: &Option<ListMatch>, v: Option<&str>| {
            m.as_ref()
                .is_none_or(|m| m.oneof.is_empty() || m.oneof.iter().any(|s| s.matches(v)))
        };
        self.address.as_ref().is_none_or(|a| a.matches(url.host(), &address))
            && self
                .provider_address
                .as_ref()
                .is_none_or(|a| a.matches(url.host(), &address))
            && list(&self.service, url.interface())
            && list(&self.app, url.param("application"))
            && self.param.iter().all(|p| p.value.matches(url.param(&p.key)))
    }
}

/// One config of a rule, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Configurator {
    /// Which side it sets.
    pub side: Side,
    /// Hosts (`0.0.0.0` any), each maybe with `:port`.
    pub addresses: Vec<String>,
    /// Provider `host:port`s it is limited to (empty: any).
    pub provider_addresses: Vec<String>,
    /// Interfaces it is limited to (empty: any); application-scope rules.
    pub services: Vec<String>,
    /// Applications it is limited to (empty: any).
    pub applications: Vec<String>,
    /// Version and group a legacy URL names, if any (`*` any).
    pub version: Option<String>,
    /// See `version`.
    pub group: Option<String>,
    /// `~key` conditions of a legacy URL: the URL's `key` must equal the value.
    pub conditions: Vec<(String, String)>,
    /// What it sets.
    pub parameters: BTreeMap<String, String>,
    /// The `match` block, if any.
    pub matcher: Option<Match>,
}

impl Configurator {
    fn host_port_matches(&self, host: &str, port: u16, any_port: bool) -> bool {
        self.addresses.iter().any(|a| {
            let (h, p) = split_address(a);
            (h == "0.0.0.0" || h == "*" || h == host) && (any_port || p.is_none_or(|p| p == port))
        })
    }

    fn common_matches(&self, url: &Url) -> bool {
        let application = url.param("application").unwrap_or("");
        (self.applications.is_empty() || self.applications.iter().any(|a| a == "*" || a == application))
            && (self.services.is_empty()
                || self
                    .services
                    .iter()
                    .any(|s| s == "*" || Some(s.as_str()) == url.interface()))
            && self.conditions.iter().all(|(k, v)| url.param(k) == Some(v.as_str()))
            && self.matcher.as_ref().is_none_or(|m| m.matches(url))
    }

    /// Whether this config sets the provider at `url`.
    pub fn applies_to_provider(&self, url: &Url) -> bool {
        let host_port = match self.side {
            Side::Consumer => return false,
            Side::Provider => self.host_port_matches(url.host(), url.port(), false),
            Side::Legacy => self.addresses.iter().any(|a| {
                let (h, p) = split_address(a);
                match p {
                    Some(p) => p == url.port() && (h == "0.0.0.0" || h == url.host()),
                    None => h == "0.0.0.0",
                }
            }),
        };
        let address = url.address();
        // Dubbo's `providerAddresses`: `host:port`, `host`, `0.0.0.0`, `0.0.0.0:*`, `0.0.0.0:port`.
        let any_port = format!("0.0.0.0:{}", url.port());
        host_port
            && (self.provider_addresses.is_empty()
                || self
                    .provider_addresses
                    .iter()
                    .any(|a| a == &address || a == url.host() || a == "0.0.0.0" || a == "0.0.0.0:*" || *a == any_port))
            && self.common_matches(url)
    }

    /// Whether this config sets the consumer at `consumer`.
    pub fn applies_to_consumer(&self, consumer: &Url) -> bool {
        let host = match self.side {
            Side::Provider => return false,
            Side::Consumer => self.host_port_matches(consumer.host(), 0, true),
            Side::Legacy => self.addresses.iter().any(|a| {
                let (h, p) = split_address(a);
                p.is_none() && (h == "0.0.0.0" || h == consumer.host())
            }),
        };
        host && self.provider_addresses.is_empty() && self.common_matches(consumer)
    }
}

fn split_address(address: &str) -> (&str, Option<u16>) {
    match address.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse::<u16>() {
            Ok(0) => (h, None),
            Ok(p) => (h, Some(p)),
            Err(_) => (address, None),
        },
        _ => (address, None),
    }
}

/// An override rule: one node's configs.
#[derive(Clone, Debug, PartialEq)]
pub struct OverrideRule {
    /// The rule's `key`, for messages.
    pub key: String,
    /// Whether the rule is in force.
    pub enabled: bool,
    /// Its configs, in order (later ones win on a shared parameter).
    pub configs: Vec<Configurator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Yaml {
    #[serde(default)]
    config_version: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    configs: Vec<YamlConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct YamlConfig {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    side: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    provider_addresses: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    applications: Vec<String>,
    #[serde(default)]
    parameters: BTreeMap<String, serde_norway::Value>,
    #[serde(default, rename = "match")]
    matcher: Option<Match>,
}

/// Legacy URL parameters that select rather than set.
const CONDITION_KEYS: &[&str] = &[
    "category",
    "check",
    "dynamic",
    "enabled",
    "group",
    "version",
    "application",
    "side",
    "configVersion",
    "compatible_config",
    "interface",
    "interfaces",
    "providerAddresses",
    "anyhost",
];

impl OverrideRule {
    /// Parses an override rule: Dubbo 3's YAML or a legacy `override://` URL.
    pub fn parse(text: &str) -> Result<OverrideRule, String> {
        let trimmed = text.trim();
        if trimmed.starts_with("override://") {
            return Self::parse_url(trimmed);
        }
        let yaml: Yaml = serde_norway::from_str(text).map_err(|e| format!("not an override rule: {e}"))?;
        if let Some(version) = &yaml.config_version
            && !version.starts_with("v3.")
            && !version.starts_with("v2.7")
        {
            return Err(format!("configVersion `{version}` is not supported (v2.7, v3.x are)"));
        }
        let scope = yaml.scope.as_deref().unwrap_or("service");
        if scope != "service" && scope != "application" {
            return Err(format!("scope `{scope}` is neither `service` nor `application`"));
        }
        let mut configs = Vec::new();
        for (i, config) in yaml.configs.into_iter().enumerate() {
            let _ = config.kind;
            if !config.enabled {
                continue;
            }
            let side = match config.side.as_deref() {
                Some("consumer") => Side::Consumer,
                Some("provider") | None => Side::Provider,
                Some(other) => return Err(format!("configs[{i}].side `{other}` is neither consumer nor provider")),
            };
            let mut parameters = BTreeMap::new();
            for (key, value) in config.parameters {
                let text = match value {
                    serde_norway::Value::String(s) => s,
                    serde_norway::Value::Number(n) => n.to_string(),
                    serde_norway::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "configs[{i}].parameters.{key} is not a string, number or boolean: {other:?}"
                        ));
                    }
                };
                parameters.insert(key, text);
            }
            if parameters.is_empty() {
                return Err(format!("configs[{i}] sets no parameters"));
            }
            let addresses = if config.addresses.is_empty() {
                vec!["0.0.0.0".to_string()]
            } else {
                config.addresses
            };
            configs.push(Configurator {
                side,
                addresses,
                provider_addresses: config.provider_addresses,
                services: if scope == "application" {
                    config.services
                } else {
                    Vec::new()
                },
                applications: config.applications,
                version: None,
                group: None,
                conditions: Vec::new(),
                parameters,
                matcher: config.matcher,
            });
        }
        Ok(OverrideRule {
            key: yaml.key.unwrap_or_default(),
            enabled: yaml.enabled,
            configs,
        })
    }

    fn parse_url(text: &str) -> Result<OverrideRule, String> {
        let url = Url::parse(text).map_err(|e| e.to_string())?;
        if url.host().is_empty() {
            return Err("an override:// URL needs a host (`0.0.0.0` for every one)".into());
        }
        let enabled = match url.param("enabled") {
            None => true,
            Some(v) => v
                .parse::<bool>()
                .map_err(|_| format!("`enabled={v}` is not true or false"))?,
        };
        let mut parameters = BTreeMap::new();
        let mut conditions = Vec::new();
        for (key, value) in url.params() {
            if let Some(condition) = key.strip_prefix('~') {
                conditions.push((condition.to_string(), value.clone()));
            } else if !CONDITION_KEYS.contains(&key.as_str()) {
                parameters.insert(key.clone(), value.clone());
            }
        }
        let side = match url.param("side") {
            Some("consumer") => Side::Consumer,
            Some("provider") => Side::Provider,
            _ => Side::Legacy,
        };
        let address = if url.port() == 0 {
            url.host().to_string()
        } else {
            url.address()
        };
        let list = |key: &str| -> Vec<String> {
            url.param(key)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let interface = url.interface().unwrap_or_default().to_string();
        Ok(OverrideRule {
            key: interface.clone(),
            enabled,
            configs: vec![Configurator {
                side,
                addresses: vec![address],
                provider_addresses: list("providerAddresses"),
                services: if interface.is_empty() || interface == "*" {
                    Vec::new()
                } else {
                    vec![interface]
                },
                applications: list("application"),
                version: url.param("version").map(str::to_string),
                group: url.param("group").map(str::to_string),
                conditions,
                parameters,
                matcher: None,
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn reads_dubbos_v3_examples() {
        let yaml = r#"
configVersion: v3.0
scope: service
key: org.apache.dubbo.samples.DemoService
enabled: true
configs:
  - addresses: ["0.0.0.0"]
    side: consumer
    parameters:
      timeout: 6000
  - addresses: ["10.0.0.5:20880"]
    side: provider
    parameters:
      weight: 300
      disabled: false
"#;
        let rule = OverrideRule::parse(yaml).unwrap();
        assert!(rule.enabled);
        assert_eq!(rule.configs.len(), 2);
        let consumer = url("consumer://10.0.0.9/org.apache.dubbo.samples.DemoService?application=shop");
        assert!(rule.configs[0].applies_to_consumer(&consumer));
        assert!(!rule.configs[0].applies_to_provider(&url("rpc://10.0.0.5:20880/x")));
        assert_eq!(rule.configs[0].parameters["timeout"], "6000");
        assert!(rule.configs[1].applies_to_provider(&url("rpc://10.0.0.5:20880/x")));
        assert!(!rule.configs[1].applies_to_provider(&url("rpc://10.0.0.5:20881/x")));
        assert!(!rule.configs[1].applies_to_consumer(&consumer));
        assert_eq!(rule.configs[1].parameters["weight"], "300");
        assert_eq!(rule.configs[1].parameters["disabled"], "false");
    }

    #[test]
    fn application_scope_services_applications_and_match() {
        let yaml = r#"
configVersion: v3.0
scope: application
key: shop
configs:
  - side: provider
    services: [a.B]
    applications: [greeter]
    providerAddresses: ["10.0.0.5:20880"]
    parameters: {weight: 10}
  - side: provider
    match:
      param:
        - key: region
          value: {exact: eu}
    parameters: {disabled: true}
"#;
        let rule = OverrideRule::parse(yaml).unwrap();
        let p = url("rpc://10.0.0.5:20880/a.B?application=greeter&region=eu");
        assert!(rule.configs[0].applies_to_provider(&p));
        assert!(!rule.configs[0].applies_to_provider(&url("rpc://10.0.0.5:20880/c.D?application=greeter")));
        assert!(!rule.configs[0].applies_to_provider(&url("rpc://10.0.0.5:20880/a.B?application=other")));
        assert!(!rule.configs[0].applies_to_provider(&url("rpc://10.0.0.6:20880/a.B?application=greeter")));
        assert!(rule.configs[1].applies_to_provider(&p));
        assert!(!rule.configs[1].applies_to_provider(&url("rpc://h:1/a.B?region=us")));
    }

    #[test]
    fn regex_matches_the_whole_value() {
        let rule = OverrideRule::parse(
            "configVersion: v3.0\nscope: service\nkey: a.B\nconfigs:\n  - side: provider\n    parameters: {weight: 1}\n    match:\n      param:\n        - key: region\n          value: {regex: 'eu-(west|north)-[0-9]+'}\n",
        )
        .unwrap();
        let c = &rule.configs[0];
        assert!(c.applies_to_provider(&url("rpc://h:1/a.B?region=eu-west-1")));
        assert!(c.applies_to_provider(&url("rpc://h:1/a.B?region=eu-north-12")));
        assert!(!c.applies_to_provider(&url("rpc://h:1/a.B?region=eu-south-1")));
        assert!(
            !c.applies_to_provider(&url("rpc://h:1/a.B?region=xeu-west-1")),
            "anchored at the start"
        );
        assert!(
            !c.applies_to_provider(&url("rpc://h:1/a.B?region=eu-west-1x")),
            "anchored at the end"
        );
        assert!(!c.applies_to_provider(&url("rpc://h:1/a.B")));
        let again = OverrideRule::parse(
            "configVersion: v3.0\nscope: service\nkey: a.B\nconfigs:\n  - side: provider\n    parameters: {weight: 1}\n    match:\n      param:\n        - key: region\n          value: {regex: 'eu-(west|north)-[0-9]+'}\n",
        )
        .unwrap();
        assert_eq!(rule.configs, again.configs, "the same pattern compares equal");
        let regex = c
            .matcher
            .as_ref()
            .and_then(|m| m.param.first())
            .and_then(|p| p.value.regex.as_ref());
        assert_eq!(regex.map(MatchRegex::as_str), Some("eu-(west|north)-[0-9]+"));
    }

    #[test]
    fn reads_legacy_urls() {
        let disable = OverrideRule::parse(
            "override://10.20.153.10:20880/com.foo.BarService?category=configurators&dynamic=false&disabled=true",
        )
        .unwrap();
        let c = &disable.configs[0];
        assert_eq!(c.parameters.len(), 1);
        assert!(c.applies_to_provider(&url("rpc://10.20.153.10:20880/com.foo.BarService")));
        assert!(!c.applies_to_provider(&url("rpc://10.20.153.10:20881/com.foo.BarService")));
        assert!(!c.applies_to_consumer(&url("consumer://10.20.153.10/com.foo.BarService")));

        let all = OverrideRule::parse(
            "override://0.0.0.0/com.foo.BarService?category=configurators&dynamic=false&application=foo&timeout=1000",
        )
        .unwrap();
        let c = &all.configs[0];
        assert_eq!(c.parameters.len(), 1);
        assert!(c.applies_to_consumer(&url("consumer://1.2.3.4/com.foo.BarService?application=foo")));
        assert!(!c.applies_to_consumer(&url("consumer://1.2.3.4/com.foo.BarService?application=bar")));
        assert!(c.applies_to_provider(&url("rpc://9.9.9.9:1/com.foo.BarService?application=foo")));

        let off = OverrideRule::parse("override://0.0.0.0/a.B?enabled=false&weight=5").unwrap();
        assert!(!off.enabled);
    }

    #[test]
    fn refuses_bad_rules_naming_the_problem() {
        for (bad, says) in [
            (
                "configVersion: v3.0\nkey: a\nconfigs:\n  - side: provider\n    parameters: {weight: 1}\n    adresses: [x]\n",
                "unknown field `adresses`",
            ),
            ("configVersion: v3.0\nkey: a\nconfgs: []\n", "unknown field `confgs`"),
            (
                "configVersion: v3.0\nkey: a\nconfigs:\n  - side: both\n    parameters: {a: 1}\n",
                "neither consumer nor provider",
            ),
            (
                "configVersion: v3.0\nkey: a\nconfigs:\n  - side: provider\n",
                "sets no parameters",
            ),
            (
                "configVersion: v3.0\nkey: a\nconfigs:\n  - side: provider\n    parameters: {a: [1]}\n",
                "not a string",
            ),
            (
                "configVersion: v3.0\nkey: a\nconfigs:\n  - side: provider\n    parameters: {a: 1}\n    match: {param: [{key: a, value: {regex: 'eu-('}}]}\n",
                "regex `eu-(` does not compile",
            ),
            ("configs: [", "not an override rule"),
            ("override:///a.B?weight=1", "needs a host"),
        ] {
            let error = OverrideRule::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
