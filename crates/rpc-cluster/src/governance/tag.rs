//! Tag routing (Dubbo's `TagStateRouter`): requests tagged `gray` go to the
//! gray providers.
//!
//! A provider is tagged by a tag rule (`tags: [{name, addresses}]`, the node
//! `{provider-application}.tag-router`) or, without one naming it, by the
//! `dubbo.tag` parameter of its URL. A request's tag is its `dubbo.tag`
//! attachment (per call, or per reference); `dubbo.force.tag=true` forbids the
//! fallback below. As in Dubbo:
//!
//! * a tagged request goes to the providers of its tag; when none has it, to
//!   the untagged providers, unless the rule is `force: true` (for a tag the
//!   rule names) or the request says `dubbo.force.tag` (then the call fails);
//! * an untagged request never goes to a tagged provider (none left: the call fails).

use serde::Deserialize;

use super::condition::yes;

/// The request attachment (and URL parameter) carrying a tag.
pub const TAG_KEY: &str = "dubbo.tag";
/// The request attachment that forbids falling back to untagged providers.
pub const FORCE_TAG_KEY: &str = "dubbo.force.tag";

/// One tag of a rule.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// The tag.
    pub name: String,
    /// The providers carrying it: `host:port`, `host` (any port),
    /// `0.0.0.0:port` (any host), globs such as `10.0.*`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// A tag rule.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagRule {
    /// `configVersion` (v3.0).
    #[serde(default)]
    pub config_version: Option<String>,
    /// The provider application the rule is for.
    #[serde(default)]
    pub key: String,
    /// `application` (the only scope tag rules have).
    #[serde(default)]
    pub scope: Option<String>,
    /// Whether a request whose tag names addresses fails rather than falling back.
    #[serde(default)]
    pub force: bool,
    /// Whether the rule is in force.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Read for compatibility; routing always runs per call.
    #[serde(default = "yes")]
    pub runtime: bool,
    /// Read for compatibility.
    #[serde(default)]
    pub priority: i32,
    /// The tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl TagRule {
    /// Parses Dubbo 3's tag-router YAML.
    pub fn parse(text: &str) -> Result<TagRule, String> {
        let rule: TagRule = serde_norway::from_str(text).map_err(|e| format!("not a tag rule: {e}"))?;
        if let Some(version) = &rule.config_version
            && !version.starts_with("v3.0")
            && !version.starts_with("v2.7")
        {
            return Err(format!(
                "configVersion `{version}` is not supported (v3.0 and v2.7 are)"
            ));
        }
        if let Some(tag) = rule.tags.iter().find(|t| t.name.trim().is_empty()) {
            return Err(format!("a tag has an empty name (addresses {:?})", tag.addresses));
        }
        Ok(rule)
    }

    /// The tag the rule gives the provider at `host:port`, if any.
    pub fn tag_of(&self, host: &str, port: u16) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.addresses.iter().any(|a| address_matches(a, host, port)))
            .map(|t| t.name.as_str())
    }

    /// Whether the rule names addresses for `tag`.
    pub fn names(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.name == tag && !t.addresses.is_empty())
    }
}

/// Whether a rule's `address` selects the provider at `host:port`.
fn address_matches(address: &str, host: &str, port: u16) -> bool {
    let address = address.trim();
    let (h, p) = match address.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h.trim_matches(|c| c == '[' || c == ']'), Some(p)),
        _ => (address, None),
    };
    let port_ok = match p {
        None | Some("*") => true,
        Some(p) => p.parse::<u16>().ok() == Some(port),
    };
    let host_ok = h == "0.0.0.0" || h == "*" || h == host || glob(h, host);
    port_ok && host_ok
}

fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        Some((pre, suf)) => value.len() >= pre.len() + suf.len() && value.starts_with(pre) && value.ends_with(suf),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_dubbos_example() {
        let yaml = "force: false\nruntime: true\nenabled: true\npriority: 1\nkey: demo-provider\ntags:\n  - name: tag1\n    addresses: [\"30.5.120.37:20880\"]\n  - name: tag2\n    addresses: [\"30.5.120.37:20881\", \"10.0.*\"]\n";
        let rule = TagRule::parse(yaml).unwrap();
        assert_eq!(rule.key, "demo-provider");
        assert_eq!(rule.tag_of("30.5.120.37", 20880), Some("tag1"));
        assert_eq!(rule.tag_of("30.5.120.37", 20881), Some("tag2"));
        assert_eq!(rule.tag_of("10.0.3.3", 1), Some("tag2"));
        assert_eq!(rule.tag_of("30.5.120.37", 20882), None);
        assert!(rule.names("tag1") && !rule.names("tag3"));
        assert!(address_matches("0.0.0.0:20880", "1.2.3.4", 20880));
        assert!(address_matches("1.2.3.4", "1.2.3.4", 9));
    }

    #[test]
    fn refuses_bad_rules() {
        for (bad, says) in [
            (
                "key: a\ntags:\n  - name: x\n    adresses: []\n",
                "unknown field `adresses`",
            ),
            ("key: a\ntags:\n  - name: ''\n", "empty name"),
            ("key: a\nconfigVersion: v9\n", "not supported"),
            ("tags: {", "not a tag rule"),
        ] {
            let error = TagRule::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
