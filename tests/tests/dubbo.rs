//! The classic `dubbo://` protocol (Hessian2) with real Java Apache Dubbo 3.3.6
//! peers (`tests/java/`, see `rpc_tests::java`) through a real ZooKeeper:
//! a Java consumer calling a Rust provider, and a Rust consumer calling a Java
//! provider, over the Java `org.example.Greeter` interface.
//!
//! Java's `dubbo://` client replaces a loopback provider address with the
//! machine's first non-loopback one (`NetUtils.filterLocalHost`, and no Dubbo
//! setting turns that off), so the tests with Java peers run in a network
//! namespace of their own (`rpc_tests::netns`), where the Rust provider Java
//! calls registers and listens on the namespace's `10.77.0.1`, as the Java
//! provider does: no test uses this machine's real address.
//!
//! Needs the peers built by `tests/java/build.sh` (`./scripts/test.sh` builds them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use rpc::{Consumer, ErrorKind, Export, Provider, RunningProvider};
use rpc_tests::free_port;
use rpc_tests::java::JavaPeer;
use rpc_tests::java_greeter::{
    CALLS_TIMEOUT, GreeterClient, GreeterPlusClient, GreeterServer, RustGreeter, check_java_provider_answers,
};
use rpc_tests::netns;
use rpc_tests::zk::ZooKeeper;

async fn rust_provider(registry: &str, host: &str) -> RunningProvider {
    Provider::builder()
        .application("rust-greeter-provider")
        .registry(registry)
        .host(host)
        .protocol("dubbo", 0)
        .export(Export::new(GreeterServer::new(RustGreeter)))
        .start()
        .await
        .unwrap()
}

/// A Java consumer finds the Rust provider's `dubbo://` URL in ZooKeeper and
/// calls it: a string, a struct argument, the declared exception, `void`, a
/// list, a map, a null, a timeout; and at a direct URL, a wrong version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_consumer_calls_a_rust_provider_over_dubbo() {
    let Some(net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let host = net.address().to_string();
    let provider = rust_provider(&zk.url(), &host).await;
    let url = provider.urls()[0].clone();
    assert_eq!(url.protocol(), "dubbo", "{url}");
    assert_eq!(url.param("serialization"), Some("hessian2"), "{url}");
    assert_eq!(url.param("dubbo"), Some("2.0.2"), "{url}");

    let registry = zk.url();
    let calls = [
        "hello world",
        "order apple 3 red,big",
        "order apple 0",
        "sleep 10",
        "list a,b",
        "list",
        "map k=1,j=2",
        "nullable -",
        "nullable x",
        "sleep 1500",
    ];
    let results = tokio::task::spawn_blocking(move || {
        let args = [
            "--registry",
            registry.as_str(),
            "--protocol",
            "dubbo",
            "--timeout",
            "1000",
        ];
        JavaPeer::run_consumer(&args, &calls, CALLS_TIMEOUT)
    })
    .await
    .unwrap();
    let expected = [
        "ok Hello, world from rust",
        "ok OrderId{id=3002}",
        "err org.example.OrderRejected: quantity must be positive, got 0 for apple",
        "ok void",
        "ok [a, b]",
        "ok []",
        "ok {j=2, k=1}",
        "ok null",
        "ok x",
    ];
    assert_eq!(results[..expected.len()], expected, "{results:?}");
    let timeout = &results[expected.len()];
    assert!(
        timeout.starts_with("err org.apache.dubbo.rpc.RpcException: ") && timeout.contains("timeout"),
        "`sleep 1500` with a 1000 ms timeout: {timeout}"
    );

    // A version the Rust provider does not serve, at its direct URL.
    let direct = format!("dubbo://{}/org.example.Greeter", url.address());
    let wrong = tokio::task::spawn_blocking(move || {
        let args = ["--url", direct.as_str(), "--protocol", "dubbo", "--version", "2.0.0"];
        JavaPeer::run_consumer(&args, &["hello world"], CALLS_TIMEOUT).remove(0)
    })
    .await
    .unwrap();
    assert!(
        wrong.starts_with("err ") && wrong.contains("org.example.Greeter:2.0.0") && wrong.contains("not exported"),
        "{wrong}"
    );
    provider.shutdown().await;
}

/// A Rust consumer finds the Java provider in ZooKeeper (its `dubbo://` and
/// `tri://` URLs) and calls it over `dubbo` with Hessian2: every case, the
/// declared exception as the method's `Err`, other failures as clear `RpcError`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_consumer_calls_a_java_provider_over_dubbo() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let java = tokio::task::spawn_blocking(move || JavaPeer::provider(&registry, free_port(), free_port(), &[]))
        .await
        .unwrap();
    let consumer = Consumer::builder()
        .application("rust-greeter-consumer")
        .registry(zk.url())
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();

    check_java_provider_answers(&greeter).await;

    // A timeout: the call's budget ends before the Java provider answers.
    let quick: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_millis(500))
        .retries(0)
        .build()
        .await
        .unwrap();
    let error = quick.sleep(1500).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");

    // A method the Java interface does not have: Java's answer, said clearly.
    let plus: GreeterPlusClient = consumer
        .reference::<GreeterPlusClient>()
        .timeout(Duration::from_secs(5))
        .retries(0)
        .build()
        .await
        .unwrap();
    assert_eq!(plus.say_hello("plus".into()).await.unwrap(), "Hello, plus from java");
    let error = plus.shout("x".into()).await.unwrap_err();
    assert!(error.message().contains("shout"), "{error}");
    assert_eq!(error.outcome(), rpc::Outcome::Remote, "{error}");

    // A version nobody serves: no provider, not sent.
    let wrong = consumer
        .reference::<GreeterClient>()
        .version("2.0.0")
        .check(false)
        .build()
        .await
        .unwrap();
    let error = wrong.say_hello("x".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoProvider, "{error}");
    drop(java);
}

/// One Rust reference over a mixed provider set (two Java providers over
/// `dubbo`, two Rust ones over `rpc`), with failover and round robin: calls
/// go out in bincode with Hessian2 alongside, every provider gets calls; then
/// one of each kind is killed with SIGKILL under load, and no idempotent call
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reference_balances_over_java_and_rust_providers_and_survives_kill_9() {
    let Some(_net) = netns::isolate() else { return };
    use rpc::{Balancer, ClusterPolicy, MethodConfig};
    use rpc_tests::ProviderProcess;
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let zk = ZooKeeper::start();
    let registry = zk.url();
    let (java1, java2) = {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || {
            let other = registry.clone();
            // Java registers no pid: its processes are told apart by host and
            // application, so two on one host (here, the namespace's address)
            // need applications of their own, as on two hosts.
            let second = std::thread::spawn(move || {
                JavaPeer::provider(
                    &other,
                    free_port(),
                    free_port(),
                    &["--name", "java2", "--application", "java2"],
                )
            });
            let first = JavaPeer::provider(
                &registry,
                free_port(),
                free_port(),
                &["--name", "java1", "--application", "java1"],
            );
            (first, second.join().unwrap())
        })
        .await
        .unwrap()
    };
    let rust1 = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "rust1"]);
    let rust2 = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "rust2"]);

    let consumer = Consumer::builder().registry(zk.url()).build().await.unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .cluster(ClusterPolicy::Failover)
        .loadbalance(Balancer::RoundRobin)
        .retries(3)
        .timeout(Duration::from_secs(10))
        .config(MethodConfig::new().with_idempotent(true))
        .build()
        .await
        .unwrap();

    // Every provider answers within a bounded number of round-robin calls.
    let everyone: BTreeSet<String> = ["java1", "java2", "rust1", "rust2"].map(String::from).into();
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen != everyone {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {seen:?} answered within 30 s"
        );
        let reply = greeter.say_hello("world".into()).await.unwrap();
        let from = reply.rsplit(' ').next().unwrap_or_default().to_string();
        seen.insert(from);
    }

    // Load from 8 tasks; kill -9 one Java and one Rust provider meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let answered: Arc<std::sync::Mutex<BTreeSet<String>>> = Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (greeter, stop, ok, failed, answered) = (
                greeter.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match greeter.say_hello("world".into()).await {
                        Ok(reply) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let from = reply.rsplit(' ').next().unwrap_or_default().to_string();
                            answered.lock().unwrap().insert(from);
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed: {error}");
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    java1.kill();
    rust1.kill();
    let after_kill = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    answered.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} failed calls of {}", ok + failed);
    assert!(
        ok > after_kill + 100,
        "calls went on after the kills: {after_kill} then {ok}"
    );
    let survivors: BTreeSet<String> = ["java2", "rust2"].map(String::from).into();
    assert_eq!(*answered.lock().unwrap(), survivors, "the survivors share the load");
    drop((java2, rust2));
}

/// `org.example.Greeter` answering `Hello, NAME from TAG`, to tell providers apart.
#[derive(Clone, Copy)]
struct Tagged(&'static str);

impl rpc_tests::java_greeter::Greeter for Tagged {
    async fn say_hello(&self, name: String) -> String {
        format!("Hello, {name} from {}", self.0)
    }
    async fn place_order(
        &self,
        order: rpc_tests::java_greeter::Order,
    ) -> Result<rpc_tests::java_greeter::OrderId, rpc_tests::java_greeter::OrderRejected> {
        RustGreeter.place_order(order).await
    }
    async fn sleep(&self, millis: i64) {
        RustGreeter.sleep(millis).await
    }
    async fn echo_list(&self, values: Vec<String>) -> Vec<String> {
        values
    }
    async fn echo_map(
        &self,
        values: std::collections::BTreeMap<String, i32>,
    ) -> std::collections::BTreeMap<String, i32> {
        values
    }
    async fn echo_nullable(&self, value: Option<String>) -> Option<String> {
        value
    }
}

/// A Rust provider exporting `dubbo` and `tri`, answering `from <tag>`.
async fn tagged_provider(registry: &str, host: &str, tag: &'static str) -> RunningProvider {
    Provider::builder()
        .application(format!("rust-greeter-{tag}"))
        .registry(registry)
        .host(host)
        .protocol("dubbo", 0)
        .protocol("tri", 0)
        .export(Export::new(GreeterServer::new(Tagged(tag))))
        .start()
        .await
        .unwrap()
}

/// A foreign (Java) consumer and a Rust consumer both see a Rust provider
/// leave the registry on graceful shutdown: both call two Rust providers
/// (`dubbo` + `tri` each) without retries; one shuts down gracefully; its
/// znodes go, no call of either consumer fails, and every later call is
/// answered by the provider that stays (a consumer still holding the gone
/// provider would send it calls, and without retries they would fail). When
/// the second leaves too, the Java consumer reports no provider and the Rust
/// one's directory is empty (`NoProvider`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_and_a_rust_consumer_see_a_rust_provider_leave_on_graceful_shutdown() {
    use rpc::registry::{ProviderSet, Registry, Subscription, ZookeeperRegistry};
    use rpc::{ClusterPolicy, Url};
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let Some(net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let host = net.address().to_string();
    let registry = ZookeeperRegistry::new(&Url::parse(&zk.url()).unwrap()).unwrap();
    let watcher = Url::new("consumer", "127.0.0.1", 0)
        .with_path("org.example.Greeter")
        .with_param("side", "consumer");
    let mut sub = registry.subscribe(&watcher).await.unwrap();
    async fn until(sub: &mut Subscription, what: &str, done: impl Fn(&ProviderSet) -> bool) {
        use futures::StreamExt;
        if done(&sub.current()) {
            return;
        }
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(set) = sub.next().await {
                if done(&set) {
                    return;
                }
            }
            panic!("the subscription ended before {what}");
        })
        .await
        .unwrap_or_else(|_| panic!("no provider set with {what} within 20 s: {:?}", sub.current()));
    }

    let leaving = tagged_provider(&zk.url(), &host, "a").await;
    let staying = tagged_provider(&zk.url(), &host, "b").await;
    let staying_ports: BTreeSet<u16> = staying.urls().iter().map(|u| u.port()).collect();
    until(&mut sub, "both providers' 4 URLs", |s| s.len() == 4).await;

    // The Java consumer calls in a loop on its own thread, without retries.
    let registry_url = zk.url();
    let java = tokio::task::spawn_blocking(move || {
        JavaPeer::consumer(&[
            "--registry",
            &registry_url,
            "--protocol",
            "dubbo",
            "--timeout",
            "5000",
            "--retries",
            "0",
        ])
    })
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let java_results: Arc<Mutex<Vec<String>>> = Arc::default();
    let java_loop = {
        let (stop, results) = (stop.clone(), java_results.clone());
        std::thread::spawn(move || {
            let mut java = java;
            while !stop.load(Ordering::Relaxed) {
                let line = java.call("hello world", CALLS_TIMEOUT);
                results.lock().unwrap().push(line);
            }
            java
        })
    };
    // The Rust consumer: failover without retries, from 4 tasks.
    let consumer = Consumer::builder()
        .application("rust-greeter-consumer")
        .registry(zk.url())
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .cluster(ClusterPolicy::Failover)
        .retries(0)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let rust_results: Arc<Mutex<Vec<String>>> = Arc::default();
    let rust_failed = Arc::new(AtomicUsize::new(0));
    let rust_loops: Vec<_> = (0..4)
        .map(|_| {
            let (greeter, stop, results, failed) =
                (greeter.clone(), stop.clone(), rust_results.clone(), rust_failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match greeter.say_hello("world".into()).await {
                        Ok(reply) => results.lock().unwrap().push(reply),
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("rust consumer: {error}");
                        }
                    }
                }
            })
        })
        .collect();

    // Both consumers reach both providers before one leaves.
    let from = |results: &Arc<Mutex<Vec<String>>>, tag: &str| {
        results
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.ends_with(&format!("from {tag}")))
    };
    rpc_tests::wait_until("both consumers call both providers", Duration::from_secs(60), || {
        ["a", "b"]
            .iter()
            .all(|tag| from(&java_results, tag) && from(&rust_results, tag))
    })
    .await;

    // Graceful shutdown of `a`: unregistered, drained, nothing abandoned.
    assert_eq!(leaving.shutdown().await, 0, "calls abandoned by the graceful shutdown");
    until(&mut sub, "only the staying provider's URLs", |s| {
        s.len() == 2 && s.iter().all(|u| staying_ports.contains(&u.port()))
    })
    .await;
    // From now on, every call of both consumers is answered by `b`.
    let (java_mark, rust_mark) = (java_results.lock().unwrap().len(), rust_results.lock().unwrap().len());
    rpc_tests::wait_until(
        "20 Java and 200 Rust calls after the removal",
        Duration::from_secs(60),
        || {
            java_results.lock().unwrap().len() >= java_mark + 20
                && rust_results.lock().unwrap().len() >= rust_mark + 200
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in rust_loops {
        task.await.unwrap();
    }
    let mut java = tokio::task::spawn_blocking(move || java_loop.join().unwrap())
        .await
        .unwrap();

    let java_results = java_results.lock().unwrap().clone();
    let java_failed: Vec<&String> = java_results.iter().filter(|r| !r.starts_with("ok ")).collect();
    assert!(java_failed.is_empty(), "Java calls failed: {java_failed:?}");
    assert_eq!(rust_failed.load(Ordering::Relaxed), 0, "Rust calls failed");
    let after_java: BTreeSet<&String> = java_results[java_mark..].iter().collect();
    assert_eq!(
        after_java,
        BTreeSet::from([&"ok Hello, world from b".to_string()]),
        "Java calls after the removal"
    );
    let rust_results = rust_results.lock().unwrap().clone();
    let after_rust: BTreeSet<&String> = rust_results[rust_mark..].iter().collect();
    assert_eq!(
        after_rust,
        BTreeSet::from([&"Hello, world from b".to_string()]),
        "Rust calls after the removal"
    );

    // The last provider leaves: both consumers say there is none.
    assert_eq!(staying.shutdown().await, 0);
    until(&mut sub, "no URL left", |s| s.is_empty()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match greeter.say_hello("x".into()).await {
            Err(error) if error.kind() == ErrorKind::NoProvider => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the Rust consumer still sees a provider after 20 s: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let none = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = java.call("hello world", CALLS_TIMEOUT);
            if line.contains("No provider available") || std::time::Instant::now() > deadline {
                return line;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        none.starts_with("err org.apache.dubbo.rpc.RpcException: ") && none.contains("No provider available"),
        "{none}"
    );
}

/// One provider per Java process: a Java provider registers a `dubbo://` and
/// a `tri://` URL and no `pid`. Killed with SIGKILL under load, beside a Rust
/// provider, with failover and one retry: the calls it was running (some
/// sleep 100 ms there) are retried on the Rust provider, never on the dead
/// process's other URL, and later calls do not go to that URL either: 0
/// failed calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_java_process_is_one_provider_for_failover() {
    use rpc::{Balancer, ClusterPolicy, MethodConfig};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let Some(net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let java = tokio::task::spawn_blocking(move || JavaPeer::provider(&registry, free_port(), free_port(), &[]))
        .await
        .unwrap();
    let rust = tagged_provider(&zk.url(), &net.address().to_string(), "rust").await;
    let consumer = Consumer::builder().registry(zk.url()).build().await.unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .cluster(ClusterPolicy::Failover)
        .loadbalance(Balancer::RoundRobin)
        .retries(1)
        .timeout(Duration::from_secs(10))
        .config(MethodConfig::new().with_idempotent(true))
        .build()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let from_java = Arc::new(AtomicUsize::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    // 8 tasks say hello; 8 more sleep 100 ms per call, so calls are in
    // flight at the Java provider when it dies (their retry is the case).
    let workers: Vec<_> = (0..16)
        .map(|task| {
            let (greeter, stop, ok, failed, from_java, errors) = (
                greeter.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                from_java.clone(),
                errors.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let call = if task < 8 {
                        greeter.say_hello("world".into()).await
                    } else {
                        greeter.sleep(100).await.map(|()| String::new())
                    };
                    match call {
                        Ok(reply) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if reply.ends_with("from java") {
                                from_java.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.lock().unwrap().push(error.to_string());
                        }
                    }
                }
            })
        })
        .collect();
    rpc_tests::wait_until("calls reach the Java provider", Duration::from_secs(60), || {
        from_java.load(Ordering::Relaxed) >= 200
    })
    .await;
    java.kill();
    let at_kill = ok.load(Ordering::Relaxed);
    rpc_tests::wait_until("1000 calls after the kill", Duration::from_secs(60), || {
        ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= at_kill + 1000
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed calls after the Java provider was killed: {:?}",
        &errors[..errors.len().min(5)]
    );
    rust.shutdown().await;
}
