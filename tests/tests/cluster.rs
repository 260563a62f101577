//! The cluster layer end to end: fault-tolerance policies, versions, mock,
//! concurrency limits and settings precedence, over real TCP, with real
//! provider and consumer processes and a real ZooKeeper where the test is
//! about processes coming and going.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use rpc::cluster::FailbackConfig;
use rpc::{ClusterPolicy, ErrorKind, MethodConfig};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer, Order, OrderError};
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ConsumerProcess, ProviderProcess, free_port, wait_until};
use tokio::time::Instant;

/// A ZooKeeper registry URL whose sessions outlive the test: a killed
/// provider's node stays, so only the consumer's fault handling keeps calls
/// from failing.
fn registry(zk: &ZooKeeper) -> String {
    format!("{}?session=30000&timeout=5000", zk.url())
}

fn spawn_provider(registry: &str, extra: &[&str]) -> ProviderProcess {
    let mut args = vec!["--registry", registry, "--port", "0", "--warmup-ms", "0"];
    args.extend_from_slice(extra);
    ProviderProcess::spawn(&args)
}

async fn wait_consumer(consumer: ConsumerProcess) -> rpc_tests::ConsumerOutput {
    tokio::task::spawn_blocking(move || consumer.wait(Duration::from_secs(60)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_hides_a_sigkilled_provider_at_steady_load() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let victim = spawn_provider(&registry, &["--tag", "victim"]);
    let _a = spawn_provider(&registry, &["--tag", "a"]);
    let _b = spawn_provider(&registry, &["--tag", "b"]);
    let mut consumer = ConsumerProcess::spawn(&[
        "--registry",
        &registry,
        "--duration",
        "4",
        "--concurrency",
        "8",
        "--cluster",
        "failover",
        "--check",
        "-v",
    ]);
    // Kill the victim once it has clearly been taking its share of the load.
    let consumer = tokio::task::spawn_blocking(move || {
        consumer.wait_for_lines("from victim", 200, Duration::from_secs(30));
        consumer
    })
    .await
    .unwrap();
    let lines_at_kill = consumer.seen();
    victim.kill();
    let out = wait_consumer(consumer).await;
    let (ok, failed) = out.counts();
    assert_eq!(failed, 0, "failover hid the kill; stderr:\n{}", out.stderr);
    assert_eq!(out.code, Some(0));
    let after_kill = out.stdout.len().saturating_sub(lines_at_kill + 1);
    assert!(after_kill > 500, "the load went on after the kill ({after_kill} calls)");
    println!("figure: SIGKILL under failover at concurrency 8: ok={ok} failed={failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_provider_times_out_and_failover_completes_elsewhere() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let frozen = spawn_provider(&registry, &["--tag", "frozen"]);
    let _live = spawn_provider(&registry, &["--tag", "live"]);
    // Accepts connections (the kernel does) but never answers.
    frozen.signal(Signal::SIGSTOP);

    // Without outlier detection (see faults.rs for it): the attempt timeout
    // alone moves failover on; every failfast call to the frozen one fails.
    let common = [
        "--registry",
        &registry,
        "--calls",
        "10",
        "--loadbalance",
        "roundrobin",
        "--no-outlier-detection",
        "-v",
    ];
    let failover = ConsumerProcess::spawn(
        &[
            &common[..],
            &[
                "--cluster",
                "failover",
                "--timeout-ms",
                "3000",
                "--attempt-timeout-ms",
                "300",
            ],
        ]
        .concat(),
    );
    let out = wait_consumer(failover).await;
    assert_eq!(out.counts(), (10, 0), "stderr:\n{}", out.stderr);
    assert_eq!(out.count_lines("from live"), 10);

    let started = Instant::now();
    let failfast = ConsumerProcess::spawn(&[&common[..], &["--cluster", "failfast", "--timeout-ms", "300"]].concat());
    let out = wait_consumer(failfast).await;
    let (ok, failed) = out.counts();
    // Round robin alternates between the two providers: every second call
    // goes to the frozen one and times out, outcome unknown.
    assert_eq!((ok, failed), (5, 5), "stderr:\n{}", out.stderr);
    assert_eq!(out.code, Some(1));
    // -v groups the failures by kind: five timeouts, outcome unknown.
    assert!(
        out.stderr
            .contains("failed: 5 x Timeout (Unknown), e.g. timed out waiting for the response (outcome unknown)"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    frozen.signal(Signal::SIGCONT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_side_by_side_reach_only_their_own() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let _v1 = spawn_provider(&registry, &["--tag", "v1"]);
    let _v2 = spawn_provider(&registry, &["--tag", "v2", "--version", "2.0.0"]);
    for (version, expect_v1, expect_v2) in [("1.0.0", 20, 0), ("2.0.0", 0, 20), ("*", 10, 10)] {
        let consumer = ConsumerProcess::spawn(&[
            "--registry",
            &registry,
            "--calls",
            "20",
            "--version",
            version,
            "--loadbalance",
            "roundrobin",
            "--check",
            "-v",
        ]);
        let out = wait_consumer(consumer).await;
        assert_eq!(out.counts(), (20, 0), "version {version}; stderr:\n{}", out.stderr);
        assert_eq!(
            (out.count_lines("from v1"), out.count_lines("from v2")),
            (expect_v1, expect_v2),
            "version {version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forking_answers_with_the_fastest_provider() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let _slow = spawn_provider(&registry, &["--tag", "slow", "--delay-ms", "500"]);
    let _fast = spawn_provider(&registry, &["--tag", "fast"]);
    let consumer = ConsumerProcess::spawn(&[
        "--registry",
        &registry,
        "--calls",
        "10",
        "--cluster",
        "forking",
        "--forks",
        "2",
        "--check",
        "-v",
    ]);
    let out = wait_consumer(consumer).await;
    assert_eq!(out.counts(), (10, 0), "stderr:\n{}", out.stderr);
    assert_eq!(out.count_lines("from fast"), 10, "{:?}", out.stdout);
}

/// A service whose providers count the calls they answer.
#[rpc::service(interface = "org.rpc.test.Counter", version = "1.0.0")]
trait Counter {
    /// Counts one call and answers the provider's name.
    async fn hit(&self) -> String;
    /// Waits `ms`, then answers it (the declared timeout is 100 ms).
    #[rpc(timeout = "100ms")]
    async fn declared(&self, ms: u64) -> u64;
    /// Waits `ms`, then answers it.
    async fn plain(&self, ms: u64) -> u64;
    /// Answers the provider's name (consistent hashing keys on `key` only).
    async fn owner(&self, key: String, nonce: u32) -> String;
}

#[derive(Clone)]
struct CounterImpl {
    name: &'static str,
    hits: Arc<AtomicU64>,
}

impl Counter for CounterImpl {
    async fn hit(&self) -> String {
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.name.to_string()
    }

    async fn declared(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    async fn plain(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    async fn owner(&self, _key: String, _nonce: u32) -> String {
        self.name.to_string()
    }
}

async fn counter_provider(
    registry: &str,
    name: &'static str,
    port: u16,
    export: impl FnOnce(rpc::Export) -> rpc::Export,
) -> (rpc::RunningProvider, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let handler = CounterServer::new(CounterImpl {
        name,
        hits: hits.clone(),
    });
    let provider = rpc::Provider::builder()
        .registry(registry)
        .protocol("rpc", port)
        .export(export(rpc::Export::new(handler)))
        .start()
        .await
        .unwrap();
    (provider, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_provider_and_names_the_failed_one() {
    let registry = "memory://broadcast";
    let mut providers = Vec::new();
    for name in ["a", "b", "c"] {
        providers.push(counter_provider(registry, name, 0, |e| e).await);
    }
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .cluster(ClusterPolicy::Broadcast)
        .build()
        .await
        .unwrap();
    counter.hit().await.unwrap();
    for (_, hits) in &providers {
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
    // A consumer with a fixed provider list still lists a provider that is gone:
    // the broadcast fails and says which provider failed.
    let (dead, _) = providers.remove(1);
    let dead_addr = dead.local_addr("rpc").unwrap().to_string();
    let direct: String = std::iter::once(dead_addr.clone())
        .chain(providers.iter().map(|(p, _)| p.local_addr("rpc").unwrap().to_string()))
        .collect::<Vec<_>>()
        .join(",");
    dead.shutdown().await;
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{direct}"))
        .build()
        .await
        .unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .cluster(ClusterPolicy::Broadcast)
        .build()
        .await
        .unwrap();
    let error = counter.hit().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("failed on 1 of 3 providers: {dead_addr}")),
        "{error}"
    );
    for (_, hits) in &providers {
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the live providers were still called");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_lands_the_queued_call_once_its_provider_returns() {
    let port = free_port();
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://127.0.0.1:{port}"))
        .build()
        .await
        .unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .cluster(ClusterPolicy::Failback)
        .failback(FailbackConfig {
            interval: Duration::from_millis(200),
            attempts: 50,
            capacity: 16,
            ..FailbackConfig::default()
        })
        .build()
        .await
        .unwrap();
    // Nobody listens: the call answers the zero value at once and is queued.
    assert_eq!(counter.hit().await.unwrap(), "");
    let (_provider, hits) = counter_provider(&format!("rpc://127.0.0.1:{port}"), "late", port, |e| e).await;
    wait_until("the queued call to land", Duration::from_secs(10), || {
        hits.load(Ordering::SeqCst) == 1
    })
    .await;
    // Landed once, not again.
    assert_eq!(counter.hit().await.unwrap(), "late");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_answers_failures_not_business_errors_and_force_never_calls() {
    let registry = "memory://mock";
    // No provider: every call fails, the mock answers.
    let consumer = rpc::Consumer::builder()
        .registry(registry)
        .check(false)
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .method_mock("sayHello", "return \"degraded\"")
        .build()
        .await
        .unwrap();
    assert_eq!(greeter.say_hello("x".into()).await.unwrap(), "degraded");
    // A method without a mock still fails.
    assert_eq!(greeter.sleep(1).await.unwrap_err().kind(), ErrorKind::NoProvider);

    // A fallback implementation answers with the real arguments.
    let fallback: GreeterClient = consumer
        .reference::<GreeterClient>()
        .fallback(GreeterServer::new(GreeterImpl::new(Some("fallback".into()))))
        .build()
        .await
        .unwrap();
    assert_eq!(fallback.say_hello("y".into()).await.unwrap(), "Hello, y from fallback");

    // With a provider: business errors are answers, not failures.
    let provider = rpc::Provider::builder()
        .registry(registry)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some("real".into()))))
        .start()
        .await
        .unwrap();
    let mocked: GreeterClient = consumer
        .reference::<GreeterClient>()
        .mock("return {\"Ok\": 999}")
        .build()
        .await
        .unwrap();
    let refused = mocked
        .place_order(Order {
            item: "x".into(),
            quantity: 0,
        })
        .await
        .unwrap();
    assert_eq!(refused, Err(OrderError::InvalidQuantity(0)));

    // force:return never calls.
    let forced: GreeterClient = consumer
        .reference::<GreeterClient>()
        .method_mock("sayHello", "force:return \"cached\"")
        .build()
        .await
        .unwrap();
    assert_eq!(forced.say_hello("z".into()).await.unwrap(), "cached");
    assert_eq!(forced.sleep(1).await.unwrap(), 1, "other methods still call");

    // Bad mocks are refused at build time.
    let error = consumer
        .reference::<GreeterClient>()
        .mock("return {not json")
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not valid JSON"), "{error}");
    let error = consumer
        .reference::<GreeterClient>()
        .method_mock("noSuchMethod", "return 1")
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no method `noSuchMethod`"), "{error}");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actives_limit_waits_for_a_slot_then_refuses_clearly() {
    let registry = "memory://actives";
    let (_provider, _) = counter_provider(registry, "a", 0, |e| e).await;
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .actives(2)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    // Three calls of 300 ms with two slots: the third waits for a slot.
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move { counter.plain(300).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 300);
    }
    assert!(started.elapsed() >= Duration::from_millis(600), "the third call waited");

    // A call refused after waiting until its deadline: see also the cluster
    // invoker's unit tests.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_precedence_is_pinned_at_every_level() {
    // Each check calls a method that takes 200 ms under timeouts of 100 ms
    // (times out) or 400 ms (succeeds), set at two adjacent levels.
    const SHORT: Duration = Duration::from_millis(100);
    const LONG: Duration = Duration::from_millis(400);
    let registry = "memory://precedence";
    let (provider, _) = counter_provider(registry, "a", 0, |e| e.timeout(SHORT)).await;
    // The consumer's deadline travels with the call: whichever side notices
    // first reports the timeout.
    let times_out = |r: Result<u64, rpc::RpcError>| matches!(r, Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Remote(rpc::Status::ServerTimeout)));

    // Level 5, the provider's URL: its 100 ms beats the built-in 1 s.
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let plain: CounterClient = consumer.reference::<CounterClient>().build().await.unwrap();
    let r = plain.plain(200).await;
    assert!(times_out(r.clone()), "the provider timeout applies: {r:?}");
    assert_eq!(plain.plain(20).await.unwrap(), 20);

    // Level 4, the consumer's defaults, beat the provider.
    let global = rpc::Consumer::builder()
        .registry(registry)
        .timeout(LONG)
        .build()
        .await
        .unwrap();
    let c: CounterClient = global.reference::<CounterClient>().build().await.unwrap();
    assert_eq!(c.plain(200).await.unwrap(), 200, "consumer default over provider");

    // Level 3, the reference, beats the consumer's defaults.
    let c: CounterClient = global
        .reference::<CounterClient>()
        .timeout(SHORT)
        .build()
        .await
        .unwrap();
    assert!(times_out(c.plain(200).await), "reference over consumer default");

    // Level 2, the method's declaration (100 ms), beats the reference.
    let c: CounterClient = global.reference::<CounterClient>().timeout(LONG).build().await.unwrap();
    assert!(times_out(c.declared(200).await), "declaration over reference");
    assert_eq!(c.plain(200).await.unwrap(), 200);

    // Level 1, the consumer's setting for the method, beats the declaration.
    let c: CounterClient = global
        .reference::<CounterClient>()
        .method("declared", MethodConfig::new().with_timeout(LONG))
        .build()
        .await
        .unwrap();
    assert_eq!(c.declared(200).await.unwrap(), 200, "method setting over declaration");

    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keys_on_the_first_argument() {
    let registry = "memory://consistent";
    let mut providers = Vec::new();
    for name in ["a", "b", "c"] {
        providers.push(counter_provider(registry, name, 0, |e| e).await);
    }
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .loadbalance(rpc::Balancer::ConsistentHash)
        .build()
        .await
        .unwrap();
    let mut owners = std::collections::BTreeMap::new();
    for key in 0..60 {
        let key = format!("user-{key}");
        let owner = counter.owner(key.clone(), 0).await.unwrap();
        // The second argument does not matter (Dubbo's default: the first only).
        for nonce in 1..4 {
            assert_eq!(counter.owner(key.clone(), nonce).await.unwrap(), owner, "{key}");
        }
        owners.insert(key, owner);
    }
    let used: std::collections::BTreeSet<&String> = owners.values().collect();
    assert_eq!(used.len(), 3, "60 keys spread over the 3 providers");

    // Provider b leaves: only its keys move.
    let (b, _) = providers.remove(1);
    // Whether or not the directory has seen it leave yet, a call for one of
    // its keys fails over to the ring without it: the same answer.
    b.shutdown().await;
    let mut moved = 0;
    for (key, before) in &owners {
        let now = counter.owner(key.clone(), 0).await.unwrap();
        if before == "b" {
            assert_ne!(now, "b");
            moved += 1;
        } else {
            assert_eq!(&now, before, "{key} stayed where it was");
        }
    }
    assert!(moved > 0);
}

const ALL_POLICIES: [ClusterPolicy; 6] = [
    ClusterPolicy::Failover,
    ClusterPolicy::Failfast,
    ClusterPolicy::Failsafe,
    ClusterPolicy::Failback,
    ClusterPolicy::Forking,
    ClusterPolicy::Broadcast,
];

/// One counter provider in its own memory registry, and a client calling it
/// under `policy` (5 s timeout).
async fn one_provider_under(
    policy: ClusterPolicy,
    test: &str,
) -> (rpc::RunningProvider, Arc<AtomicU64>, CounterClient) {
    let registry = format!("memory://{test}-{}", policy.name());
    let (provider, hits) = counter_provider(&registry, "a", 0, |e| e).await;
    let consumer = rpc::Consumer::builder().registry(&registry).build().await.unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .timeout(Duration::from_secs(5))
        .cluster(policy)
        .build()
        .await
        .unwrap();
    (provider, hits, counter)
}

/// Defect: failfast, failsafe, failback and forking dropped the endpoint right
/// after starting the attempt, so removing the provider closed its connection
/// under the call (`ConnectionLost`). Every policy keeps the provider's
/// connection until its calls have finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_provider_finishes_its_calls_before_its_connection_closes() {
    for policy in ALL_POLICIES {
        let (provider, _, counter) = one_provider_under(policy, "removal").await;
        // Connected first: a call made while connecting holds the channel itself.
        assert_eq!(counter.plain(1).await.unwrap(), 1);
        let call = tokio::spawn({
            let counter = counter.clone();
            async move { counter.plain(300).await }
        });
        wait_until("the call to be in flight", Duration::from_secs(5), || {
            provider.in_flight() == 1
        })
        .await;
        // The provider leaves the registry (the server keeps running).
        let memory = rpc::registry::from_address(&format!("memory://removal-{}", policy.name())).unwrap();
        for url in provider.urls() {
            memory.unregister(url).await.unwrap();
        }
        assert_eq!(
            call.await.unwrap().unwrap(),
            300,
            "{policy:?}: the call in flight completed"
        );
        // Then the consumer drops the connection: nobody uses that provider now.
        wait_until("the consumer to close its connection", Duration::from_secs(5), || {
            provider.connections() == 0
        })
        .await;
        if matches!(policy, ClusterPolicy::Failover | ClusterPolicy::Failfast) {
            assert_eq!(counter.plain(1).await.unwrap_err().kind(), ErrorKind::NoProvider);
        }
        provider.shutdown().await;
    }
}

/// Defect: under failfast, failsafe, failback, forking and broadcast a call's
/// request left before its future was polled (`drop(client.hit())` still
/// called the provider); under failover it did not. One rule now, the Rust
/// convention: nothing is sent until the future is first polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_before_the_future_is_polled_under_any_policy() {
    for policy in ALL_POLICIES {
        let (provider, hits, counter) = one_provider_under(policy, "unpolled").await;
        assert_eq!(counter.hit().await.unwrap(), "a");
        // Made and dropped unpolled: never sent.
        drop(counter.hit());
        let unpolled = counter.hit();
        // Calls made after it, on the same connection, are answered after it
        // would have been.
        assert_eq!(counter.hit().await.unwrap(), "a");
        assert_eq!(counter.hit().await.unwrap(), "a");
        drop(unpolled);
        assert_eq!(hits.load(Ordering::SeqCst), 3, "{policy:?}: only the polled calls ran");
        provider.shutdown().await;
    }
}

/// Defect: a call picked for a host that does not answer its connection
/// attempts (a dead host whose packets vanish) waited its whole budget
/// connecting, and failed. Now a connecting provider takes no other call, and
/// outlier detection gives up on it (its waiting calls fail as not sent), so
/// even a failfast call moves to another provider in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_answers_its_connections_costs_no_call() {
    // A listener that never accepts, its backlog full: new connections hang
    // (their SYNs are dropped), as a dead host's do.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let blackhole = socket.listen(1).unwrap();
    let dead = blackhole.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(dead)).await
        {
            fillers.push(stream);
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(dead))
            .await
            .is_err(),
        "the backlog is full: a connection attempt hangs"
    );
    let (healthy, hits) = counter_provider("memory://blackhole", "healthy", 0, |e| e).await;
    let live = healthy.local_addr("rpc").unwrap();
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{dead},{live}"))
        .build()
        .await
        .unwrap();
    let counter: CounterClient = consumer
        .reference::<CounterClient>()
        .cluster(ClusterPolicy::Failfast)
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for _ in 0..50 {
                    if let Err(e) = counter.hit().await {
                        failed.push(e.to_string());
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for caller in callers {
        failed.extend(caller.await.unwrap());
    }
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert_eq!(hits.load(Ordering::SeqCst), 400);
    drop((blackhole, fillers));
    healthy.shutdown().await;
}

/// Two providers of one service publishing different timeouts, a consumer
/// setting none: the call's budget is the larger (900 ms), and each attempt is
/// cut at its own provider's (200 ms on the one publishing 200 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_publishing_different_timeouts_give_the_largest_budget_and_cap_each_attempt() {
    use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
    let registry = "memory://cluster-heterogeneous-timeouts";
    let mut providers = Vec::new();
    for millis in [200, 900] {
        let export = rpc::Export::new(ProbeServer::new(ProbeImpl::default())).timeout(Duration::from_millis(millis));
        let provider = rpc::Provider::builder()
            .registry(registry)
            .protocol("rpc", 0)
            .export(export)
            .start()
            .await
            .unwrap();
        providers.push(provider);
    }
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let probe: ProbeClient = consumer
        .reference::<ProbeClient>()
        .cluster(ClusterPolicy::Failfast)
        .loadbalance(rpc::Balancer::RoundRobin)
        // A provider busy for 500 ms while the other answers is what outlier
        // detection takes out of rotation; here the timeouts alone decide.
        .outlier_detection(rpc::cluster::OutlierConfig::disabled())
        .build()
        .await
        .unwrap();
    let (mut answered, mut cut) = (0, 0);
    for _ in 0..6 {
        let started = Instant::now();
        match probe.sleep(500).await {
            Ok(500) => {
                answered += 1;
                assert!(started.elapsed() < Duration::from_millis(900), "within the budget");
            }
            Ok(other) => panic!("unexpected answer {other}"),
            Err(error) => {
                cut += 1;
                // The consumer's timer or the provider's (it stops the call
                // at the deadline it was sent), whichever fires first.
                assert!(
                    matches!(
                        error.kind(),
                        ErrorKind::Timeout | ErrorKind::Remote(rpc::Status::ServerTimeout)
                    ),
                    "{error}"
                );
                assert_eq!(error.outcome(), rpc::Outcome::Unknown);
                let elapsed = started.elapsed();
                assert!(
                    elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(450),
                    "cut at its provider's 200 ms, not the 900 ms budget: {elapsed:?}"
                );
            }
        }
    }
    assert_eq!((answered, cut), (3, 3), "round robin over the two providers");
    for provider in providers {
        provider.shutdown().await;
    }
}
