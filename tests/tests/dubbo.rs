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
