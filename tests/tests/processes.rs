//! Fault tests with real processes: the example provider runs as a child
//! process and is restarted, terminated or killed under load.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc::{ErrorKind, Outcome};
use rpc_examples::GreeterClient;
use rpc_tests::{ProviderProcess, example_binary, free_port, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_reconnects_after_a_provider_restart() {
    let port = free_port();
    let port_arg = port.to_string();
    let provider = ProviderProcess::spawn(&["--port", &port_arg, "--tag", "first"]);
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{}", provider.address))
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert_eq!(greeter.say_hello("a".into()).await.unwrap(), "Hello, a from first");

    // Keep calling while the provider dies and comes back.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let load = {
        let (greeter, ok, failed, stop) = (greeter.clone(), ok.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    _ = stop.notified() => return last,
                    result = greeter.say_hello("b".into()) => match result {
                        Ok(reply) => { ok.fetch_add(1, Ordering::Relaxed); last = Some(reply); }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            // Only connection-level failures are expected here.
                            assert!(
                                matches!(e.kind(), ErrorKind::Connect | ErrorKind::ConnectionLost | ErrorKind::Closed),
                                "unexpected error: {e}"
                            );
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
        })
    };
    wait_until("calls to succeed before the kill", Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > 20
    })
    .await;
    provider.kill();
    wait_until(
        "calls to fail while the provider is down",
        Duration::from_secs(10),
        || failed.load(Ordering::Relaxed) > 0,
    )
    .await;
    let second = ProviderProcess::spawn(&["--port", &port_arg, "--tag", "second"]);
    let ok_before = ok.load(Ordering::Relaxed);
    // Reconnection waits at most the channel's backoff cap (5 s).
    wait_until(
        "calls to succeed again after the restart",
        Duration::from_secs(15),
        || ok.load(Ordering::Relaxed) > ok_before + 20,
    )
    .await;
    stop.notify_one();
    let last = load.await.unwrap();
    assert_eq!(last.as_deref(), Some("Hello, b from second"));
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_before_exit() {
    let provider = ProviderProcess::spawn(&["--port", "0", "--grace-secs", "5"]);
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{}", provider.address))
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    assert_eq!(greeter.sleep(1).await.unwrap(), 1);
    // Both calls go over the one connection; `join!` polls the slow one first,
    // so its request is written first. When the fast one has answered, the
    // provider has read the slow one too: it is in flight.
    let (fast_done, fast_answered) = tokio::sync::oneshot::channel();
    let slow = {
        let greeter = greeter.clone();
        tokio::spawn(async move {
            let slow = greeter.sleep(700);
            let fast = async {
                let reply = greeter.sleep(50).await;
                let _ = fast_done.send(reply);
            };
            tokio::join!(slow, fast).0
        })
    };
    assert_eq!(fast_answered.await.unwrap().unwrap(), 50);
    let status = tokio::task::spawn_blocking(move || provider.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success(), "provider exit status: {status}");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        700,
        "the in-flight call completed during shutdown"
    );
    let err = greeter.say_hello("late".into()).await.unwrap_err();
    assert_eq!(err.outcome(), Outcome::NotSent, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_example_reports_ok_and_failed() {
    let provider = ProviderProcess::spawn(&["--port", "0"]);
    let registry = format!("rpc://{}", provider.address);
    let consumer = example_binary("greeter-consumer");
    let run = |args: Vec<String>| {
        let consumer = consumer.clone();
        tokio::task::spawn_blocking(move || Command::new(consumer).args(args).output().unwrap())
    };
    let out = run(vec![
        "--registry".into(),
        registry.clone(),
        "--calls".into(),
        "200".into(),
        "--concurrency".into(),
        "8".into(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ok=200 failed=0 degraded=0"),
        "stdout: {stdout}"
    );
    assert!(out.status.success());

    let out = run(vec![
        "--registry".into(),
        registry,
        "--duration".into(),
        "0.5".into(),
        "--concurrency".into(),
        "4".into(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    let ok: u64 = last
        .strip_prefix("ok=")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ok > 0 && last.ends_with(" failed=0 degraded=0"), "stdout: {stdout}");
    drop(provider);

    // Nobody listens on this port: every call fails, exit code 1.
    let dead = format!("rpc://127.0.0.1:{}", free_port());
    let out = run(vec!["--registry".into(), dead, "--calls".into(), "3".into()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ok=0 failed=3 degraded=0"),
        "stdout: {stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
    // With -v the failures are grouped by kind, once, at the end.
    let dead = format!("rpc://127.0.0.1:{}", free_port());
    let out = run(vec![
        "--registry".into(),
        dead.clone(),
        "--calls".into(),
        "5".into(),
        "-v".into(),
    ])
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let groups: Vec<&str> = stderr.lines().filter(|l| l.starts_with("failed: ")).collect();
    assert_eq!(groups.len(), 1, "stderr: {stderr}");
    assert!(
        groups[0].starts_with("failed: 5 x Connect (NotSent), e.g. "),
        "{stderr}"
    );

    // Failsafe answers zero values: not real answers, so not ok (defect: they
    // counted as ok, so a fault test under failsafe could not fail).
    let out = run(vec![
        "--registry".into(),
        dead,
        "--calls".into(),
        "3".into(),
        "--cluster".into(),
        "failsafe".into(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ok=0 failed=0 degraded=3"),
        "stdout: {stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_prints_greetings() {
    let out = tokio::task::spawn_blocking(|| Command::new(example_binary("quickstart")).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Hello, world",
        "Hello, Dubbo",
        "Hello, Rust",
        "business error: out of stock: unobtainium",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filters_example_shows_both_sides_and_a_shed_call() {
    let out = tokio::task::spawn_blocking(|| Command::new(example_binary("filters")).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "filters failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "[provider] sayHello from 127.0.0.1:",
        "[attempt] sayHello to 127.0.0.1:",
        "[consumer] sayHello  ok",
        "Hello, filters",
        "slow call: Ok(200)",
        "the second call was shed: kind LocalLimit, outcome NotSent",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
}
