//! Governance rules end to end: a real ZooKeeper, providers as real
//! processes (the `greeter-provider` example), a consumer in this process,
//! and rules written the way an operator writes them (Python's kazoo, the
//! exact YAML or URL text; `tests/python/zk_rules.py`), never through our API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rpc::{Balancer, ErrorKind, Outcome};
use rpc_examples::GreeterClient;
use rpc_tests::python;
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ProviderProcess, wait_until};
use tokio::time::Instant;

const SERVICE_NODE: &str = "/dubbo/config/dubbo/org.example.Greeter:1.0.0:";

fn registry(zk: &ZooKeeper) -> String {
    format!("{}?session=30000&timeout=5000", zk.url())
}

fn spawn_provider(registry: &str, tag: &str, extra: &[&str]) -> ProviderProcess {
    let mut args = vec!["--registry", registry, "--port", "0", "--warmup-ms", "0", "--tag", tag];
    args.extend_from_slice(extra);
    ProviderProcess::spawn(&args)
}

/// Runs `zk_rules.py` (kazoo) with `args`; returns when ZooKeeper has the write.
async fn operator(zk: &ZooKeeper, args: &[&str]) -> Instant {
    let mut all = vec![zk.connect_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Instant::from_std(python::write_rules(refs[0], &refs[1..]))
    })
    .await
    .unwrap()
}

async fn consumer(registry: &str) -> rpc::Consumer {
    rpc::Consumer::builder()
        .application("shop")
        .registry(registry)
        .build()
        .await
        .unwrap()
}

/// Who answered: the tag at the end of the greeting.
fn from(reply: &str) -> String {
    reply.rsplit(" from ").next().unwrap_or_default().to_string()
}

/// Counts of `n` sequential calls by provider tag.
async fn spread(greeter: &GreeterClient, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let reply = greeter.say_hello(format!("c{i}")).await.unwrap();
        *counts.entry(from(&reply)).or_default() += 1;
    }
    counts
}

/// 16 callers looping until stopped, recording who answered and when each
/// call answered by `watched` started.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    /// When the latest call that `watched` answered started.
    watched_latest: Arc<Mutex<Option<Instant>>>,
    watched_count: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(greeter: &GreeterClient, watched: &str) -> Load {
        let load = Load {
            stop: Arc::default(),
            ok: Arc::default(),
            failed: Arc::default(),
            errors: Arc::default(),
            watched_latest: Arc::default(),
            watched_count: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for c in 0..16 {
            let (greeter, stop, ok, failed, errors, latest, count) = (
                greeter.clone(),
                load.stop.clone(),
                load.ok.clone(),
                load.failed.clone(),
                load.errors.clone(),
                load.watched_latest.clone(),
                load.watched_count.clone(),
            );
            let watched = watched.to_string();
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match greeter.say_hello(format!("c{c}-{i}")).await {
                        Ok(reply) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if from(&reply) == watched {
                                count.fetch_add(1, Ordering::Relaxed);
                                let mut latest = latest.lock().unwrap();
                                *latest = Some(latest.map_or(started, |l| l.max(started)));
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut errors = errors.lock().unwrap();
                            if errors.len() < 10 {
                                errors.push(e.to_string());
                            }
                        }
                    }
                    i += 1;
                }
            }));
        }
        Load { tasks, ..load }
    }

    async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v3_override_disables_a_provider_under_load_with_no_failed_call_and_deleting_it_brings_it_back() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let _a = spawn_provider(&registry, "a", &[]);
    let b = spawn_provider(&registry, "b", &[]);
    let consumer = consumer(&registry).await;
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().check(true).build().await.unwrap();
    let load = Load::start(&greeter, "b");
    let seen = load.watched_count.clone();
    wait_until("b takes calls", Duration::from_secs(10), || {
        seen.load(Ordering::Relaxed) > 100
    })
    .await;

    let rule = format!(
        "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nenabled: true\nconfigs:\n  - addresses: [\"{}\"]\n    side: provider\n    parameters:\n      disabled: true\n",
        b.address
    );
    let path = format!("{SERVICE_NODE}.configurators");
    let written = operator(&zk, &["set", &path, &rule]).await;
    // Let the load run on well past the 100 ms the rule has to take effect.
    let after = seen.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let latest = load.watched_latest.lock().unwrap().unwrap();
    assert!(
        latest < written + Duration::from_millis(100),
        "a call started {:?} after the rule was written still reached b",
        latest - written
    );
    assert!(seen.load(Ordering::Relaxed) - after < 2000, "b left traffic");

    // Deleting the rule brings b back.
    operator(&zk, &["delete", &path]).await;
    let back = seen.load(Ordering::Relaxed);
    wait_until("b takes calls again", Duration::from_secs(5), || {
        seen.load(Ordering::Relaxed) > back + 50
    })
    .await;
    let (ok, failed, errors) = load.stop().await;
    assert_eq!(failed, 0, "no call failed: {errors:?}");
    assert!(ok > 1000, "the load ran ({ok} calls)");
    println!(
        "figure: disable under load: ok={ok} failed={failed}, last call to b started {:?} after the write",
        latest.saturating_duration_since(written)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_side_weight_rule_shifts_round_robin_to_three_to_one() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let a = spawn_provider(&registry, "a", &[]);
    let _b = spawn_provider(&registry, "b", &[]);
    let consumer = consumer(&registry).await;
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .loadbalance(Balancer::RoundRobin)
        .check(true)
        .build()
        .await
        .unwrap();
    let before = spread(&greeter, 400).await;
    assert_eq!(before.get("a"), Some(&200), "{before:?}");
    let rule = format!(
        "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nconfigs:\n  - addresses: [\"{}\"]\n    side: provider\n    parameters:\n      weight: 300\n",
        a.address
    );
    operator(&zk, &["set", &format!("{SERVICE_NODE}.configurators"), &rule]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = spread(&greeter, 400).await;
        let on_a = after.get("a").copied().unwrap_or(0);
        if (295..=305).contains(&on_a) {
            // Settled: smooth round robin gives exactly 3 of every 4 calls to a.
            let settled = spread(&greeter, 400).await;
            assert_eq!(settled.get("a"), Some(&300), "{settled:?}");
            println!("figure: weight 300 vs 100, round robin, 400 calls: {settled:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no 3:1 split within 10 s: {after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_override_url_disables_a_provider() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let _a = spawn_provider(&registry, "a", &[]);
    let b = spawn_provider(&registry, "b", &[]);
    let consumer = consumer(&registry).await;
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().check(true).build().await.unwrap();
    let rule = format!(
        "override://{}/org.example.Greeter?category=configurators&dynamic=false&enabled=true&disabled=true",
        b.address
    );
    operator(&zk, &["child", "/dubbo/org.example.Greeter/configurators", &rule]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = spread(&greeter, 50).await;
        if counts.get("a") == Some(&50) {
            break;
        }
        assert!(Instant::now() < deadline, "b still called: {counts:?}");
    }
    // Settled: b takes nothing.
    assert_eq!(spread(&greeter, 200).await.get("a"), Some(&200));
}

async fn greeter_with_regions(zk: &ZooKeeper) -> (GreeterClient, rpc::Consumer, Vec<ProviderProcess>) {
    let registry = registry(zk);
    let eu = spawn_provider(&registry, "eu", &["--param", "region=eu"]);
    let us = spawn_provider(&registry, "us", &["--param", "region=us"]);
    let consumer = consumer(&registry).await;
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().check(true).build().await.unwrap();
    (greeter, consumer, vec![eu, us])
}

fn condition_rule(force: bool, then: &str) -> String {
    format!(
        "configVersion: v3.0\nscope: service\nforce: {force}\nruntime: true\nenabled: true\nkey: org.example.Greeter:1.0.0\nconditions:\n  - method=sayHello => {then}\n"
    )
}

/// Waits until every one of 40 calls is answered as `expect` says.
async fn until_routed(greeter: &GreeterClient, what: &str, expect: impl Fn(&HashMap<String, usize>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = spread(greeter, 40).await;
        if expect(&counts) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_rule_routes_by_region_falls_back_without_force_and_fails_clearly_with_it() {
    let zk = ZooKeeper::start();
    let (greeter, _consumer, _providers) = greeter_with_regions(&zk).await;
    let path = format!("{SERVICE_NODE}.condition-router");
    operator(&zk, &["set", &path, &condition_rule(false, "region=eu")]).await;
    until_routed(&greeter, "sayHello only to eu", |c| c.get("eu") == Some(&40)).await;
    assert_eq!(spread(&greeter, 100).await.get("eu"), Some(&100));

    // No provider in cn, force false: every provider again.
    operator(&zk, &["set", &path, &condition_rule(false, "region=cn")]).await;
    until_routed(&greeter, "fallback to all", |c| c.len() == 2).await;

    // force true: a clear error, not sent.
    operator(&zk, &["set", &path, &condition_rule(true, "region=cn")]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let error = loop {
        match greeter.say_hello("x".into()).await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "force: true never applied"),
        }
    };
    assert_eq!(error.kind(), ErrorKind::NoProvider, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent);
    assert!(
        error
            .to_string()
            .contains("no provider after routing by rule org.example.Greeter:1.0.0"),
        "{error}"
    );
    // The legacy form works the same: the v3 rule deleted, a condition:// URL.
    operator(&zk, &["delete", &path]).await;
    let legacy = "condition://0.0.0.0/org.example.Greeter?category=routers&dynamic=false&force=false&rule=method%3DsayHello+%3D%3E+region%3Dus";
    operator(&zk, &["child", "/dubbo/org.example.Greeter/routers", legacy]).await;
    until_routed(&greeter, "sayHello only to us", |c| c.get("us") == Some(&40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_routing_sends_tagged_calls_to_the_gray_provider_and_untagged_ones_never() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let _stable = spawn_provider(&registry, "stable", &[]);
    let _gray = spawn_provider(&registry, "gray", &["--param", "dubbo.tag=gray"]);
    let canary = spawn_provider(&registry, "canary", &[]);
    let consumer = consumer(&registry).await;
    let plain: GreeterClient = consumer.reference::<GreeterClient>().check(true).build().await.unwrap();
    let gray: GreeterClient = consumer
        .reference::<GreeterClient>()
        .tag("gray")
        .check(true)
        .build()
        .await
        .unwrap();
    let tagged = spread(&gray, 100).await;
    assert_eq!(tagged.get("gray"), Some(&100), "{tagged:?}");
    let untagged = spread(&plain, 200).await;
    assert_eq!(untagged.get("gray"), None, "{untagged:?}");
    assert_eq!(untagged.values().sum::<usize>(), 200);

    // A tag rule makes the canary process `canary`: canary calls reach it
    // alone, untagged ones no longer do.
    let rule = format!(
        "configVersion: v3.0\nforce: true\nenabled: true\nruntime: true\nkey: greeter-provider\ntags:\n  - name: canary\n    addresses: [\"{}\"]\n",
        canary.address
    );
    operator(&zk, &["set", "/dubbo/config/dubbo/greeter-provider.tag-router", &rule]).await;
    let canary_calls: GreeterClient = consumer
        .reference::<GreeterClient>()
        .tag("canary")
        .build()
        .await
        .unwrap();
    until_routed(&canary_calls, "canary calls to the canary", |c| {
        c.get("canary") == Some(&40)
    })
    .await;
    until_routed(&plain, "untagged calls to stable only", |c| {
        c.get("stable") == Some(&40)
    })
    .await;
}

/// WARN events of the rules' code, formatted, for the malformed-rule test.
fn warnings() -> &'static Mutex<Vec<String>> {
    static WARNINGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    WARNINGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        struct Collect;
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
            fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                if *event.metadata().level() != tracing::Level::WARN {
                    return;
                }
                struct Text(String);
                impl tracing::field::Visit for Text {
                    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                        self.0.push_str(&format!("{}={:?} ", field.name(), value));
                    }
                }
                let mut text = Text(String::new());
                event.record(&mut text);
                warnings().lock().unwrap().push(text.0);
            }
        }
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Collect));
        Mutex::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_rule_keeps_the_previous_routing_and_warns_once() {
    let _ = warnings();
    let zk = ZooKeeper::start();
    let (greeter, _consumer, _providers) = greeter_with_regions(&zk).await;
    let path = format!("{SERVICE_NODE}.condition-router");
    operator(&zk, &["set", &path, &condition_rule(false, "region=eu")]).await;
    until_routed(&greeter, "sayHello only to eu", |c| c.get("eu") == Some(&40)).await;
    let count = || {
        warnings()
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.contains("cannot read the rule") && w.contains("condition-router"))
            .count()
    };
    let bad = "configVersion: v3.0\nkey: org.example.Greeter:1.0.0\nconditions:\n  - method=sayHello => region=\n";
    operator(&zk, &["set", &path, bad]).await;
    wait_until("a warning naming the node", Duration::from_secs(5), || count() == 1).await;
    // Written again (a new version of the node, the same text): no second warning.
    operator(&zk, &["set", &path, bad]).await;
    for _ in 0..3 {
        assert_eq!(
            spread(&greeter, 100).await.get("eu"),
            Some(&100),
            "the last good rule routes"
        );
    }
    // Unknown keys and broken YAML: one warning each, routing unchanged.
    operator(&zk, &["set", &path, "configVersion: v3.0\nkey: x\nconditons: []\n"]).await;
    operator(&zk, &["set", &path, "conditions: [unclosed\n"]).await;
    wait_until("three warnings", Duration::from_secs(5), || count() == 3).await;
    assert_eq!(spread(&greeter, 100).await.get("eu"), Some(&100));
    let all = warnings().lock().unwrap().clone();
    let ours: Vec<&String> = all.iter().filter(|w| w.contains("cannot read the rule")).collect();
    assert!(
        ours.iter().all(|w| w.contains(&path)),
        "each warning names the node: {ours:?}"
    );
    assert!(ours[1].contains("unknown field `conditons`"), "{ours:?}");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_churn_under_load_fails_no_call_and_grows_no_memory() {
    let zk = ZooKeeper::start();
    let (greeter, _consumer, _providers) = greeter_with_regions(&zk).await;
    let load = Load::start(&greeter, "eu");
    let seen = load.watched_count.clone();
    wait_until("the load runs", Duration::from_secs(10), || {
        seen.load(Ordering::Relaxed) > 200
    })
    .await;
    let path = format!("{SERVICE_NODE}.condition-router");
    // Warm up: the first rule, then measure from there.
    operator(
        &zk,
        &[
            "churn",
            &path,
            "20",
            &condition_rule(false, "region=eu"),
            &condition_rule(false, "region=us"),
        ],
    )
    .await;
    let rss_before = rss_bytes();
    let started = Instant::now();
    operator(
        &zk,
        &[
            "churn",
            &path,
            "2000",
            &condition_rule(false, "region=eu"),
            &condition_rule(false, "region=us"),
        ],
    )
    .await;
    let churn = started.elapsed();
    let (ok, failed, errors) = load.stop().await;
    let grown = rss_bytes().saturating_sub(rss_before);
    assert_eq!(failed, 0, "no call failed during the churn: {errors:?}");
    assert!(grown < 5 * 1024 * 1024, "RSS grew {grown} bytes");
    println!(
        "figure: 2000 rule writes in {churn:?} under 16 callers: ok={ok} failed={failed}, RSS +{} KiB",
        grown / 1024
    );
}
