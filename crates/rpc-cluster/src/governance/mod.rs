//! Governance rules from the configuration centre: override rules
//! (configurators), condition routing and tag routing, in Apache Dubbo's
//! formats, so that the rules an operator already writes work unchanged.
//!
//! A registry delivers rules as the text of their nodes ([`RuleNode`]: its
//! path and contents); a [`Directory`](crate::Directory) given a stream of
//! them ([`Directory::govern`](crate::Directory::govern)) keeps a
//! [`Governance`]: every node parsed once when it changes, compiled for the
//! reference and its consumer, applied
//!
//! * to the provider URLs (provider-side overrides: `weight`, `disabled`,
//!   `timeout`, ...; `retries`, `cluster`, `actives` and `forks` are the
//!   consumer's alone and ignored there), rewritten in place when rules
//!   change, so connections and balancer statistics survive, and restored
//!   when a rule goes;
//! * to the consumer's settings (consumer-side overrides: `timeout`,
//!   `retries`, `loadbalance`, `cluster`, `actives`, `forks`, `mock`, each
//!   also per method as `{method}.timeout`), above every local setting; a
//!   rule's `timeout` is the whole call's budget;
//! * to each call, before the load balancer: condition rules (priority
//!   order), then the tag router.
//!
//! A node whose text cannot be read (bad YAML, an unknown key, an unparsable
//! condition) is reported once, by a warning naming the node and the problem,
//! and the last good version of that node stays in force: a parse error never
//! empties routing. With no rule in force, no tagged provider and no tag on
//! the reference, a call pays one atomic load and a branch.
//!
//! Which nodes concern a reference (the node key is the file name before the suffix):
//! * `{root}/config/dubbo/{interface}:{version}:{group}.configurators` and
//!   `.condition-router` (empty parts kept: `org.example.Greeter:1.0.0:`),
//!   and the same with the consumer's application as the key;
//! * `{root}/config/dubbo/{provider-application}.tag-router`, and
//!   `{provider-application}.configurators`, whose provider-side configs set
//!   the providers of that application (in Dubbo the provider applies them
//!   itself and registers its new URL; here every consumer does);
//! * legacy: `{root}/{interface}/configurators/{URL-encoded override://...}`
//!   and `{root}/{interface}/routers/{URL-encoded condition://...}`.

mod condition;
mod override_rule;
mod pattern;
mod tag;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rpc_core::{ErrorKind, Invocation, RpcError, ServiceKey, Url};
use smallvec::SmallVec;

use crate::config::{Balancer, ClusterPolicy, MethodConfig, keys};
use crate::endpoint::Endpoint;
use crate::mock::Mock;

use condition::Routed;
pub use condition::{Condition, ConditionRule};
pub use override_rule::{Configurator, OverrideRule, Side};
pub use tag::{FORCE_TAG_KEY, TAG_KEY, Tag, TagRule};

/// One rule node as a registry delivers it: where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleNode {
    /// The node's path (`/dubbo/config/dubbo/org.example.Greeter:1.0.0:.configurators`,
    /// `/dubbo/org.example.Greeter/configurators/override%3A%2F%2F...`).
    pub path: String,
    /// Its text: YAML, or for legacy nodes the decoded URL (the node's name).
    pub text: String,
}

impl RuleNode {
    /// A node at `path` holding `text`.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        RuleNode {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// What kind of rule a node holds, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Override,
    Condition,
    Tag,
}

/// A node's kind and key (the service key, application or interface it is for).
fn classify(path: &str) -> Option<(Kind, &str)> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if let Some(key) = name.strip_suffix(".configurators") {
        return Some((Kind::Override, key));
    }
    if let Some(key) = name.strip_suffix(".condition-router") {
        return Some((Kind::Condition, key));
    }
    if let Some(key) = name.strip_suffix(".tag-router") {
        return Some((Kind::Tag, key));
    }
    // Legacy: {root}/{interface}/configurators/{url} or /routers/{url}.
    let mut parts = path.rsplit('/');
    let _child = parts.next()?;
    let category = parts.next()?;
    let interface = parts.next()?;
    match category {
        "configurators" => Some((Kind::Override, interface)),
        "routers" => Some((Kind::Condition, interface)),
        _ => None,
    }
}

/// Dubbo's colon-separated service key, `interface:version:group`, empty parts kept.
pub fn rule_key(key: &ServiceKey) -> String {
    format!(
        "{}:{}:{}",
        key.interface(),
        key.version().unwrap_or(""),
        key.group().unwrap_or("")
    )
}

#[derive(Clone, Debug)]
enum Parsed {
    Override(Arc<OverrideRule>),
    Condition(Arc<ConditionRule>),
    Tag(Arc<TagRule>),
}

/// One node as last read.
#[derive(Debug)]
struct NodeState {
    /// The text last seen (good or bad), so an unchanged node is not parsed again.
    text: String,
    /// The last version that parsed, in force.
    good: Option<Parsed>,
}

/// The rules in force, compiled for one reference.
#[derive(Debug)]
struct Compiled {
    consumer: Url,
    /// Enabled condition rules, highest priority first.
    conditions: Vec<Arc<ConditionRule>>,
    conditions_read_arguments: bool,
    /// Enabled tag rules (one per provider application, in node order).
    tags: Vec<Arc<TagRule>>,
    /// Provider-side configs, in application-then-service order.
    provider_configs: Vec<Configurator>,
    /// Consumer-side settings: for every method, and per method.
    consumer_all: MethodConfig,
    consumer_methods: Vec<(Box<str>, MethodConfig)>,
    /// Consumer-side mocks (`mock`, `{method}.mock`): above the reference's own.
    mocks: RuleMocks,
    consumer_set: bool,
}

/// The mocks consumer-side rules set: for every method, and per method.
#[derive(Debug, Default)]
struct RuleMocks {
    all: Option<Mock>,
    methods: Vec<(Box<str>, Mock)>,
}

impl RuleMocks {
    fn is_empty(&self) -> bool {
        self.all.is_none() && self.methods.is_empty()
    }
}

impl Default for Compiled {
    fn default() -> Self {
        Compiled {
            consumer: Url::new("consumer", "127.0.0.1", 0),
            conditions: Vec::new(),
            conditions_read_arguments: false,
            tags: Vec::new(),
            provider_configs: Vec::new(),
            consumer_all: MethodConfig::new(),
            consumer_methods: Vec::new(),
            mocks: RuleMocks::default(),
            consumer_set: false,
        }
    }
}

/// The governance rules of one reference: parsed, compiled, and applied to
/// its providers, settings and calls. Kept by a [`Directory`](crate::Directory).
pub struct Governance {
    key: ServiceKey,
    /// Whether a call must be routed (rules, tagged providers, a tagged reference).
    active: AtomicBool,
    /// Whether the directory has tagged providers (kept by the directory).
    tagged_providers: AtomicBool,
    compiled: ArcSwap<Compiled>,
    nodes: Mutex<BTreeMap<String, NodeState>>,
}

impl fmt::Debug for Governance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compiled = self.compiled.load();
        f.debug_struct("Governance")
            .field("key", &self.key)
            .field("conditions", &compiled.conditions.len())
            .field("tags", &compiled.tags.len())
            .field("provider_configs", &compiled.provider_configs.len())
            .field("consumer_set", &compiled.consumer_set)
            .finish()
    }
}

/// Provider-side parameters that are the consumer's alone.
const CONSUMER_ONLY: &[&str] = &[keys::RETRIES, keys::CLUSTER, keys::ACTIVES, keys::FORKS];

impl Governance {
    /// No rules yet, for the reference `key`.
    pub fn new(key: ServiceKey) -> Self {
        Governance {
            key,
            active: AtomicBool::new(false),
            tagged_providers: AtomicBool::new(false),
            compiled: ArcSwap::default(),
            nodes: Mutex::default(),
        }
    }

    /// Whether calls are routed now: the one check a call pays without rules.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The consumer the rules are compiled for (its host, application, tag).
    pub fn consumer(&self) -> Url {
        self.compiled.load().consumer.clone()
    }

    /// Reads `nodes`, the complete current set of rule nodes (a node missing
    /// from it was deleted: its rule goes), keeping the last good version of
    /// any node that does not parse, and compiles them for `consumer`.
    /// Returns whether provider-side configs changed (the provider URLs must
    /// be rewritten).
    pub fn update(&self, consumer: &Url, nodes: &[RuleNode]) -> bool {
        let rule_key = rule_key(&self.key);
        let application = consumer.param("application").unwrap_or("").to_string();
        let mut states = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        let old_consumer = self.compiled.load().consumer.clone();
        let consumer_changed = old_consumer != *consumer;
        states.retain(|path, _| nodes.iter().any(|n| &n.path == path));
        for node in nodes {
            let Some((kind, key)) = classify(&node.path) else {
                if !states.contains_key(&node.path) {
                    tracing::warn!(node = %node.path, "ignoring a rule node: its path names no rule kind (.configurators, .condition-router, .tag-router, configurators/, routers/)");
                    states.insert(
                        node.path.clone(),
                        NodeState {
                            text: node.text.clone(),
                            good: None,
                        },
                    );
                }
                continue;
            };
            let relevant = match kind {
                // Tag rules and override rules keyed by another application
                // are the providers' (applied to the providers of that application).
                // (Another service's key, `interface:version:group`, is not an application.)
                Kind::Override if node.path.contains("/config/") => key == rule_key || !key.contains(':'),
                Kind::Tag => true,
                Kind::Condition if node.path.contains("/config/") => key == rule_key || key == application,
                _ => key == self.key.interface(),
            };
            if !relevant {
                continue;
            }
            if let Some(state) = states.get(&node.path)
                && state.text == node.text
                && !consumer_changed
            {
                continue;
            }
            let parsed = match kind {
                Kind::Override => OverrideRule::parse(&node.text).map(|r| Parsed::Override(Arc::new(r))),
                Kind::Condition => ConditionRule::parse(&node.text, consumer).map(|r| Parsed::Condition(Arc::new(r))),
                Kind::Tag => TagRule::parse(&node.text).map(|mut r| {
                    // A tag rule is its provider application's, named by its node.
                    if r.key.is_empty() {
                        r.key = key.to_string();
                    }
                    Parsed::Tag(Arc::new(r))
                }),
            };
            if let Ok(parsed) = &parsed {
                for doubt in self.doubts(parsed, key, consumer) {
                    tracing::warn!(service = %self.key, node = %node.path, "{doubt}");
                }
            }
            let state = states.entry(node.path.clone()).or_insert(NodeState {
                text: String::new(),
                good: None,
            });
            let repeated = state.text == node.text;
            state.text = node.text.clone();
            match parsed {
                Ok(parsed) => {
                    tracing::info!(service = %self.key, node = %node.path, "rule in force");
                    state.good = Some(parsed);
                }
                Err(problem) if !repeated => {
                    let keeps = if state.good.is_some() {
                        "the last good version stays in force"
                    } else {
                        "no version of it is in force"
                    };
                    tracing::warn!(service = %self.key, node = %node.path, "cannot read the rule: {problem}; {keeps}");
                }
                Err(_) => {}
            }
        }
        let compiled = self.compile(consumer, &application, &states);
        drop(states);
        let before = self.compiled.load();
        let providers_changed = before.provider_configs != compiled.provider_configs;
        self.compiled.store(Arc::new(compiled));
        self.refresh();
        providers_changed
    }

    /// What looks wrong in a rule that parsed (it applies all the same, as
    /// in Dubbo): a `key` naming another service than its node, a condition
    /// on a method the service does not have.
    fn doubts(&self, parsed: &Parsed, node_key: &str, consumer: &Url) -> Vec<String> {
        let mut doubts = Vec::new();
        let declared_key = match parsed {
            Parsed::Override(rule) => Some(rule.key.as_str()),
            Parsed::Condition(rule) => Some(rule.key.as_str()),
            Parsed::Tag(_) => None,
        };
        let interface = self.key.interface();
        if let Some(key) = declared_key.filter(|k| !k.is_empty())
            && node_key != consumer.param("application").unwrap_or("")
            && node_key != key
        {
            // `[group/]interface[:version]`, or `interface:version:group` as the node names it.
            let named = key.rsplit_once('/').map_or(key, |(_, rest)| rest);
            let named = named.split(':').next().unwrap_or(named);
            if named != interface && named != "*" {
                doubts.push(format!(
                    "the rule's key `{key}` names another service than its node ({interface}); it applies to {interface}"
                ));
            }
        }
        if let Parsed::Condition(rule) = parsed
            && let Some(methods) = consumer.param("methods").filter(|m| !m.is_empty())
        {
            let known: Vec<&str> = methods.split(',').collect();
            for condition in &rule.conditions {
                for method in condition.methods_named() {
                    if !known.contains(&method) {
                        doubts.push(format!(
                            "condition `{}` names method `{method}`, which {interface} does not have (methods: {methods}): it never matches",
                            condition.text()
                        ));
                    }
                }
            }
        }
        doubts
    }

    fn compile(&self, consumer: &Url, application: &str, states: &BTreeMap<String, NodeState>) -> Compiled {
        let mut conditions = Vec::new();
        let mut tags = Vec::new();
        // Application-scope overrides first, so the service's own win.
        let mut overrides: Vec<(u8, Option<&str>, &Arc<OverrideRule>)> = Vec::new();
        for (path, state) in states {
            match &state.good {
                Some(Parsed::Condition(rule)) if rule.enabled => conditions.push(rule.clone()),
                Some(Parsed::Tag(rule)) if rule.enabled => tags.push(rule.clone()),
                Some(Parsed::Override(rule)) if rule.enabled => {
                    let in_centre = path.contains("/config/");
                    let (rank, provider_app) = match classify(path) {
                        _ if !in_centre => (1, None),
                        Some((_, key)) if key == application => (0, None),
                        Some((_, key)) if key == rule_key(&self.key) => (2, None),
                        // Another application's: a provider application's rule.
                        Some((_, key)) => (0, Some(key)),
                        None => continue,
                    };
                    overrides.push((rank, provider_app, rule));
                }
                _ => {}
            }
        }
        conditions.sort_by_key(|r| std::cmp::Reverse(r.priority));
        overrides.sort_by_key(|(rank, _, _)| *rank);
        let mut provider_configs = Vec::new();
        let mut consumer_params: BTreeMap<String, String> = BTreeMap::new();
        for (_, provider_app, rule) in overrides {
            for config in &rule.configs {
                if !self.selects(config) {
                    continue;
                }
                if let Some(app) = provider_app {
                    // A provider application's rule sets its providers only.
                    if config.side != Side::Consumer {
                        let mut own = config.clone();
                        if own.applications.is_empty() {
                            own.applications = vec![app.to_string()];
                        }
                        provider_configs.push(own);
                    }
                    continue;
                }
                if config.applies_to_consumer(consumer) {
                    consumer_params.extend(config.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                if config.side != Side::Consumer {
                    provider_configs.push(config.clone());
                }
            }
        }
        let (consumer_all, consumer_methods, mocks) = consumer_settings(&self.key, &consumer_params);
        Compiled {
            consumer: consumer.clone(),
            conditions_read_arguments: conditions
                .iter()
                .any(|r| r.conditions.iter().any(Condition::reads_arguments)),
            conditions,
            tags,
            provider_configs,
            consumer_set: consumer_all != MethodConfig::new() || !consumer_methods.is_empty() || !mocks.is_empty(),
            consumer_all,
            consumer_methods,
            mocks,
        }
    }

    /// Whether a config's version, group and service conditions select this reference.
    fn selects(&self, config: &Configurator) -> bool {
        let selects = |wanted: &Option<String>, ours: Option<&str>| {
            wanted
                .as_deref()
                .is_none_or(|w| w == "*" || w.is_empty() || Some(w) == ours)
        };
        selects(&config.version, self.key.version())
            && selects(&config.group, self.key.group())
            && (config.services.is_empty() || config.services.iter().any(|s| s == "*" || s == self.key.interface()))
    }

    /// Tells whether the directory's providers include tagged ones.
    pub(crate) fn set_tagged_providers(&self, tagged: bool) {
        self.tagged_providers.store(tagged, Ordering::Release);
        self.refresh();
    }

    fn refresh(&self) {
        let compiled = self.compiled.load();
        let active = !compiled.conditions.is_empty()
            || !compiled.tags.is_empty()
            || compiled.consumer_set
            || self.tagged_providers.load(Ordering::Acquire)
            || compiled.consumer.param(TAG_KEY).is_some_and(|t| !t.is_empty())
            || compiled.consumer.param(FORCE_TAG_KEY) == Some("true");
        self.active.store(active, Ordering::Release);
    }

    /// `url` as the provider-side overrides in force set it (unchanged when none applies).
    pub fn configure_provider(&self, url: &Url) -> Option<Url> {
        let compiled = self.compiled.load();
        if compiled.provider_configs.is_empty() {
            return None;
        }
        let mut configured: Option<Url> = None;
        for config in &compiled.provider_configs {
            if !config.applies_to_provider(url) {
                continue;
            }
            let target = configured.get_or_insert_with(|| url.clone());
            for (key, value) in &config.parameters {
                if !CONSUMER_ONLY.contains(&key.as_str()) {
                    target.set_param(key.clone(), value.clone());
                }
            }
        }
        configured
    }

    /// The consumer-side overrides for `method`, if a rule sets any: above
    /// every local setting.
    pub fn consumer_overrides(&self, method: &str) -> Option<MethodConfig> {
        let compiled = self.compiled.load();
        if !compiled.consumer_set {
            return None;
        }
        let own = compiled
            .consumer_methods
            .iter()
            .find(|(m, _)| &**m == method)
            .map(|(_, c)| *c)
            .unwrap_or_default();
        Some(own.or(compiled.consumer_all))
    }

    /// The mock a consumer-side rule sets for `method` (`{method}.mock`, else
    /// `mock`), if any: it replaces the reference's own for as long as the
    /// rule stands, as Dubbo's `mock` override does.
    pub fn consumer_mock(&self, method: &str) -> Option<Mock> {
        let compiled = self.compiled.load();
        let mocks = &compiled.mocks;
        if mocks.is_empty() {
            return None;
        }
        mocks
            .methods
            .iter()
            .find(|(m, _)| &**m == method)
            .map(|(_, mock)| mock)
            .or(mocks.all.as_ref())
            .cloned()
    }

    /// The providers a call may reach, in the order given: condition rules
    /// (highest priority first), then the tag router.
    ///
    /// # Errors
    ///
    /// `NoProvider` (not sent) when a rule leaves none: a `force: true`
    /// condition or a blacklist, a forced tag, an untagged call with only
    /// tagged providers.
    pub fn route<'a>(
        &self,
        endpoints: &'a [Endpoint],
        invocation: &Invocation,
    ) -> Result<SmallVec<[&'a Endpoint; 8]>, RpcError> {
        let compiled = self.compiled.load();
        let mut pool: SmallVec<[&Endpoint; 8]> = endpoints.iter().collect();
        let mut args = condition::Arguments::default();
        let _ = compiled.conditions_read_arguments;
        for rule in &compiled.conditions {
            for condition in &rule.conditions {
                if !condition.matches_call(invocation, &compiled.consumer, &mut args) {
                    continue;
                }
                match condition.route(&pool) {
                    Routed::Kept(kept) => pool = kept,
                    Routed::Refused(why) => {
                        return Err(self.routed_out(
                            invocation,
                            format!("no provider after routing by rule {}: {why}", rule.key),
                        ));
                    }
                    Routed::NoMatch if condition.forces(rule.force) => {
                        return Err(self.routed_out(
                            invocation,
                            format!(
                                "no provider after routing by rule {} (condition `{}`, {} provider(s) before it)",
                                rule.key,
                                condition.text(),
                                pool.len()
                            ),
                        ));
                    }
                    Routed::NoMatch => {}
                }
            }
        }
        self.route_tags(&compiled, pool, invocation)
    }

    fn route_tags<'a>(
        &self,
        compiled: &Compiled,
        pool: SmallVec<[&'a Endpoint; 8]>,
        invocation: &Invocation,
    ) -> Result<SmallVec<[&'a Endpoint; 8]>, RpcError> {
        let consumer = &compiled.consumer;
        let tag = invocation
            .attachment(TAG_KEY)
            .filter(|t| !t.is_empty())
            .or_else(|| consumer.param(TAG_KEY).filter(|t| !t.is_empty()));
        let force_tag = invocation
            .attachment(FORCE_TAG_KEY)
            .or_else(|| consumer.param(FORCE_TAG_KEY))
            == Some("true");
        let filter = |pool: &SmallVec<[&'a Endpoint; 8]>,
                      keep: &dyn Fn(&Endpoint) -> bool|
         -> SmallVec<[&'a Endpoint; 8]> { pool.iter().copied().filter(|e| keep(e)).collect() };
        if compiled.tags.is_empty() && !self.tagged_providers.load(Ordering::Acquire) && !force_tag {
            // Nobody is tagged: every provider is an untagged one.
            return Ok(pool);
        }
        let dynamic_tag = |e: &Endpoint| dynamic_tag(&compiled.tags, e);
        let result = match tag {
            Some(tag) => {
                let named = compiled.tags.iter().find(|r| r.names(tag));
                let result = match named {
                    Some(rule) => {
                        let result = filter(&pool, &|e| dynamic_tag(e) == Some(tag));
                        if !result.is_empty() || rule.force {
                            return self.tag_result(result, invocation, Some(tag), &rule.key);
                        }
                        result
                    }
                    None => filter(&pool, &|e| static_tag(e) == tag),
                };
                if !result.is_empty() || force_tag {
                    return self.tag_result(result, invocation, Some(tag), FORCE_TAG_KEY);
                }
                filter(&pool, &|e| dynamic_tag(e).is_none() && static_tag(e).is_empty())
            }
            // Untagged calls never reach a tagged provider (stricter than Dubbo,
            // which lets them reach providers whose static tag a rule does not name).
            None => filter(&pool, &|e| dynamic_tag(e).is_none() && static_tag(e).is_empty()),
        };
        self.tag_result(result, invocation, tag, "the tag router")
    }

    fn tag_result<'a>(
        &self,
        result: SmallVec<[&'a Endpoint; 8]>,
        invocation: &Invocation,
        tag: Option<&str>,
        by: &str,
    ) -> Result<SmallVec<[&'a Endpoint; 8]>, RpcError> {
        if !result.is_empty() {
            return Ok(result);
        }
        let why = match tag {
            Some(tag) => {
                format!("no provider after routing by rule {by}: none is tagged `{tag}` and falling back is forbidden")
            }
            None => "no provider after routing by the tag router: the call has no tag and every provider is tagged"
                .to_string(),
        };
        Err(self.routed_out(invocation, why))
    }

    fn routed_out(&self, invocation: &Invocation, why: String) -> RpcError {
        RpcError::new(ErrorKind::NoProvider, why)
            .with_service(&self.key)
            .with_method(invocation.method())
    }
}

/// A provider's static tag (its URL's `dubbo.tag`), empty when untagged.
fn static_tag(e: &Endpoint) -> &str {
    e.url().param(TAG_KEY).unwrap_or("")
}

/// The tag the rule of a provider's application gives it, if any (Dubbo reads
/// one rule per provider application).
fn dynamic_tag<'r>(tags: &'r [Arc<TagRule>], e: &Endpoint) -> Option<&'r str> {
    let app = e.url().param("application").unwrap_or("");
    tags.iter()
        .find(|r| r.key == app || r.key.is_empty())?
        .tag_of(e.url().host(), e.url().port())
}

/// The consumer-side settings in `params`: for every method, and per method
/// (`{method}.timeout`), and the mocks they set. A value that does not parse
/// is ignored with a warning naming the parameter.
fn consumer_settings(
    key: &ServiceKey,
    params: &BTreeMap<String, String>,
) -> (MethodConfig, Vec<(Box<str>, MethodConfig)>, RuleMocks) {
    let mut all = MethodConfig::new();
    let mut methods: HashMap<String, MethodConfig> = HashMap::new();
    let mut mocks = RuleMocks::default();
    for (name, value) in params {
        let (method, setting) = match name.rsplit_once('.') {
            Some((method, setting)) if name != keys::ATTEMPT_TIMEOUT && name != keys::HASH_ARGUMENTS => {
                (Some(method), setting)
            }
            _ => (None, name.as_str()),
        };
        let target = match method {
            Some(method) => methods.entry(method.to_string()).or_default(),
            None => &mut all,
        };
        let ignored = |why: &str| tracing::warn!(service = %key, parameter = %name, %value, "an override rule's parameter is ignored: {why}");
        let count = |value: &str| value.trim().parse::<u32>().map_err(|_| "not a number");
        match setting {
            "timeout" => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => target.timeout = Some(Duration::from_millis(ms)),
                _ => ignored("not a positive number of milliseconds"),
            },
            "retries" => match count(value) {
                Ok(n) => target.retries = Some(n),
                Err(e) => ignored(e),
            },
            "loadbalance" => match value.parse::<Balancer>() {
                Ok(b) => target.loadbalance = Some(b),
                Err(e) => ignored(&e),
            },
            "cluster" => match value.parse::<ClusterPolicy>() {
                Ok(c) => target.cluster = Some(c),
                Err(e) => ignored(&e),
            },
            // 0 lifts the reference's own limit while the rule stands.
            "actives" => match count(value) {
                Ok(n) => target.actives = Some(n),
                Err(e) => ignored(e),
            },
            "forks" => match count(value) {
                Ok(n) if n > 0 => target.forks = Some(n),
                _ => ignored("not a positive number"),
            },
            "mock" => match Mock::parse(value) {
                Ok(mock) => match method {
                    Some(method) => mocks.methods.push((method.into(), mock)),
                    None => mocks.all = Some(mock),
                },
                Err(e) => ignored(&e),
            },
            _ => {}
        }
    }
    let methods = methods
        .into_iter()
        .filter(|(_, c)| *c != MethodConfig::new())
        .map(|(m, c)| (m.into_boxed_str(), c))
        .collect();
    (all, methods, mocks)
}

#[cfg(test)]
mod tests;
