//! Provider guards end to end (`token`, `executes`, `tps`, `accesslog`):
//! real providers over real TCP, a real ZooKeeper where a registry is
//! involved, and override rules written the way an operator writes them
//! (Python's kazoo, `tests/python/zk_rules.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use rpc::{ErrorKind, Export, Outcome, Status, Token};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer};
use rpc_tests::python;
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ProviderProcess, wait_until};
use tokio::time::Instant;

const SERVICE_NODE: &str = "/dubbo/config/dubbo/org.example.Greeter:1.0.0:.configurators";

fn zk_registry(zk: &ZooKeeper) -> String {
    format!("{}?session=30000&timeout=5000", zk.url())
}

async fn provider(protocol: &str, export: impl FnOnce(Export) -> Export) -> rpc::RunningProvider {
    provider_in(None, protocol, export).await
}

async fn provider_in(
    registry: Option<&str>,
    protocol: &str,
    export: impl FnOnce(Export) -> Export,
) -> rpc::RunningProvider {
    let mut builder = rpc::Provider::builder()
        .application("guarded")
        .protocol(protocol, 0)
        .export(export(
            Export::new(GreeterServer::new(GreeterImpl::new(None))).warmup(Duration::ZERO),
        ));
    if let Some(registry) = registry {
        builder = builder.registry(registry);
    }
    builder.start().await.expect("provider starts")
}

/// A client of the providers at `registry`, no retries (what is refused stays refused).
async fn client(registry: &str) -> GreeterClient {
    client_with(registry, 0).await
}

async fn client_with(registry: &str, retries: u32) -> GreeterClient {
    let consumer = rpc::Consumer::builder()
        .application("shop")
        .registry(registry)
        .timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    consumer
        .reference::<GreeterClient>()
        .retries(retries)
        .build()
        .await
        .unwrap()
}

fn direct(provider: &rpc::RunningProvider, protocol: &str) -> String {
    format!("{protocol}://{}", provider.local_addr(protocol).unwrap())
}

/// Runs `zk_rules.py` (kazoo) with `args`; returns when ZooKeeper has the write.
async fn operator(zk: &ZooKeeper, args: &[&str]) {
    let mut all = vec![zk.connect_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        python::write_rules(refs[0], &refs[1..]);
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_consumer_sends_the_token_and_a_direct_call_without_it_is_refused() {
    let zk = ZooKeeper::start();
    let registry = zk_registry(&zk);
    let log = std::env::temp_dir().join(format!("rpc-guards-token-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    // A real provider process, its token random, published in ZooKeeper.
    let process = ProviderProcess::spawn(&[
        "--registry",
        &registry,
        "--port",
        "0",
        "--token",
        "random",
        "--accesslog",
        log.to_str().unwrap(),
    ]);
    let found = client(&registry).await;
    assert_eq!(found.say_hello("reg".into()).await.unwrap(), "Hello, reg");

    // A direct call bypasses the registry: refused, clearly, not retried, nothing run.
    let bypass = client_with(&format!("rpc://{}", process.address), 2).await;
    let error = bypass.say_hello("direct".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::UNAUTHENTICATED), "{error}");
    assert_eq!(error.outcome(), Outcome::Remote, "{error}");
    assert!(!error.is_retryable(true), "{error}");
    let text = error.to_string();
    for part in [
        "invalid token",
        "org.example.Greeter:1.0.0",
        "sayHello",
        "from consumer 127.0.0.1:",
        "no token",
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    // A wrong token says so, and never shows the right one.
    let wrong = client(&format!("rpc://{}?token=guess", process.address)).await;
    let error = wrong.say_hello("wrong".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::UNAUTHENTICATED), "{error}");
    assert!(error.to_string().contains("a wrong token"), "{error}");
    assert!(!error.to_string().contains("guess"), "{error}");

    // The access log (written out when the provider stops) has one line per
    // call, refusals included: a refusal is not retried.
    let stopped = process.terminate(Duration::from_secs(15));
    assert!(stopped.success(), "{stopped}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains(" outcome=ok "), "{text}");
    assert!(lines[1..].iter().all(|l| l.contains(" outcome=status-116 ")), "{text}");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_url_may_carry_the_token() {
    let provider = provider("rpc", |e| e.token(Token::Fixed("s3cret".into()))).await;
    let url = &provider.urls()[0];
    assert_eq!(url.param("token"), Some("s3cret"), "published: {url}");
    let with = client(&format!("{}?token=s3cret", direct(&provider, "rpc"))).await;
    assert_eq!(with.say_hello("t".into()).await.unwrap(), "Hello, t");
    provider.shutdown().await;
}

/// `executes=2`, three concurrent slow calls on `protocol`: exactly the
/// third is refused, overloaded and not run; the first two complete.
async fn executes_refuses_the_call_past_the_limit(protocol: &str) {
    let provider = provider(protocol, |e| e.executes(2)).await;
    let greeter = client(&direct(&provider, protocol)).await;
    let slow = |g: &GreeterClient| {
        let g = g.clone();
        tokio::spawn(async move { g.sleep(600).await })
    };
    let (a, b) = (slow(&greeter), slow(&greeter));
    wait_until("two calls running", Duration::from_secs(5), || {
        provider.in_flight() == 2
    })
    .await;
    let error = greeter.sleep(600).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServerOverloaded), "{protocol}: {error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{protocol}: {error}");
    assert!(error.to_string().contains("executes=2"), "{protocol}: {error}");
    assert_eq!(a.await.unwrap().unwrap(), 600);
    assert_eq!(b.await.unwrap().unwrap(), 600);
    // The finished calls made room.
    assert_eq!(greeter.sleep(1).await.unwrap(), 1);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executes_refuses_the_third_concurrent_call_not_sent_on_rpc() {
    executes_refuses_the_call_past_the_limit("rpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executes_refuses_the_third_concurrent_call_not_sent_on_tri() {
    executes_refuses_the_call_past_the_limit("tri").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executes_with_two_providers_and_failover_fails_no_call() {
    let a = provider("rpc", |e| e.executes(2)).await;
    let b = provider("rpc", |e| e.executes(2)).await;
    let both = format!(
        "rpc://{},{}",
        a.local_addr("rpc").unwrap(),
        b.local_addr("rpc").unwrap()
    );
    let greeter = client_with(&both, 2).await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let g = greeter.clone();
            tokio::spawn(async move { g.sleep(800).await })
        })
        .collect();
    // Each provider runs two at most, so every call ends up running: two on each.
    wait_until("two calls running on each provider", Duration::from_secs(5), || {
        a.in_flight() == 2 && b.in_flight() == 2
    })
    .await;
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 800);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tps_refuses_the_sixth_call_of_a_window_and_the_next_window_passes() {
    let provider = provider("rpc", |e| e.tps(5, Some(Duration::from_secs(1)))).await;
    let greeter = client(&direct(&provider, "rpc")).await;
    let first = Instant::now();
    for i in 0..5 {
        greeter.say_hello(format!("{i}")).await.unwrap();
    }
    let error = greeter.say_hello("6".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServerOverloaded), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(error.to_string().contains("tps=5"), "{error}");
    // The window began at the first call, after `first`: over a second later.
    tokio::time::sleep_until(first + Duration::from_millis(1050)).await;
    assert_eq!(greeter.say_hello("next".into()).await.unwrap(), "Hello, next");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_written_to_zookeeper_sets_executes_live() {
    let zk = ZooKeeper::start();
    let registry = zk_registry(&zk);
    let provider = provider_in(Some(&registry), "rpc", |e| e).await;
    let greeter = client(&registry).await;
    // No limit yet: three at once run.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let g = greeter.clone();
            tokio::spawn(async move { g.sleep(300).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    operator(
        &zk,
        &[
            "set",
            SERVICE_NODE,
            "configVersion: v3.0\nscope: service\nkey: org.example.Greeter:1.0.0\nenabled: true\n\
             configs:\n  - side: provider\n    parameters:\n      executes: 1\n",
        ],
    )
    .await;
    // The provider follows the rule: with one call running, a second is refused.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let g = greeter.clone();
        let running = tokio::spawn(async move { g.sleep(400).await });
        wait_until("a call running", Duration::from_secs(5), || provider.in_flight() >= 1).await;
        let second = greeter.sleep(1).await;
        running.await.unwrap().unwrap();
        match second {
            Err(e) if e.status() == Some(Status::ServerOverloaded) => {
                assert!(e.to_string().contains("executes=1"), "{e}");
                assert_eq!(e.kind(), ErrorKind::Remote(Status::ServerOverloaded));
                break;
            }
            other => {
                assert!(other.is_ok(), "{other:?}");
                assert!(Instant::now() < deadline, "the rule did not reach the provider in 15 s");
            }
        }
    }
    // Deleting the rule lifts the limit.
    operator(&zk, &["delete", SERVICE_NODE]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let g = greeter.clone();
        let running = tokio::spawn(async move { g.sleep(400).await });
        wait_until("a call running", Duration::from_secs(5), || provider.in_flight() >= 1).await;
        let second = greeter.sleep(1).await;
        running.await.unwrap().unwrap();
        if second.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the limit outlived its rule: {second:?}");
    }
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_file_has_one_line_per_call_with_its_fields() {
    let log = std::env::temp_dir().join(format!("rpc-guards-accesslog-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let provider = provider("rpc", |e| e.accesslog(log.to_str().unwrap()).executes(1)).await;
    let greeter = client(&direct(&provider, "rpc")).await;
    for name in ["a", "b", "c"] {
        greeter.say_hello(name.into()).await.unwrap();
    }
    let g = greeter.clone();
    let slow = tokio::spawn(async move { g.sleep(300).await });
    wait_until("a call running", Duration::from_secs(5), || provider.in_flight() == 1).await;
    greeter.sleep(1).await.unwrap_err();
    slow.await.unwrap().unwrap();
    // Shutting down writes the log out.
    provider.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for line in &lines[..3] {
        // 2026-12-02T05:30:00.123Z caller=127.0.0.1:5000 service=... method=sayHello outcome=ok duration_us=12
        let (time, fields) = line.split_once(' ').unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(fields.starts_with("caller=127.0.0.1:"), "{line}");
        assert!(
            fields.contains(" service=org.example.Greeter:1.0.0 method=sayHello outcome=ok duration_us="),
            "{line}"
        );
    }
    // The refusal is logged when it happens, the slow call when it ends.
    assert!(lines[3].contains(" method=sleep outcome=status-100 "), "{text}");
    assert!(lines[4].contains(" method=sleep outcome=ok "), "{text}");
    let slow_us: u64 = lines[4].rsplit("duration_us=").next().unwrap().parse().unwrap();
    assert!(slow_us >= 300_000, "{text}");
    let _ = std::fs::remove_file(&log);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread runs every task of this test, so the subscriber set for it sees
// every event the provider, the consumers and the ZooKeeper registry log.
// The token travels in a provider URL, a rule and an attachment; none of
// them may print it.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Every event of this framework's crates (`rpc`, `rpc_core`, `rpc_cluster`,
    // `rpc_registry`: targets starting with `rpc`). Not the ZooKeeper
    // client's own debug events: they print node paths, and a provider's node
    // name is its URL, the token included (the registry is where the token
    // is published, as in Dubbo).
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("rpc=trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let zk = ZooKeeper::start();
    let registry = zk_registry(&zk);
    const SECRET: &str = "s3cret-never-logged";
    let provider = provider_in(Some(&registry), "rpc", |e| e.token(Token::Fixed(SECRET.into()))).await;
    let found = client(&registry).await;
    assert_eq!(found.say_hello("a".into()).await.unwrap(), "Hello, a");
    let bypass = client(&direct(&provider, "rpc")).await;
    let refused = bypass.say_hello("b".into()).await.unwrap_err();
    assert_eq!(refused.status(), Some(Status::UNAUTHENTICATED), "{refused}");
    provider.shutdown().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("registered"), "the capture works: {logs}");
    assert!(logs.contains("token=***"), "URLs are logged redacted: {logs}");
    assert!(!logs.contains(SECRET), "the token leaked into the logs:\n{logs}");
}
