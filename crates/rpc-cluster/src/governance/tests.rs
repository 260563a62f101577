#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::{BoxInvoker, Outcome, Response, RpcError, Serialization, ServiceKey, Url};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use super::*;
use crate::directory::{Connect, Directory};

#[derive(Default)]
struct Counting {
    made: AtomicUsize,
}

impl Connect for Counting {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        self.made.fetch_add(1, Ordering::Relaxed);
        let invoker = BoxInvoker::new(tower::service_fn(|_| async { Ok::<_, RpcError>(Response::default()) }));
        Some(Endpoint::new(url.clone(), invoker, || true))
    }
}

const KEY: &str = "org.example.Greeter";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn consumer() -> Url {
    url("consumer://10.0.0.9/org.example.Greeter?application=shop")
}

fn call(method: &str) -> Invocation {
    Invocation::new(
        ServiceKey::new(KEY, Some("1.0.0"), None),
        method.to_string(),
        Bytes::new(),
        Serialization::Bincode,
    )
}

type Rules = watch::Sender<Arc<Vec<RuleNode>>>;

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn directory(providers: &[&str], counting: Arc<Counting>) -> (Arc<Directory>, Rules) {
    let urls: Vec<Url> = providers.iter().map(|p| url(p)).collect();
    let (_tx, rx) = watch::channel(Arc::new(urls));
    std::mem::forget(_tx);
    let key = ServiceKey::new(KEY, Some("1.0.0"), None);
    let directory = Directory::new(key, counting, vec![WatchStream::new(rx)]).await;
    let (rules, rules_rx) = watch::channel(Arc::new(Vec::new()));
    directory.govern(consumer(), vec![WatchStream::new(rules_rx)]).await;
    (directory, rules)
}

fn set(rules: &Rules, nodes: &[(&str, &str)]) {
    rules
        .send(Arc::new(nodes.iter().map(|(p, t)| RuleNode::new(*p, *t)).collect()))
        .unwrap();
}

fn routed(directory: &Directory, invocation: &Invocation) -> Result<Vec<String>, RpcError> {
    let endpoints = directory.endpoints();
    let mut addresses: Vec<String> = if directory.governance().is_active() {
        directory
            .governance()
            .route(&endpoints, invocation)?
            .iter()
            .map(|e| e.address().to_string())
            .collect()
    } else {
        endpoints.iter().map(|e| e.address().to_string()).collect()
    };
    addresses.sort();
    Ok(addresses)
}

const A: &str = "rpc://10.0.0.1:20880/org.example.Greeter?version=1.0.0&application=greeter&region=eu";
const B: &str = "rpc://10.0.0.2:20880/org.example.Greeter?version=1.0.0&application=greeter&region=us";
const SERVICE_NODE: &str = "/dubbo/config/dubbo/org.example.Greeter:1.0.0:";

#[tokio::test]
async fn provider_overrides_apply_in_place_and_removal_restores() {
    let counting = Arc::new(Counting::default());
    let (directory, rules) = directory(&[A, B], counting.clone()).await;
    let before = directory
        .endpoints()
        .iter()
        .find(|e| e.address() == "10.0.0.1:20880")
        .cloned()
        .unwrap();
    let _in_flight = before.stats().start();
    assert!(!directory.governance().is_active(), "no rule: calls are not routed");
    let yaml = "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nenabled: true\nconfigs:\n  - addresses: [\"10.0.0.1:20880\"]\n    side: provider\n    parameters:\n      weight: 300\n      retries: 7\n  - addresses: [\"10.0.0.2\"]\n    side: provider\n    parameters:\n      disabled: true\n";
    set(&rules, &[(&format!("{SERVICE_NODE}.configurators"), yaml)]);
    settle().await;
    let endpoints = directory.endpoints();
    assert_eq!(endpoints.len(), 1, "B is disabled");
    assert_eq!(endpoints[0].url().param("weight"), Some("300"));
    assert_eq!(
        endpoints[0].url().param("retries"),
        None,
        "retries are the consumer's alone"
    );
    assert_eq!(endpoints[0].stats().active(), 1, "statistics survive");
    // Deleting the rule restores both, with no new connection for A.
    set(&rules, &[]);
    settle().await;
    let endpoints = directory.endpoints();
    assert_eq!(endpoints.len(), 2);
    let a = endpoints.iter().find(|e| e.address() == "10.0.0.1:20880").unwrap();
    assert_eq!(a.url().param("weight"), None);
    assert_eq!(a.stats().active(), 1);
    assert_eq!(
        counting.made.load(Ordering::Relaxed),
        3,
        "A kept its connection; B was connected again"
    );
}

#[tokio::test]
async fn legacy_override_urls_disable_a_provider() {
    let (directory, rules) = directory(&[A, B], Arc::default()).await;
    let node = "/dubbo/org.example.Greeter/configurators/override%3A%2F%2F10.0.0.2%3A20880";
    set(
        &rules,
        &[(
            node,
            "override://10.0.0.2:20880/org.example.Greeter?category=configurators&dynamic=false&disabled=true",
        )],
    );
    settle().await;
    assert_eq!(routed(&directory, &call("sayHello")).unwrap(), ["10.0.0.1:20880"]);
}

#[tokio::test]
async fn consumer_overrides_rank_above_local_settings() {
    let (directory, rules) = directory(&[A, B], Arc::default()).await;
    let cluster = crate::Cluster::builder(directory.clone())
        .reference(MethodConfig::new().with_timeout(Duration::from_secs(3)).with_retries(4))
        .method("sayHello", MethodConfig::new().with_timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    assert_eq!(cluster.settings("sayHello").timeout, Duration::from_secs(5));
    let yaml = "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nconfigs:\n  - side: consumer\n    parameters:\n      timeout: 250\n      retries: 0\n      sayHello.loadbalance: roundrobin\n";
    set(&rules, &[(&format!("{SERVICE_NODE}.configurators"), yaml)]);
    settle().await;
    let s = cluster.settings("sayHello");
    assert_eq!(
        s.timeout,
        Duration::from_millis(250),
        "the rule's timeout is the whole call's budget"
    );
    assert_eq!(s.retries, 0);
    assert_eq!(s.loadbalance, crate::settings::Balance::Builtin(Balancer::RoundRobin));
    assert_eq!(
        cluster.settings("other").loadbalance,
        crate::settings::Balance::Builtin(Balancer::Random)
    );
    // Provider URLs are untouched by consumer-side configs.
    assert!(directory.endpoints().iter().all(|e| e.url().param("timeout").is_none()));
    set(&rules, &[]);
    settle().await;
    assert_eq!(
        cluster.settings("sayHello").timeout,
        Duration::from_secs(5),
        "removal restores"
    );
    assert_eq!(cluster.settings("sayHello").retries, 4);
    // Another application's or host's rule does not apply.
    let yaml = "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nconfigs:\n  - side: consumer\n    applications: [other]\n    parameters: {timeout: 1}\n  - side: consumer\n    addresses: [10.9.9.9]\n    parameters: {timeout: 2}\n";
    set(&rules, &[(&format!("{SERVICE_NODE}.configurators"), yaml)]);
    settle().await;
    assert_eq!(cluster.settings("sayHello").timeout, Duration::from_secs(5));
}

#[tokio::test]
async fn condition_rules_route_fall_back_or_fail() {
    let (directory, rules) = directory(&[A, B], Arc::default()).await;
    let node = format!("{SERVICE_NODE}.condition-router");
    let rule = |force: bool, then: &str| {
        format!(
            "configVersion: v3.0\nscope: service\nforce: {force}\nruntime: true\nenabled: true\nkey: org.example.Greeter:1.0.0\nconditions:\n  - method=sayHello => {then}\n"
        )
    };
    set(&rules, &[(&node, &rule(false, "region=eu"))]);
    settle().await;
    assert_eq!(routed(&directory, &call("sayHello")).unwrap(), ["10.0.0.1:20880"]);
    assert_eq!(
        routed(&directory, &call("other")).unwrap().len(),
        2,
        "other methods are not routed"
    );
    // No match, force false: every provider.
    set(&rules, &[(&node, &rule(false, "region=cn"))]);
    settle().await;
    assert_eq!(routed(&directory, &call("sayHello")).unwrap().len(), 2);
    // No match, force true: a clear, not-sent error.
    set(&rules, &[(&node, &rule(true, "region=cn"))]);
    settle().await;
    let error = routed(&directory, &call("sayHello")).unwrap_err();
    assert_eq!(error.outcome(), Outcome::NotSent);
    assert!(
        error
            .to_string()
            .contains("no provider after routing by rule org.example.Greeter:1.0.0"),
        "{error}"
    );
    // Disabled: nothing routed.
    set(
        &rules,
        &[(
            &node,
            &rule(true, "region=cn").replace("enabled: true", "enabled: false"),
        )],
    );
    settle().await;
    assert!(!directory.governance().is_active());
}

#[tokio::test]
async fn a_bad_rule_keeps_the_last_good_one() {
    let (directory, rules) = directory(&[A, B], Arc::default()).await;
    let node = format!("{SERVICE_NODE}.condition-router");
    let good = "key: org.example.Greeter:1.0.0\nconditions:\n  - => region=eu\n";
    set(&rules, &[(&node, good)]);
    settle().await;
    assert_eq!(routed(&directory, &call("m")).unwrap(), ["10.0.0.1:20880"]);
    for bad in [
        "key: org.example.Greeter:1.0.0\nconditions:\n  - => region=\n",
        "key: [unclosed\n",
        "key: org.example.Greeter:1.0.0\ncondition: [\"=> region=us\"]\n",
    ] {
        set(&rules, &[(&node, bad)]);
        settle().await;
        assert_eq!(routed(&directory, &call("m")).unwrap(), ["10.0.0.1:20880"], "{bad}");
    }
    // A bad first version routes nothing (never empties routing).
    let other = format!("{SERVICE_NODE}.tag-router");
    set(&rules, &[(&node, good), (&other, "tags: {")]);
    settle().await;
    assert_eq!(routed(&directory, &call("m")).unwrap(), ["10.0.0.1:20880"]);
}

#[tokio::test]
async fn tag_rules_and_static_tags() {
    let c = "rpc://10.0.0.3:20880/org.example.Greeter?version=1.0.0&application=greeter";
    let gray_static = "rpc://10.0.0.4:20880/org.example.Greeter?version=1.0.0&application=greeter&dubbo.tag=gray";
    let (directory, rules) = directory(&[A, B, c, gray_static], Arc::default()).await;
    assert!(
        directory.governance().is_active(),
        "a tagged provider: calls are routed"
    );
    let mut gray = call("m");
    gray.set_attachment(TAG_KEY, "gray");
    assert_eq!(routed(&directory, &gray).unwrap(), ["10.0.0.4:20880"]);
    let untagged = routed(&directory, &call("m")).unwrap();
    assert_eq!(untagged, ["10.0.0.1:20880", "10.0.0.2:20880", "10.0.0.3:20880"]);
    let mut blue = call("m");
    blue.set_attachment(TAG_KEY, "blue");
    assert_eq!(
        routed(&directory, &blue).unwrap(),
        untagged,
        "no blue provider: the untagged ones"
    );
    blue.set_attachment(FORCE_TAG_KEY, "true");
    let error = routed(&directory, &blue).unwrap_err();
    assert!(error.to_string().contains("none is tagged `blue`"), "{error}");

    // A tag rule: A and B are canary.
    let yaml = "force: false\nruntime: true\nenabled: true\nkey: greeter\ntags:\n  - name: canary\n    addresses: [\"10.0.0.1:20880\", \"10.0.0.2\"]\n";
    set(&rules, &[("/dubbo/config/dubbo/greeter.tag-router", yaml)]);
    settle().await;
    let mut canary = call("m");
    canary.set_attachment(TAG_KEY, "canary");
    assert_eq!(
        routed(&directory, &canary).unwrap(),
        ["10.0.0.1:20880", "10.0.0.2:20880"]
    );
    // Untagged calls never reach the rule's canaries nor the static gray one.
    assert_eq!(routed(&directory, &call("m")).unwrap(), ["10.0.0.3:20880"]);
    // A tag the rule names, but whose providers are gone, with force: fails; without: the untagged.
    let forced = yaml
        .replace("force: false", "force: true")
        .replace("10.0.0.2\"", "10.0.0.8\"")
        .replace("10.0.0.1:20880", "10.0.0.9:1");
    set(&rules, &[("/dubbo/config/dubbo/greeter.tag-router", &forced)]);
    settle().await;
    let error = routed(&directory, &canary).unwrap_err();
    assert!(error.to_string().contains("by rule greeter"), "{error}");
    set(
        &rules,
        &[(
            "/dubbo/config/dubbo/greeter.tag-router",
            &forced.replace("force: true", "force: false"),
        )],
    );
    settle().await;
    assert_eq!(
        routed(&directory, &canary).unwrap(),
        ["10.0.0.1:20880", "10.0.0.2:20880", "10.0.0.3:20880"]
    );
}

#[tokio::test]
async fn rules_that_look_wrong_are_doubted_and_still_apply() {
    let (directory, _rules) = directory(&[A, B], Arc::default()).await;
    let consumer = url("consumer://10.0.0.9/org.example.Greeter?application=shop&methods=sayHello,placeOrder");
    let governance = directory.governance();
    let rule = ConditionRule::parse(
        "key: org.example.Greeter:1.0.0\nconditions:\n  - method=sayHelo => region=eu\n",
        &consumer,
    )
    .unwrap();
    let doubts = governance.doubts(
        &Parsed::Condition(Arc::new(rule)),
        "org.example.Greeter:1.0.0:",
        &consumer,
    );
    assert_eq!(doubts.len(), 1, "{doubts:?}");
    assert!(
        doubts[0].contains("names method `sayHelo`, which org.example.Greeter does not have"),
        "{doubts:?}"
    );
    let other =
        OverrideRule::parse("key: org.example.Nope:1.0.0\nconfigs:\n  - side: provider\n    parameters: {weight: 1}\n")
            .unwrap();
    let doubts = governance.doubts(
        &Parsed::Override(Arc::new(other)),
        "org.example.Greeter:1.0.0:",
        &consumer,
    );
    assert!(doubts[0].contains("names another service"), "{doubts:?}");
    // Dubbo's own key forms are fine.
    for key in [
        "org.example.Greeter:1.0.0",
        "g/org.example.Greeter:1.0.0",
        "org.example.Greeter",
    ] {
        let ok = OverrideRule::parse(&format!(
            "key: {key}\nconfigs:\n  - side: provider\n    parameters: {{weight: 1}}\n"
        ))
        .unwrap();
        assert!(
            governance
                .doubts(&Parsed::Override(Arc::new(ok)), "org.example.Greeter:1.0.0:", &consumer)
                .is_empty(),
            "{key}"
        );
    }
}

#[tokio::test]
async fn a_provider_applications_override_sets_its_providers_only() {
    let other = "rpc://10.0.0.3:20880/org.example.Greeter?version=1.0.0&application=billing";
    let (directory, rules) = directory(&[A, B, other], Arc::default()).await;
    let cluster = crate::Cluster::builder(directory.clone()).build().unwrap();
    // dubbo-admin's application-scope rule, keyed by the provider application.
    let yaml = "configVersion: v3.0\nscope: application\nkey: greeter\nconfigs:\n  - side: provider\n    parameters:\n      weight: 7\n  - side: consumer\n    parameters:\n      timeout: 1\n";
    set(&rules, &[("/dubbo/config/dubbo/greeter.configurators", yaml)]);
    settle().await;
    let weights: Vec<(String, Option<String>)> = {
        let mut w: Vec<_> = directory
            .endpoints()
            .iter()
            .map(|e| (e.address().to_string(), e.url().param("weight").map(str::to_string)))
            .collect();
        w.sort();
        w
    };
    assert_eq!(
        weights,
        [
            ("10.0.0.1:20880".to_string(), Some("7".to_string())),
            ("10.0.0.2:20880".to_string(), Some("7".to_string())),
            ("10.0.0.3:20880".to_string(), None),
        ]
    );
    // Its consumer-side configs are not this consumer's.
    assert_eq!(cluster.settings("sayHello").timeout, crate::settings::DEFAULT_TIMEOUT);
}

/// Providers that refuse every attempt (counted), or hang when `hang` is set.
#[derive(Default)]
struct Failing {
    attempts: Arc<AtomicUsize>,
    hang: bool,
}

impl Connect for Failing {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        let (attempts, hang) = (self.attempts.clone(), self.hang);
        let invoker = BoxInvoker::new(tower::service_fn(move |_| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Err::<Response, _>(RpcError::new(rpc_core::ErrorKind::ConnectionLost, "lost"))
            }
        }));
        Some(Endpoint::new(url.clone(), invoker, || true))
    }
}

async fn failing_directory(failing: Failing) -> (Arc<Directory>, Rules) {
    let (_tx, rx) = watch::channel(Arc::new(vec![url(A), url(B)]));
    std::mem::forget(_tx);
    let key = ServiceKey::new(KEY, Some("1.0.0"), None);
    let directory = Directory::new(key, Arc::new(failing), vec![WatchStream::new(rx)]).await;
    let (rules, rules_rx) = watch::channel(Arc::new(Vec::new()));
    directory.govern(consumer(), vec![WatchStream::new(rules_rx)]).await;
    (directory, rules)
}

fn consumer_rule(parameters: &str) -> String {
    format!(
        "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nconfigs:\n  - side: consumer\n    parameters: {{{parameters}}}\n"
    )
}

#[tokio::test]
async fn consumer_rules_set_the_policy_and_the_mock() {
    use tower::ServiceExt;
    let attempts = Arc::new(AtomicUsize::new(0));
    let (directory, rules) = failing_directory(Failing {
        attempts: attempts.clone(),
        hang: false,
    })
    .await;
    let cluster = crate::Cluster::builder(directory.clone())
        .reference(MethodConfig::new().with_retries(2))
        .build()
        .unwrap();
    let attempts_of = |cluster: crate::Cluster| {
        let attempts = attempts.clone();
        async move {
            attempts.store(0, Ordering::SeqCst);
            let result = cluster.oneshot(call("sayHello")).await;
            (result, attempts.load(Ordering::SeqCst))
        }
    };
    let (result, failover) = attempts_of(cluster.clone()).await;
    assert!(result.is_err());
    assert!(failover >= 2, "failover retries: {failover} attempts");

    let node = format!("{SERVICE_NODE}.configurators");
    set(&rules, &[(&node, &consumer_rule("cluster: failfast"))]);
    settle().await;
    let (result, n) = attempts_of(cluster.clone()).await;
    assert!(result.is_err());
    assert_eq!(n, 1, "the rule's failfast makes one attempt");

    set(
        &rules,
        &[(&node, &consumer_rule("sayHello.mock: 'return \"degraded\"'"))],
    );
    settle().await;
    let (result, n) = attempts_of(cluster.clone()).await;
    let response = result.expect("the rule's mock answers the failed call");
    assert_eq!(response.decode::<String>(Serialization::Bincode).unwrap(), "degraded");
    assert_eq!(n, failover, "a fail mock answers after the policy gave up");
    let (result, _) = {
        attempts.store(0, Ordering::SeqCst);
        (cluster.clone().oneshot(call("other")).await, ())
    };
    assert!(result.is_err(), "the mock is sayHello's only");

    set(&rules, &[(&node, &consumer_rule("mock: 'force:return \"cached\"'"))]);
    settle().await;
    let (result, n) = attempts_of(cluster.clone()).await;
    assert_eq!(
        result.unwrap().decode::<String>(Serialization::Bincode).unwrap(),
        "cached"
    );
    assert_eq!(n, 0, "a forced mock never calls");

    // A mock that does not parse is ignored (with a warning); removal restores.
    set(&rules, &[(&node, &consumer_rule("mock: 'throw oops'"))]);
    settle().await;
    let (result, n) = attempts_of(cluster.clone()).await;
    assert!(result.is_err());
    assert_eq!(n, failover);
    set(&rules, &[]);
    settle().await;
    let (_, n) = attempts_of(cluster).await;
    assert_eq!(n, failover);
}

#[tokio::test(start_paused = true)]
async fn a_consumer_rule_sets_the_actives_limit() {
    use tower::ServiceExt;
    let (directory, rules) = failing_directory(Failing {
        attempts: Arc::default(),
        hang: true,
    })
    .await;
    let cluster = crate::Cluster::builder(directory.clone())
        .reference(MethodConfig::new().with_timeout(Duration::from_millis(500)))
        .build()
        .unwrap();
    let node = format!("{SERVICE_NODE}.configurators");
    set(&rules, &[(&node, &consumer_rule("actives: 1"))]);
    settle().await;
    let first = tokio::spawn(cluster.clone().oneshot(call("sayHello")));
    settle().await;
    let error = cluster.clone().oneshot(call("sayHello")).await.unwrap_err();
    assert_eq!(error.kind(), rpc_core::ErrorKind::LocalLimit, "{error}");
    assert!(error.to_string().contains("actives limit of 1"), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent);
    first.abort();
    // `actives: 0` lifts the limit: a second call runs into the provider's hang (a timeout).
    set(&rules, &[(&node, &consumer_rule("actives: 0"))]);
    settle().await;
    let first = tokio::spawn(cluster.clone().oneshot(call("sayHello")));
    settle().await;
    let error = cluster.clone().oneshot(call("sayHello")).await.unwrap_err();
    assert_ne!(error.kind(), rpc_core::ErrorKind::LocalLimit, "{error}");
    first.abort();
}

#[tokio::test]
async fn v3_1_conditions_pick_weighted_destinations() {
    let (directory, rules) = directory(&[A, B], Arc::default()).await;
    let node = format!("{SERVICE_NODE}.condition-router");
    let rule = |conditions: &str| {
        format!(
            "configVersion: v3.1\nscope: service\nkey: org.example.Greeter:1.0.0\nforce: false\nconditions:\n{conditions}"
        )
    };
    set(
        &rules,
        &[(
            &node,
            &rule(
                "  - from: {match: method=sayHello}\n    to:\n      - {match: region=eu, weight: 80}\n      - {match: region=us, weight: 20}\n",
            ),
        )],
    );
    settle().await;
    let mut eu = 0;
    for _ in 0..2000 {
        let routed = routed(&directory, &call("sayHello")).unwrap();
        assert_eq!(routed.len(), 1, "one destination per call: {routed:?}");
        if routed[0] == "10.0.0.1:20880" {
            eu += 1;
        }
    }
    assert!((1450..=1750).contains(&eu), "80:20 by weight, got {eu} of 2000 to eu");
    assert_eq!(
        routed(&directory, &call("other")).unwrap().len(),
        2,
        "`from` does not match"
    );

    // A destination without providers is passed over; with none, force decides.
    set(
        &rules,
        &[(
            &node,
            &rule(
                "  - from: {match: method=sayHello}\n    to:\n      - {match: region=cn}\n      - {match: region=us}\n",
            ),
        )],
    );
    settle().await;
    assert_eq!(routed(&directory, &call("sayHello")).unwrap(), ["10.0.0.2:20880"]);
    set(
        &rules,
        &[(
            &node,
            &rule("  - from: {match: method=sayHello}\n    to: [{match: region=cn}]\n"),
        )],
    );
    settle().await;
    assert_eq!(
        routed(&directory, &call("sayHello")).unwrap().len(),
        2,
        "no force: all providers"
    );
    set(
        &rules,
        &[(
            &node,
            &rule("  - from: {match: method=sayHello}\n    force: true\n    to: [{match: region=cn}]\n"),
        )],
    );
    settle().await;
    let error = routed(&directory, &call("sayHello")).unwrap_err();
    assert!(
        error.to_string().contains("no provider after routing by rule"),
        "{error}"
    );
    assert_eq!(error.outcome(), Outcome::NotSent);

    // ratio: one provider of two is 50%, not more than 60%.
    set(
        &rules,
        &[(
            &node,
            &rule("  - from: {match: method=sayHello}\n    ratio: 60\n    to: [{match: region=eu}]\n"),
        )],
    );
    settle().await;
    let error = routed(&directory, &call("sayHello")).unwrap_err();
    assert!(error.to_string().contains("ratio of 60%"), "{error}");
    set(
        &rules,
        &[(
            &node,
            &rule("  - from: {match: method=sayHello}\n    ratio: 40\n    to: [{match: region=eu}]\n"),
        )],
    );
    settle().await;
    assert_eq!(routed(&directory, &call("sayHello")).unwrap(), ["10.0.0.1:20880"]);

    // trafficDisable refuses what `from` matches, nothing else.
    set(
        &rules,
        &[(
            &node,
            &rule("  - from: {match: method=sayHello}\n    trafficDisable: true\n"),
        )],
    );
    settle().await;
    let error = routed(&directory, &call("sayHello")).unwrap_err();
    assert!(error.to_string().contains("traffic is disabled"), "{error}");
    assert_eq!(routed(&directory, &call("other")).unwrap().len(), 2);

    // Priority orders conditions within the rule: the higher one narrows first.
    set(
        &rules,
        &[(
            &node,
            &rule("  - {priority: 1, to: [{match: region=us}]}\n  - {priority: 5, to: [{match: region=eu}]}\n"),
        )],
    );
    settle().await;
    assert_eq!(
        routed(&directory, &call("sayHello")).unwrap(),
        ["10.0.0.1:20880"],
        "priority 5 routes to eu first; then us finds none there and (no force) keeps eu"
    );
}
