//! The faults a real estate lives through, with real processes and a real
//! ZooKeeper, under load (16 concurrent callers): a rolling restart of every
//! provider under every policy, and a provider that hangs (SIGSTOP) for 6 s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use nix::sys::signal::Signal;
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ConsumerOutput, ConsumerProcess, ProviderProcess};

/// One fault scenario at a time: each runs 4 processes at full speed, and the
/// machine may have 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A registry URL whose sessions outlive the test's faults.
fn registry(zk: &ZooKeeper) -> String {
    format!("{}?session=30000&timeout=5000", zk.url())
}

fn provider(registry: &str, tag: &str) -> ProviderProcess {
    ProviderProcess::spawn(&[
        "--registry",
        registry,
        "--port",
        "0",
        "--warmup-ms",
        "0",
        "--grace-secs",
        "3",
        "--tag",
        tag,
    ])
}

/// The example consumer calling with 16 callers until stopped (up to 60 s),
/// printing every reply, with `extra` flags.
fn load(registry: &str, extra: &[&str]) -> ConsumerProcess {
    let args = [
        &[
            "--registry",
            registry,
            "--duration",
            "60",
            "--concurrency",
            "16",
            "--check",
            "-v",
        ][..],
        extra,
    ]
    .concat();
    ConsumerProcess::spawn(&args)
}

async fn finish(consumer: ConsumerProcess) -> ConsumerOutput {
    tokio::task::spawn_blocking(move || consumer.wait(Duration::from_secs(90)))
        .await
        .unwrap()
}

/// Waits (bounded) until the consumer printed `count` replies from `tag`.
async fn served_by(consumer: ConsumerProcess, tag: &str, count: usize) -> ConsumerProcess {
    lines(consumer, &format!("from {tag}"), count).await
}

/// Waits (bounded) until the consumer printed `count` lines containing `needle`.
async fn lines(consumer: ConsumerProcess, needle: &str, count: usize) -> ConsumerProcess {
    let needle = needle.to_string();
    tokio::task::spawn_blocking(move || {
        let mut consumer = consumer;
        consumer.wait_for_lines(&needle, count, Duration::from_secs(60));
        consumer
    })
    .await
    .unwrap()
}

/// A graceful rolling restart (SIGTERM, wait for the exit, start again, next)
/// of 3 providers under load costs no call, whatever the policy: a provider
/// shutting down is passed over, and runs what was already on its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_call_under_any_policy() {
    let _one = ONE_AT_A_TIME.lock().await;
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let mut providers: Vec<ProviderProcess> = ["a", "b", "c"].iter().map(|t| provider(&registry, t)).collect();
    let runs: [&[&str]; 7] = [
        &["--cluster", "failover"],
        &["--cluster", "failover", "--retries", "0"],
        &["--cluster", "failfast"],
        &["--cluster", "failsafe"],
        &["--cluster", "failback"],
        &["--cluster", "forking"],
        &["--cluster", "broadcast"],
    ];
    for (round, policy) in runs.iter().enumerate() {
        let mut consumer = load(&registry, policy);
        for (i, slot) in providers.iter_mut().enumerate() {
            let tag = format!("r{round}p{i}");
            // The new provider is up before the old one goes, as in a rolling restart.
            let old = std::mem::replace(slot, provider(&registry, &tag));
            consumer = if policy.contains(&"broadcast") {
                // A broadcast answers with one provider's reply, whichever is
                // listed last: wait for a few hundred calls, which reach all.
                let replies = consumer.seen() + 300;
                lines(consumer, "Hello", replies).await
            } else {
                served_by(consumer, &tag, 500).await
            };
            let status = tokio::task::spawn_blocking(move || old.terminate(Duration::from_secs(15)))
                .await
                .unwrap();
            assert!(status.success(), "{policy:?}: provider exit: {status}");
        }
        let out = stop(consumer).await;
        let (ok, failed) = out.counts();
        assert_eq!(
            (failed, out.degraded()),
            (0, 0),
            "{policy:?}: a rolling restart lost calls (ok={ok}); stderr:\n{}",
            out.stderr
        );
        println!("figure: rolling restart of 3 providers, {policy:?}, 16 callers: ok={ok} failed=0 degraded=0");
    }
}

/// Ends a consumer started with a long `--duration` now: SIGINT makes it stop
/// calling and print its summary.
async fn stop(consumer: ConsumerProcess) -> ConsumerOutput {
    consumer.signal(Signal::SIGINT);
    finish(consumer).await
}

/// One provider of three hangs for 6 s (SIGSTOP) under load: with default
/// settings (failover, random), outlier detection takes it out of rotation
/// and failover moves the calls waiting on it: no call is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_costs_no_idempotent_call_under_default_failover() {
    let (failed, degraded, stderr) = hang_one_of_three(&[]).await;
    assert_eq!((failed, degraded), (0, 0), "stderr:\n{stderr}");
}

/// The same under failfast: only the calls already sent to the hung
/// provider before it was taken out of rotation fail (at most one per
/// caller), as abandoned with an unknown outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_costs_failfast_only_the_calls_it_held() {
    let (failed, _, stderr) = hang_one_of_three(&["--cluster", "failfast"]).await;
    assert!(
        failed <= 16,
        "{failed} failed: more than one per caller; stderr:\n{stderr}"
    );
    for line in stderr.lines().filter(|l| l.starts_with("failed: ")) {
        assert!(line.contains("Timeout (Unknown)"), "{line}");
    }
}

async fn hang_one_of_three(extra: &[&str]) -> (u64, u64, String) {
    let _one = ONE_AT_A_TIME.lock().await;
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    let hung = provider(&registry, "hung");
    let _b = provider(&registry, "b");
    let _c = provider(&registry, "c");
    let consumer = load(&registry, extra);
    let consumer = served_by(consumer, "hung", 100).await;
    hung.signal(Signal::SIGSTOP);
    // The fault itself: a 6 s stall (not a wait for an event).
    tokio::time::sleep(Duration::from_secs(6)).await;
    hung.signal(Signal::SIGCONT);
    // Back in rotation: many more replies from it than the pipe can hold
    // from before the stall.
    let consumer = served_by(consumer, "hung", 100 + 2_000).await;
    let out = stop(consumer).await;
    let (ok, failed) = out.counts();
    println!(
        "figure: one of 3 providers SIGSTOPped 6 s, 16 callers {extra:?}: ok={ok} failed={failed} degraded={}",
        out.degraded()
    );
    (failed, out.degraded(), out.stderr)
}
