//! Condition routing (Dubbo's `ConditionStateRouter`): `when => then` rules
//! that narrow the providers a call may reach.
//!
//! A condition is `key op value[,value...]` pairs joined by `&`, with `=` or
//! `!=`, on each side of `=>`. The `when` side reads the call (`method`,
//! `arguments[N]`, `attachments[key]`) and the consumer's URL (`host`,
//! `application`, any parameter); the `then` side reads each provider's URL
//! (`host`, `address`, `port`, `protocol`, any parameter such as `region`).
//! Values are literals, globs (`10.20.*`), numeric ranges (`1~10`) or
//! `$key` (the consumer's own value of `key`). An empty `when` matches every
//! call; an empty `then` matches no provider (a blacklist).
//!
//! Semantics, as Dubbo's: a call the `when` side does not match keeps every
//! provider; otherwise the providers the `then` side matches, and when there
//! are none, all of them again unless the rule says `force: true` (then the
//! call fails, not sent). Conditions of one rule narrow one after another.
//! Everything is compiled when the rule is read: a call only compares strings.
//!
//! Dubbo 3.1's multi-destination form (`configVersion: v3.1`) writes each
//! condition as `{from: {match}, to: [{match, weight}], priority, force,
//! ratio, trafficDisable}`: a call `from` matches goes to one of the `to`
//! subsets that has providers, picked at random by `weight` (default 100);
//! `ratio` (percent) refuses a subset holding no more than that share of the
//! providers; `trafficDisable` refuses the call; `force` on the condition or
//! the rule fails the call when no subset has providers. An empty or `true`
//! `from` matches every call; an empty `to` list refuses every call (a
//! blacklist); an empty or `false` `to` match, as in Dubbo, keeps every provider.

use std::borrow::Cow;

use rpc_core::{Invocation, Url};
use serde::Deserialize;
use smallvec::SmallVec;

use super::pattern::{Pattern, url_value};
use crate::endpoint::Endpoint;
use crate::loadbalance::SharedRng;

/// Picks a v3.1 destination by weight (only multi-destination rules use it).
static DESTINATION_RNG: std::sync::LazyLock<SharedRng> = std::sync::LazyLock::new(SharedRng::from_entropy);

/// What a condition reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Key {
    /// The call's method.
    Method,
    /// The call's argument at this position (JSON- and Hessian2-encoded calls only).
    Argument(usize),
    /// The call's attachment.
    Attachment(Box<str>),
    /// A URL value: the consumer's on the `when` side, the provider's on the `then` side.
    Url(Box<str>),
}

/// One `key = values != values` pair.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MatchPair {
    key: Key,
    matches: Vec<Pattern>,
    mismatches: Vec<Pattern>,
}

impl MatchPair {
    /// Dubbo's `MatchPair.isMatch`: a mismatch wins over a match.
    fn is_match(&self, value: &str) -> bool {
        if self.mismatches.iter().any(|p| p.matches(value)) {
            return false;
        }
        if self.matches.is_empty() {
            return !self.mismatches.is_empty();
        }
        self.matches.iter().any(|p| p.matches(value))
    }

    /// A pair whose key has no value matches only when it has no `=` values.
    fn matches_sample(&self, sample: Option<&str>) -> bool {
        match sample {
            Some(value) => self.is_match(value),
            None => self.matches.is_empty(),
        }
    }
}

/// One compiled condition: `when => then` (v3.0), or `from` and its
/// weighted destinations (v3.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    text: Box<str>,
    when: Vec<MatchPair>,
    /// The destination subsets with their weights; empty: the blacklist form
    /// (`when =>`), no provider. A v3.0 condition has one.
    then: Vec<(Vec<MatchPair>, u32)>,
    /// v3.1: the condition's own `force` (the rule's applies too).
    force: bool,
    /// v3.1: a subset must hold more than this percentage of the providers.
    ratio: u32,
    /// v3.1: every call the condition matches is refused.
    traffic_disable: bool,
    /// v3.1: conditions of higher priority route first within their rule.
    priority: i32,
    reads_arguments: bool,
}

/// Providers a call may reach.
pub(crate) type Pool<'a> = SmallVec<[&'a Endpoint; 8]>;

/// What a condition did with a pool of providers.
pub(crate) enum Routed<'a> {
    /// The providers the call may reach.
    Kept(Pool<'a>),
    /// No destination has providers: the pool stands unless the rule forces.
    NoMatch,
    /// The call is refused, for this reason.
    Refused(String),
}

/// Dubbo's default weight of a v3.1 destination.
const DEFAULT_WEIGHT: u32 = 100;

/// The arguments of a call, decoded at most once per call and only when a
/// rule reads them.
#[derive(Debug, Default)]
pub(crate) struct Arguments {
    decoded: Option<Option<Vec<serde_json::Value>>>,
}

impl Arguments {
    fn get(&mut self, invocation: &Invocation, index: usize) -> Option<String> {
        let decoded = self
            .decoded
            .get_or_insert_with(|| rpc_core::generic::arguments_as_json(invocation));
        decoded.as_ref()?.get(index).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Condition {
    /// Compiles `text` (`when => then`), resolving `$key` against `consumer`.
    pub(crate) fn parse(text: &str, consumer: &Url) -> Result<Condition, String> {
        let (when, then) = match text.split_once("=>") {
            Some((when, then)) => (when.trim(), Some(then.trim())),
            None => (text.trim(), None),
        };
        let when_pairs = parse_pairs(when, consumer).map_err(|e| format!("condition `{text}`: {e}"))?;
        let then_pairs = match then {
            None => {
                return Err(format!(
                    "condition `{text}` has no `=>` (write `when => then`; `=> then` for every call)"
                ));
            }
            Some("") => None,
            Some(then) => {
                let pairs = parse_pairs(then, consumer).map_err(|e| format!("condition `{text}`: {e}"))?;
                if pairs
                    .iter()
                    .any(|p| matches!(p.key, Key::Method | Key::Argument(_) | Key::Attachment(_)))
                {
                    return Err(format!(
                        "condition `{text}`: the `then` side reads provider URLs, not the call (method, arguments, attachments)"
                    ));
                }
                Some(pairs)
            }
        };
        let reads_arguments = when_pairs.iter().any(|p| matches!(p.key, Key::Argument(_)));
        Ok(Condition {
            text: text.trim().into(),
            when: when_pairs,
            then: then_pairs
                .map(|pairs| vec![(pairs, DEFAULT_WEIGHT)])
                .unwrap_or_default(),
            force: false,
            ratio: 0,
            traffic_disable: false,
            priority: 0,
            reads_arguments,
        })
    }

    /// Compiles one v3.1 condition (`{from, to, priority, force, ratio, trafficDisable}`).
    fn parse_multi(yaml: MultiDest, consumer: &Url) -> Result<Condition, String> {
        let from = yaml.from.and_then(|f| f.matcher).unwrap_or_default();
        let from = from.trim();
        let mut text = format!("from `{from}` to");
        let when = if from.is_empty() || from == "true" {
            Vec::new()
        } else {
            parse_pairs(from, consumer).map_err(|e| format!("condition from `{from}`: {e}"))?
        };
        let mut then = Vec::with_capacity(yaml.to.len());
        for (i, to) in yaml.to.into_iter().enumerate() {
            let matcher = to.matcher.unwrap_or_default();
            let matcher = matcher.trim();
            let weight = to.weight.unwrap_or(DEFAULT_WEIGHT);
            text.push_str(&format!(
                "{} `{matcher}` (weight {weight})",
                if i == 0 { "" } else { "," }
            ));
            let pairs = if matcher.is_empty() || matcher == "false" {
                Vec::new()
            } else {
                parse_pairs(matcher, consumer).map_err(|e| format!("condition to `{matcher}`: {e}"))?
            };
            if pairs
                .iter()
                .any(|p| matches!(p.key, Key::Method | Key::Argument(_) | Key::Attachment(_)))
            {
                return Err(format!(
                    "condition to `{matcher}`: a destination reads provider URLs, not the call (method, arguments, attachments)"
                ));
            }
            if weight > 0 {
                then.push((pairs, weight));
            }
        }
        if then.is_empty() {
            text.push_str(" nothing");
        }
        if yaml.ratio > 100 {
            return Err(format!("{text}: ratio {} is not a percentage", yaml.ratio));
        }
        let reads_arguments = when.iter().any(|p| matches!(p.key, Key::Argument(_)));
        Ok(Condition {
            text: text.into(),
            when,
            then,
            force: yaml.force,
            ratio: yaml.ratio,
            traffic_disable: yaml.traffic_disable,
            priority: yaml.priority,
            reads_arguments,
        })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `invocation` from `consumer` is one this condition routes.
    pub(crate) fn matches_call(&self, invocation: &Invocation, consumer: &Url, args: &mut Arguments) -> bool {
        self.when.iter().all(|pair| {
            let sample: Option<Cow<'_, str>> = match &pair.key {
                Key::Method => Some(Cow::Borrowed(invocation.method())),
                Key::Argument(i) => args.get(invocation, *i).map(Cow::Owned),
                Key::Attachment(k) => invocation.attachment(k).map(Cow::Borrowed),
                Key::Url(k) => url_value(consumer, k),
            };
            pair.matches_sample(sample.as_deref())
        })
    }

    /// The method names the `when` side asks for literally (`method=sayHello`).
    pub(crate) fn methods_named(&self) -> impl Iterator<Item = &str> {
        self.when
            .iter()
            .filter(|p| p.key == Key::Method)
            .flat_map(|p| p.matches.iter())
            .filter_map(|p| match p {
                Pattern::Exact(m) => Some(&**m),
                _ => None,
            })
    }

    /// Whether the call's arguments are read.
    pub(crate) fn reads_arguments(&self) -> bool {
        self.reads_arguments
    }

    /// Whether a provider at `provider` is in a destination of this
    /// condition; `false` for every provider of a blacklist condition.
    #[cfg(test)]
    pub(crate) fn matches_provider(&self, provider: &Url) -> bool {
        self.then.iter().any(|(pairs, _)| in_destination(pairs, provider))
    }

    /// Whether a call this condition matches fails when no destination has
    /// providers, by the condition's own `force` or its rule's.
    pub(crate) fn forces(&self, rule_force: bool) -> bool {
        rule_force || self.force || self.then.is_empty()
    }

    /// Routes `pool` for a call this condition matches: the providers of one
    /// destination (picked by weight among those that have providers).
    pub(crate) fn route<'a>(&self, pool: &[&'a Endpoint]) -> Routed<'a> {
        if self.traffic_disable {
            return Routed::Refused(format!("traffic is disabled by condition `{}`", self.text));
        }
        let mut subsets: SmallVec<[(Pool<'a>, u32); 2]> = SmallVec::new();
        for (pairs, weight) in &self.then {
            let kept: Pool<'a> = pool
                .iter()
                .copied()
                .filter(|e| in_destination(pairs, e.url()))
                .collect();
            if !kept.is_empty() {
                subsets.push((kept, *weight));
            }
        }
        let picked = match subsets.len() {
            0 => return Routed::NoMatch,
            1 => subsets.swap_remove(0).0,
            _ => {
                let weights: SmallVec<[(usize, u32); 2]> = subsets.iter().map(|(_, w)| *w).enumerate().collect();
                let index = DESTINATION_RNG.weighted(&weights);
                subsets.swap_remove(index.min(subsets.len() - 1)).0
            }
        };
        if self.ratio > 0 && picked.len() * 100 / pool.len().max(1) <= self.ratio as usize {
            return Routed::Refused(format!(
                "condition `{}` matched {} of {} providers, not more than its ratio of {}%",
                self.text,
                picked.len(),
                pool.len(),
                self.ratio
            ));
        }
        Routed::Kept(picked)
    }
}

/// Whether `provider` meets every pair of a destination.
fn in_destination(pairs: &[MatchPair], provider: &Url) -> bool {
    pairs.iter().all(|pair| match &pair.key {
        Key::Url(k) => pair.matches_sample(url_value(provider, k).as_deref()),
        _ => false,
    })
}

/// Parses `key=value,value&key!=value` (Dubbo's `([&!=,]*)\s*([^&!=,\s]+)` grammar).
fn parse_pairs(text: &str, consumer: &Url) -> Result<Vec<MatchPair>, String> {
    let mut pairs: Vec<MatchPair> = Vec::new();
    // Which list of the current pair `,` adds to: None before any value.
    let mut list: Option<bool> = None;
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        let separator_len = trimmed
            .find(|c: char| !matches!(c, '&' | '!' | '=' | ','))
            .unwrap_or(trimmed.len());
        let separator = &trimmed[..separator_len];
        let after = trimmed[separator_len..].trim_start();
        let content_len = after
            .find(|c: char| matches!(c, '&' | '!' | '=' | ',') || c.is_whitespace())
            .unwrap_or(after.len());
        let content = &after[..content_len];
        if content.is_empty() {
            if !separator.is_empty() {
                return Err(format!("`{separator}` is not followed by a key or value"));
            }
            break;
        }
        rest = &after[content_len..];
        match separator {
            "" | "&" => {
                if separator.is_empty() && !pairs.is_empty() {
                    return Err(format!("`{content}` follows a value without `&`"));
                }
                pairs.push(MatchPair {
                    key: parse_key(content)?,
                    matches: Vec::new(),
                    mismatches: Vec::new(),
                });
                list = None;
            }
            "=" | "!=" | "," => {
                let Some(pair) = pairs.last_mut() else {
                    return Err(format!("`{separator}{content}` comes before any key"));
                };
                let negative = match separator {
                    "=" => false,
                    "!=" => true,
                    _ => list.ok_or_else(|| format!("`,{content}` comes before `=` or `!=`"))?,
                };
                let pattern = Pattern::compile(content, consumer);
                if negative {
                    pair.mismatches.push(pattern);
                } else {
                    pair.matches.push(pattern);
                }
                list = Some(negative);
            }
            other => return Err(format!("illegal separator `{other}` before `{content}`")),
        }
    }
    if let Some(pair) = pairs.iter().find(|p| p.matches.is_empty() && p.mismatches.is_empty()) {
        return Err(format!("`{}` has no value (write `key=value`)", key_name(&pair.key)));
    }
    Ok(pairs)
}

fn key_name(key: &Key) -> String {
    match key {
        Key::Method => "method".into(),
        Key::Argument(i) => format!("arguments[{i}]"),
        Key::Attachment(k) => format!("attachments[{k}]"),
        Key::Url(k) => k.to_string(),
    }
}

fn parse_key(content: &str) -> Result<Key, String> {
    let indexed = |prefix: &str| {
        content
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
    };
    if content == "method" || content == "methods" {
        return Ok(Key::Method);
    }
    if let Some(index) = indexed("arguments") {
        return index
            .trim()
            .parse::<usize>()
            .map(Key::Argument)
            .map_err(|_| format!("`{content}`: an argument index must be a number"));
    }
    if let Some(name) = indexed("attachments") {
        return Ok(Key::Attachment(name.trim().into()));
    }
    if content.contains('[') || content.contains(']') {
        return Err(format!(
            "unknown key `{content}` (indexed keys are `arguments[N]` and `attachments[key]`)"
        ));
    }
    Ok(Key::Url(content.into()))
}

/// A condition rule: one node's conditions and flags.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionRule {
    /// The rule's `key` (a service or application), for messages.
    pub key: String,
    /// Whether an empty result fails the call (`true`) or falls back to every provider.
    pub force: bool,
    /// Whether the rule is in force at all.
    pub enabled: bool,
    /// Rules of higher priority route first.
    pub priority: i32,
    /// The compiled conditions, applied one after another.
    pub conditions: Vec<Condition>,
}

/// Dubbo 3's condition-router YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Yaml {
    #[serde(default)]
    config_version: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default = "yes")]
    runtime: bool,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    conditions: Vec<serde_norway::Value>,
}

/// One condition of Dubbo 3.1's multi-destination form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MultiDest {
    #[serde(default)]
    from: Option<MatchText>,
    #[serde(default)]
    to: Vec<Destination>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    ratio: u32,
    #[serde(default)]
    traffic_disable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchText {
    #[serde(default, rename = "match")]
    matcher: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    #[serde(default, rename = "match")]
    matcher: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
}

pub(crate) fn yes() -> bool {
    true
}

impl ConditionRule {
    /// Parses a rule in Dubbo 3's YAML (`configVersion: v3.0`) or the legacy
    /// `condition://` URL form (`rule=` URL-encoded), compiling its
    /// conditions for `consumer`.
    pub fn parse(text: &str, consumer: &Url) -> Result<ConditionRule, String> {
        let trimmed = text.trim();
        if trimmed.starts_with("condition://") {
            return Self::parse_url(trimmed, consumer);
        }
        let yaml: Yaml = serde_norway::from_str(text).map_err(|e| format!("not a condition rule: {e}"))?;
        let multi = match yaml.config_version.as_deref() {
            Some(v) if v.starts_with("v3.1") => true,
            None => false,
            Some(v) if v.starts_with("v3.0") || v.starts_with("v2.7") => false,
            Some(v) => {
                return Err(format!(
                    "configVersion `{v}` is not supported (v3.1, v3.0 and v2.7 are)"
                ));
            }
        };
        if let Some(scope) = &yaml.scope
            && scope != "service"
            && scope != "application"
        {
            return Err(format!("scope `{scope}` is neither `service` nor `application`"));
        }
        let _ = yaml.runtime;
        let mut conditions = Vec::with_capacity(yaml.conditions.len());
        for (i, value) in yaml.conditions.into_iter().enumerate() {
            let condition = match (multi, value) {
                (false, serde_norway::Value::String(text)) => Condition::parse(&text, consumer)?,
                (false, _) => {
                    return Err(format!(
                        "conditions[{i}] is not a string `when => then` (the `from`/`to` form needs `configVersion: v3.1`)"
                    ));
                }
                (true, value @ serde_norway::Value::Mapping(_)) => {
                    let yaml: MultiDest =
                        serde_norway::from_value(value).map_err(|e| format!("conditions[{i}]: {e}"))?;
                    Condition::parse_multi(yaml, consumer)?
                }
                (true, _) => {
                    return Err(format!(
                        "conditions[{i}] is not a `{{from, to}}` map, which `configVersion: v3.1` needs"
                    ));
                }
            };
            conditions.push(condition);
        }
        // Within a rule, v3.1 conditions of higher priority route first.
        conditions.sort_by_key(|c| std::cmp::Reverse(c.priority));
        if conditions.is_empty() {
            return Err("the rule has no conditions".into());
        }
        Ok(ConditionRule {
            key: yaml.key.unwrap_or_default(),
            force: yaml.force,
            enabled: yaml.enabled,
            priority: yaml.priority,
            conditions,
        })
    }

    fn parse_url(text: &str, consumer: &Url) -> Result<ConditionRule, String> {
        let url = Url::parse(text).map_err(|e| e.to_string())?;
        let rule = url
            .param("rule")
            .ok_or("a condition:// URL needs a `rule=` parameter")?
            .replace('+', " ");
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            match url.param(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<bool>()
                    .map_err(|_| format!("`{key}={v}` is not true or false")),
            }
        };
        let priority = match url.param("priority") {
            None => 0,
            Some(v) => v.parse().map_err(|_| format!("`priority={v}` is not a number"))?,
        };
        Ok(ConditionRule {
            key: url.interface().unwrap_or_default().to_string(),
            force: flag("force", false)?,
            enabled: flag("enabled", true)?,
            priority,
            conditions: vec![Condition::parse(&rule, consumer)?],
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use rpc_core::{Serialization, ServiceKey};

    use super::*;

    fn consumer() -> Url {
        Url::parse("consumer://10.20.153.10/a.B?application=shop").unwrap()
    }

    fn call(method: &str) -> Invocation {
        Invocation::new(
            ServiceKey::new("a.B", None, None),
            method.to_string(),
            Bytes::new(),
            Serialization::Bincode,
        )
    }

    fn provider(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses_dubbos_examples() {
        let c = Condition::parse("host = 10.20.153.10 => host = 10.20.153.11", &consumer()).unwrap();
        assert!(c.matches_call(&call("m"), &consumer(), &mut Arguments::default()));
        assert!(c.matches_provider(&provider("rpc://10.20.153.11:20880/a.B")));
        assert!(!c.matches_provider(&provider("rpc://10.20.153.12:20880/a.B")));

        let c = Condition::parse("method = find*,list* & host != 10.20.* => region=eu,us", &consumer()).unwrap();
        assert!(!c.matches_call(&call("findAll"), &consumer(), &mut Arguments::default()));
        let other = Url::parse("consumer://10.30.0.1/a.B").unwrap();
        assert!(c.matches_call(&call("listAll"), &other, &mut Arguments::default()));
        assert!(!c.matches_call(&call("get"), &other, &mut Arguments::default()));
        assert!(c.matches_provider(&provider("rpc://h:1/a.B?region=us")));
        assert!(!c.matches_provider(&provider("rpc://h:1/a.B?region=cn")));
        assert!(!c.matches_provider(&provider("rpc://h:1/a.B")));

        // Every call; a blacklist.
        let all = Condition::parse("=> host != 172.22.3.91", &consumer()).unwrap();
        assert!(all.matches_call(&call("x"), &consumer(), &mut Arguments::default()));
        assert!(!all.matches_provider(&provider("rpc://172.22.3.91:1/a.B")));
        let black = Condition::parse("host = 10.20.153.10 =>", &consumer()).unwrap();
        assert!(black.matches_call(&call("x"), &consumer(), &mut Arguments::default()));
        assert!(!black.matches_provider(&provider("rpc://h:1/a.B")));
        // $ references: the same host as the consumer.
        let same = Condition::parse("=> host = $host", &consumer()).unwrap();
        assert!(same.matches_provider(&provider("rpc://10.20.153.10:1/a.B")));
        // != and = together on one key: the mismatch wins.
        let both = Condition::parse("=> port = 2000~3000 & port != 2500", &consumer()).unwrap();
        assert!(both.matches_provider(&provider("rpc://h:2400/a.B")));
        assert!(!both.matches_provider(&provider("rpc://h:2500/a.B")));
        assert!(!both.matches_provider(&provider("rpc://h:3500/a.B")));
    }

    #[test]
    fn reads_attachments_and_json_arguments() {
        let c = Condition::parse(
            "attachments[user] = vip* & arguments[1] = 1~10 => region=eu",
            &consumer(),
        )
        .unwrap();
        assert!(c.reads_arguments());
        let mut inv = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::from_static(br#"["x", 5]"#),
            Serialization::Json,
        );
        assert!(!c.matches_call(&inv, &consumer(), &mut Arguments::default()));
        inv.set_attachment("user", "vip-1");
        assert!(c.matches_call(&inv, &consumer(), &mut Arguments::default()));
        let big = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::from_static(br#"["x", 50]"#),
            Serialization::Json,
        );
        let mut big = big;
        big.set_attachment("user", "vip-1");
        assert!(!c.matches_call(&big, &consumer(), &mut Arguments::default()));
        // A string argument.
        let s = Condition::parse("arguments[0] = x => region=eu", &consumer()).unwrap();
        assert!(s.matches_call(&inv, &consumer(), &mut Arguments::default()));
        // A Hessian2 call (dubbo://): its arguments are consecutive values.
        let mut hessian = rpc_hessian::to_vec("x").unwrap();
        hessian.extend(rpc_hessian::to_vec(&5i32).unwrap());
        let mut java = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::from(hessian),
            Serialization::Hessian2,
        );
        java.set_attachment("user", "vip-1");
        assert!(c.matches_call(&java, &consumer(), &mut Arguments::default()));
        assert!(s.matches_call(&java, &consumer(), &mut Arguments::default()));
        // Bincode cannot be read without the types: the condition does not match.
        let mut opaque = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::from_static(&[1, 120]),
            Serialization::Bincode,
        );
        opaque.set_attachment("user", "vip-1");
        assert!(!c.matches_call(&opaque, &consumer(), &mut Arguments::default()));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (bad, says) in [
            ("method = => region=eu", "not followed by"),
            ("method => region=eu", "has no value"),
            ("method sayHello => region=eu", "without `&`"),
            ("method = a => method = b", "reads provider URLs"),
            ("method = a", "has no `=>`"),
            ("arguments[x] = 1 => a=b", "must be a number"),
            ("foo[1] = 1 => a=b", "unknown key"),
            ("=a => b=c", "before any key"),
        ] {
            let error = Condition::parse(bad, &consumer()).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn reads_v3_yaml_and_legacy_urls() {
        let yaml = "configVersion: v3.0\nscope: service\nforce: true\nruntime: true\nenabled: true\npriority: 2\nkey: org.example.Greeter:1.0.0\nconditions:\n  - method=sayHello => region=eu\n  - => host != 10.0.0.1\n";
        let rule = ConditionRule::parse(yaml, &consumer()).unwrap();
        assert!(rule.force && rule.enabled);
        assert_eq!(rule.priority, 2);
        assert_eq!(rule.key, "org.example.Greeter:1.0.0");
        assert_eq!(rule.conditions.len(), 2);

        let legacy = "condition://0.0.0.0/com.foo.BarService?category=routers&dynamic=false&force=true&rule=method+%3D+find*+%3D%3E+host+%3D+10.20.153.11";
        let rule = ConditionRule::parse(legacy, &consumer()).unwrap();
        assert!(rule.force);
        assert_eq!(rule.key, "com.foo.BarService");
        assert_eq!(rule.conditions[0].text(), "method = find* => host = 10.20.153.11");

        for (bad, says) in [
            (
                "configVersion: v3.0\nkey: a\nconditons: [\"=> a=b\"]\n",
                "unknown field `conditons`",
            ),
            ("key: a\nconditions:\n  - from: {match: a=b}\n", "v3.1"),
            ("configVersion: v3.1\nkey: a\nconditions: [\"=> a=b\"]\n", "v3.1"),
            (
                "configVersion: v3.1\nkey: a\nconditions: [{from: {match: a=b}, tos: []}]\n",
                "unknown field `tos`",
            ),
            (
                "configVersion: v3.1\nkey: a\nconditions: [{to: [{match: method=x}]}]\n",
                "provider URLs",
            ),
            (
                "configVersion: v3.1\nkey: a\nconditions: [{to: [{match: a=b}], ratio: 101}]\n",
                "percentage",
            ),
            ("configVersion: v3.2\nkey: a\nconditions: []\n", "not supported"),
            ("key: a\nconditions: [\"method = => x=y\"]\n", "not followed by"),
            ("key: a\nforce: maybe\nconditions: [\"=> a=b\"]\n", "force"),
            ("{{{", "not a condition rule"),
            ("key: a\n", "no conditions"),
        ] {
            let error = ConditionRule::parse(bad, &consumer()).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
