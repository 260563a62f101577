//! ZooKeeper coordination against a real server: the lock and the leader
//! election of `rpc::registry::zookeeper`, in-process and as real processes
//! (`lock-counter`, `leader-job`) that are killed, paused and cut off.
//!
//! Sessions are short (`?session=4000`), so each fault takes seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use rpc::registry::Url;
use rpc::registry::zookeeper::{LeaderState, LockState, LostReason, ZookeeperRegistry};
use rpc_tests::proxy::Proxy;
use rpc_tests::zk::{ZooKeeper, watches_by_path};
use rpc_tests::{ExampleProcess, wait_until};
use tokio::time::Instant;

const SESSION_MS: u64 = 4000;
/// Generous bound for one step of a test on a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(30);

fn url(address: &str, session_ms: u64) -> String {
    format!("zookeeper://{address}?session={session_ms}&timeout=5000")
}

async fn connected(url: &str) -> ZookeeperRegistry {
    let registry = ZookeeperRegistry::new(&Url::parse(url).unwrap()).unwrap();
    wait_until("the registry's first session", STEP, || registry.session().is_some()).await;
    registry
}

async fn zk_client(connect: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connect(connect).await.unwrap()
}

async fn read_u64(zk: &zookeeper_client::Client, path: &str) -> u64 {
    let (data, _) = zk.get_data(path).await.unwrap();
    String::from_utf8(data).unwrap().trim().parse().unwrap()
}

async fn children(zk: &zookeeper_client::Client, path: &str) -> Vec<String> {
    match zk.list_children(path).await {
        Ok(children) => children,
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => panic!("list {path}: {e}"),
    }
}

/// Waits until the marker znode names `holder`.
async fn wait_for_marker(zk: &zookeeper_client::Client, marker: &str, holder: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok((data, _)) = zk.get_data(marker).await
            && data == holder.as_bytes()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{holder} never held {marker}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lock_counter(zk_url: &str, lock: &str, counter: &str, name: &str, rounds: u32, hold_ms: u64) -> ExampleProcess {
    let rounds = rounds.to_string();
    let hold = hold_ms.to_string();
    ExampleProcess::start(
        "lock-counter",
        &[
            "--registry",
            zk_url,
            "--path",
            lock,
            "--counter",
            counter,
            "--name",
            name,
            "--rounds",
            &rounds,
            "--hold-ms",
            &hold,
        ],
        &std::env::var("RPC_EXAMPLE_LOG").unwrap_or_else(|_| "warn".into()),
    )
}

/// Rounds a lock-counter's output says it completed, and those it lost after writing.
fn rounds_written(lines: &[String]) -> (u64, u64) {
    let done = lines
        .iter()
        .filter(|l| l.starts_with("round ") && l.contains(" counter="))
        .count();
    let lost_after = lines
        .iter()
        .filter(|l| l.contains("lost the lock after writing"))
        .count();
    let lost_after = lost_after as u64;
    (done as u64 - lost_after, lost_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_share_a_counter_without_losing_an_update() {
    let zk = ZooKeeper::start();
    let zk_url = url(&zk.connect_string(), SESSION_MS);
    let counters: Vec<_> = (0..5)
        .map(|i| lock_counter(&zk_url, "/locks/five", "/counters/five", &format!("p{i}"), 40, 1))
        .collect();
    for counter in counters {
        let out = tokio::task::spawn_blocking(move || counter.wait(Duration::from_secs(120)))
            .await
            .unwrap();
        assert_eq!(out.code, Some(0), "stdout: {:?}\nstderr: {}", out.stdout, out.stderr);
        assert!(!out.stdout.iter().any(|l| l.contains("VIOLATION")), "{:?}", out.stdout);
        assert_eq!(out.stdout.last().map(String::as_str), Some("rounds=40"));
    }
    let client = zk_client(&zk.connect_string()).await;
    assert_eq!(read_u64(&client, "/counters/five").await, 200);
    assert!(
        children(&client, "/locks/five").await.is_empty(),
        "contender nodes left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_hands_the_lock_over_within_the_session_timeout() {
    let zk = ZooKeeper::start();
    let zk_url = url(&zk.connect_string(), SESSION_MS);
    let client = zk_client(&zk.connect_string()).await;
    let a = lock_counter(&zk_url, "/locks/kill", "/counters/kill", "a", 3, 3000);
    wait_for_marker(&client, "/counters/kill-holder", "a").await;
    let b = lock_counter(&zk_url, "/locks/kill", "/counters/kill", "b", 2, 0);
    // B queues behind A before A dies.
    wait_until("b to queue up", STEP, || {
        futures::executor::block_on(children(&client, "/locks/kill")).len() == 2
    })
    .await;
    a.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let b = tokio::task::spawn_blocking(move || b.wait(STEP)).await.unwrap();
    let handover = killed.elapsed();
    assert_eq!(b.code, Some(0), "stdout: {:?}\nstderr: {}", b.stdout, b.stderr);
    assert!(!b.stdout.iter().any(|l| l.contains("VIOLATION")), "{:?}", b.stdout);
    // The session expires SESSION_MS after the kill (plus a ZooKeeper tick or two).
    assert!(
        handover < Duration::from_millis(SESSION_MS) + Duration::from_secs(4),
        "B finished {handover:?} after the kill"
    );
    let a = tokio::task::spawn_blocking(move || a.wait(STEP)).await.unwrap();
    let (a_done, _) = rounds_written(&a.stdout);
    let (b_done, _) = rounds_written(&b.stdout);
    let counter = read_u64(&client, "/counters/kill").await;
    // A may have written its round and died before printing it.
    assert!(
        counter == a_done + b_done || counter == a_done + b_done + 1,
        "counter {counter}, rounds logged: a {a_done}, b {b_done}"
    );
    eprintln!("figures: handover after kill -9 of the holder: {handover:?} (session {SESSION_MS} ms)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_is_fenced_off_and_told_when_it_wakes() {
    let zk = ZooKeeper::start();
    let zk_url = url(&zk.connect_string(), SESSION_MS);
    let client = zk_client(&zk.connect_string()).await;
    let mut a = lock_counter(&zk_url, "/locks/pause", "/counters/pause", "a", 2, 2000);
    wait_for_marker(&client, "/counters/pause-holder", "a").await;
    wait_until("a's first write", STEP, || {
        futures::executor::block_on(client.get_data("/counters/pause")).is_ok_and(|(data, _)| data == b"1")
    })
    .await;
    // A has written 1 and holds the lock for 2 s more: freeze it past its session.
    a.signal(Signal::SIGSTOP);
    let b = lock_counter(&zk_url, "/locks/pause", "/counters/pause", "b", 1, 0);
    let b = tokio::task::spawn_blocking(move || b.wait(STEP)).await.unwrap();
    assert_eq!(b.code, Some(0), "stdout: {:?}\nstderr: {}", b.stdout, b.stderr);
    assert_eq!(
        b.stdout.first().map(String::as_str),
        Some("round 1 counter=2"),
        "{:?}",
        b.stdout
    );
    a.signal(Signal::SIGCONT);
    let woke = Instant::now();
    // It knows why...
    a.wait_for_line_from(0, "lock lost (the ZooKeeper session expired)", STEP);
    let told = woke.elapsed();
    // ...and its next write (the marker's delete) was refused by the fence.
    a.wait_for_line_from(0, "round 1 lost the lock after writing counter=1", STEP);
    let a = tokio::task::spawn_blocking(move || a.wait(STEP)).await.unwrap();
    assert_eq!(a.code, Some(0), "stdout: {:?}\nstderr: {}", a.stdout, a.stderr);
    assert!(!a.stdout.iter().any(|l| l.contains("VIOLATION")), "{:?}", a.stdout);
    // A's lost round wrote 1; B wrote 2; A's two completed rounds 3 and 4.
    assert_eq!(read_u64(&client, "/counters/pause").await, 4);
    // Documented bound: the client learns of the expiry on its first reconnection after waking.
    assert!(told < Duration::from_secs(5), "told of the loss {told:?} after waking");
    eprintln!("figures: a holder paused past its session learned of the loss {told:?} after waking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_restart_suspends_the_lock_and_the_holder_keeps_it() {
    let mut zk = ZooKeeper::start();
    // A longer session: the server must come back (a JVM start) within it.
    let zk_url = url(&zk.connect_string(), 20_000);
    let client = zk_client(&zk.connect_string()).await;
    let mut a = lock_counter(&zk_url, "/locks/restart", "/counters/restart", "a", 1, 6000);
    wait_for_marker(&client, "/counters/restart-holder", "a").await;
    let b = lock_counter(&zk_url, "/locks/restart", "/counters/restart", "b", 1, 0);
    // B queues behind A before ZooKeeper goes.
    wait_until("b to queue up", STEP, || {
        futures::executor::block_on(children(&client, "/locks/restart")).len() == 2
    })
    .await;
    drop(client);
    zk.stop();
    a.wait_for_line_from(0, "lock suspended", STEP);
    zk.start_again();
    let a = tokio::task::spawn_blocking(move || a.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let b = tokio::task::spawn_blocking(move || b.wait(STEP)).await.unwrap();
    let report = format!("a: {:?}\n{}\nb: {:?}\n{}", a.stdout, a.stderr, b.stdout, b.stderr);
    assert_eq!(a.code, Some(0), "{report}");
    assert_eq!(b.code, Some(0), "{report}");
    // Suspended while ZooKeeper was down, held again once it was back, never lost;
    // its round wrote 1, then B's wrote 2: no second holder meanwhile.
    assert_eq!(
        a.stdout,
        ["lock suspended", "lock held", "round 1 counter=1", "rounds=1"],
        "{report}"
    );
    assert_eq!(b.stdout, ["round 1 counter=2", "rounds=1"], "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_waiters_each_watch_only_their_predecessor() {
    let zk = ZooKeeper::start();
    let registry = connected(&url(&zk.connect_string(), 10_000)).await;
    let lock = registry.lock("/locks/herd");
    let holder = lock.acquire(STEP).await.unwrap();
    let (acquired, mut acquisitions) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..50 {
        let lock = lock.clone();
        let acquired = acquired.clone();
        waiters.push(tokio::spawn(async move {
            let guard = lock.acquire(Duration::from_secs(120)).await.unwrap();
            acquired.send(i).unwrap();
            // Held until the test ends.
            std::future::pending::<()>().await;
            drop(guard);
        }));
    }
    let client = zk_client(&zk.connect_string()).await;
    wait_until("51 contenders", STEP, || {
        futures::executor::block_on(children(&client, "/locks/herd")).len() == 51
    })
    .await;
    let nodes: Vec<String> = {
        let mut nodes = children(&client, "/locks/herd").await;
        nodes.sort_by_key(|n| n[n.len() - 10..].to_owned());
        nodes.into_iter().map(|n| format!("/locks/herd/{n}")).collect()
    };
    // Every node but the last is watched (each by its successor; the holder
    // also watches its own), and nobody watches the parent: no herd.
    let address = zk.connect_string();
    let expected: BTreeSet<String> = nodes[..50].iter().cloned().collect();
    let deadline = Instant::now() + STEP;
    let watched = loop {
        let address = address.clone();
        let watches = tokio::task::spawn_blocking(move || watches_by_path(&address))
            .await
            .unwrap();
        let watched: BTreeSet<String> = watches.keys().filter(|p| p.starts_with("/locks")).cloned().collect();
        if watched == expected || Instant::now() > deadline {
            break watches;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let under_lock: BTreeSet<String> = watched.keys().filter(|p| p.starts_with("/locks")).cloned().collect();
    assert_eq!(
        under_lock, expected,
        "watched paths differ from each waiter's predecessor"
    );
    assert!(
        !watched.contains_key("/locks/herd"),
        "someone watches the lock's parent: {watched:?}"
    );
    for node in &nodes[1..50] {
        assert_eq!(watched[node].len(), 1, "{node} has {} watchers", watched[node].len());
    }
    // A release wakes one waiter: the next in line, and it alone.
    holder.release().await.unwrap();
    let first = tokio::time::timeout(STEP, acquisitions.recv()).await.unwrap().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), acquisitions.recv())
            .await
            .is_err(),
        "a second waiter acquired the lock"
    );
    assert_eq!(children(&client, "/locks/herd").await.len(), 50);
    eprintln!("figures: waiter {first} woke; 49 still wait");
    for waiter in waiters {
        waiter.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_and_timeouts_leave_no_node_behind() {
    let zk = ZooKeeper::start();
    let registry = connected(&url(&zk.connect_string(), 10_000)).await;
    let client = zk_client(&zk.connect_string()).await;
    let lock = registry.lock("/locks/try").with_id("first");
    let held = lock.try_acquire().await.unwrap().expect("a free lock is taken");
    assert_eq!(held.state(), LockState::Held);
    assert_eq!(lock.holder().await.unwrap().as_deref(), Some("first"));
    let other = registry.lock("/locks/try").with_id("second");
    assert!(other.try_acquire().await.unwrap().is_none(), "a held lock was taken");
    let err = other.acquire(Duration::from_millis(300)).await.unwrap_err();
    assert!(err.to_string().contains("not acquired within 300 ms"), "{err}");
    // Neither the refused try nor the timed-out acquire left a node.
    assert_eq!(children(&client, "/locks/try").await.len(), 1);
    // Fenced writes work while held, and the counter of a sequence grows.
    held.create("/try-data", b"1", false).await.unwrap();
    held.set_data("/try-data", b"2", None).await.unwrap();
    let first_sequence = held.sequence();
    held.release().await.unwrap();
    assert!(children(&client, "/locks/try").await.is_empty());
    let again = other.try_acquire().await.unwrap().expect("free again");
    assert!(again.sequence() > first_sequence);
    // A cancelled acquire withdraws too.
    let waiting = registry.lock("/locks/try");
    let cancelled = tokio::time::timeout(Duration::from_millis(200), waiting.acquire(STEP)).await;
    assert!(cancelled.is_err());
    wait_until("the cancelled contender's node to go", STEP, || {
        futures::executor::block_on(children(&client, "/locks/try")).len() == 1
    })
    .await;
    again.release().await.unwrap();
    // Bad paths are refused before anything is sent.
    let err = registry.lock("locks/relative").try_acquire().await.unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_write_fails_once_the_lock_node_is_gone() {
    let zk = ZooKeeper::start();
    let registry = connected(&url(&zk.connect_string(), 10_000)).await;
    let client = zk_client(&zk.connect_string()).await;
    let guard = registry.lock("/locks/fence").acquire(STEP).await.unwrap();
    client
        .create(
            "/fenced",
            b"0",
            &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    guard.set_data("/fenced", b"1", None).await.unwrap();
    // Someone (an operator) deletes the lock node: the holder is told, and its writes refused.
    client.delete(guard.node_path(), None).await.unwrap();
    let reason = tokio::time::timeout(STEP, guard.lost()).await.unwrap();
    assert_eq!(reason, LostReason::NodeDeleted);
    let err = guard.set_data("/fenced", b"2", None).await.unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert_eq!(client.get_data("/fenced").await.unwrap().0, b"1");
    // Releasing a lost lock is fine: nothing to delete.
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contender_whose_create_reply_was_lost_leaves_no_orphan() {
    let zk = ZooKeeper::start();
    let proxy = Proxy::start(&zk.connect_string());
    let registry = connected(&url(&proxy.address(), 20_000)).await;
    let client = zk_client(&zk.connect_string()).await;
    client
        .mkdir(
            "/locks/orphan",
            &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    // The create reaches ZooKeeper; its reply does not reach the client.
    proxy.stall();
    let lock = registry.lock("/locks/orphan");
    let acquire = tokio::spawn(async move { lock.acquire(STEP).await });
    wait_until("the contender's node", STEP, || {
        futures::executor::block_on(children(&client, "/locks/orphan")).len() == 1
    })
    .await;
    // The connection is lost with the reply; the client reconnects within its session.
    proxy.cut();
    proxy.restore();
    let guard = acquire.await.unwrap().unwrap();
    // The contender's first node never blocks anyone: the lock is ours, and
    // (soon: the recipe withdraws a node it found but could not use) it is the only one.
    wait_until("one contender node", STEP, || {
        futures::executor::block_on(children(&client, "/locks/orphan")).len() == 1
    })
    .await;
    let nodes = children(&client, "/locks/orphan").await;
    assert!(
        guard.node_path().ends_with(&nodes[0]),
        "{nodes:?} vs {}",
        guard.node_path()
    );
    guard.release().await.unwrap();
    assert!(children(&client, "/locks/orphan").await.is_empty());

    // try_acquire creates its node itself and finds it again by its unique prefix.
    proxy.stall();
    let lock = registry.lock("/locks/orphan");
    let trying = tokio::spawn(async move { lock.try_acquire().await });
    wait_until("the try's node", STEP, || {
        futures::executor::block_on(children(&client, "/locks/orphan")).len() == 1
    })
    .await;
    proxy.cut();
    proxy.restore();
    let guard = trying
        .await
        .unwrap()
        .unwrap()
        .expect("the only contender takes the lock");
    let nodes = children(&client, "/locks/orphan").await;
    assert_eq!(nodes.len(), 1, "an orphan was left: {nodes:?}");
    assert!(guard.node_path().ends_with(&nodes[0]));
    guard.release().await.unwrap();
    assert!(children(&client, "/locks/orphan").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_holder_suspends_before_anyone_else_can_hold() {
    let zk = ZooKeeper::start();
    let proxy = Proxy::start(&zk.connect_string());
    let cut_off = connected(&url(&proxy.address(), SESSION_MS)).await;
    let other = connected(&url(&zk.connect_string(), SESSION_MS)).await;
    let guard = cut_off.lock("/locks/partition").acquire(STEP).await.unwrap();
    let mut states = guard.watch();
    let waiting = tokio::spawn({
        let lock = other.lock("/locks/partition");
        async move {
            let guard = lock.acquire(STEP).await.unwrap();
            let at = Instant::now();
            (guard, at)
        }
    });
    // A silent network: the server's replies stop coming back, nothing is closed
    // (the client's reconnection attempts still reach the server and keep the
    // session alive until the client itself gives it up, at 7/5 of its timeout).
    proxy.stall();
    let stalled = Instant::now();
    tokio::time::timeout(STEP, states.wait_for(|s| *s == LockState::Suspended))
        .await
        .unwrap()
        .unwrap();
    let suspended_at = Instant::now();
    let (_other_guard, other_at) = waiting.await.unwrap();
    assert!(
        suspended_at < other_at,
        "the cut-off holder suspended {:?} after the stall, after the other took the lock ({:?})",
        suspended_at - stalled,
        other_at - stalled
    );
    eprintln!(
        "figures: partitioned holder suspended after {:?}; another held the lock after {:?} (session {SESSION_MS} ms)",
        suspended_at - stalled,
        other_at - stalled
    );
    // Later, the cut-off holder learns it lost the lock.
    proxy.restore();
    let reason = tokio::time::timeout(STEP, guard.lost()).await.unwrap();
    assert_eq!(reason, LostReason::SessionExpired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_hands_over_when_the_leader_leaves_or_dies() {
    let zk = ZooKeeper::start();
    let registry = connected(&url(&zk.connect_string(), SESSION_MS)).await;
    let a = registry.leader_election("/election/inproc", "a").join().await.unwrap();
    tokio::time::timeout(STEP, a.watch().wait_for(|s| s.is_leading()))
        .await
        .unwrap()
        .unwrap();
    let b = registry.leader_election("/election/inproc", "b").join().await.unwrap();
    assert_eq!(b.leader().await.unwrap().as_deref(), Some("a"));
    assert_eq!(b.state(), LeaderState::Waiting);
    let started = Instant::now();
    a.relinquish().await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), b.watch().wait_for(|s| s.is_leading()))
        .await
        .expect("b leads within 1 s of a's leaving")
        .unwrap();
    eprintln!("figures: in-process handover after relinquish: {:?}", started.elapsed());
    let ran = b.while_leading(async { 7 }).await;
    assert_eq!(ran, Some(7));
    assert_eq!(
        registry
            .leader_election("/election/inproc", "x")
            .leader()
            .await
            .unwrap()
            .as_deref(),
        Some("b")
    );
    b.relinquish().await.unwrap();
    let client = zk_client(&zk.connect_string()).await;
    assert!(children(&client, "/election/inproc").await.is_empty());
}

/// The names in the job's log, with consecutive repeats collapsed: one entry per leadership period.
fn leadership_runs(log: &str) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for name in log.lines() {
        if runs.last().map(String::as_str) != Some(name) {
            runs.push(name.to_owned());
        }
    }
    runs
}

fn leader_job(zk_url: &str, path: &str, name: &str, log: &std::path::Path) -> ExampleProcess {
    ExampleProcess::start(
        "leader-job",
        &[
            "--registry",
            zk_url,
            "--path",
            path,
            "--name",
            name,
            "--log",
            log.to_str().unwrap(),
        ],
        "warn",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_jobs_never_run_at_once_and_hand_over_on_kill_and_sigterm() {
    let zk = ZooKeeper::start();
    let zk_url = url(&zk.connect_string(), SESSION_MS);
    let dir = std::env::temp_dir().join(format!("rpc-leader-job-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("job.log");
    let _ = std::fs::remove_file(&log);
    let mut a = leader_job(&zk_url, "/election/job", "a", &log);
    a.wait_for_line_from(0, "a leading", STEP);
    // In line in this order: b's node before c's.
    let client = zk_client(&zk.connect_string()).await;
    let mut b = leader_job(&zk_url, "/election/job", "b", &log);
    wait_until("b in line", STEP, || {
        futures::executor::block_on(children(&client, "/election/job")).len() == 2
    })
    .await;
    let mut c = leader_job(&zk_url, "/election/job", "c", &log);
    b.wait_for_line_from(0, "leader=a", STEP);
    c.wait_for_line_from(0, "leader=a", STEP);
    // kill -9 the leader: the next leads once its session expires.
    a.signal(Signal::SIGKILL);
    let killed = Instant::now();
    b.wait_for_line_from(0, "b leading", STEP);
    let after_kill = killed.elapsed();
    assert!(
        after_kill < Duration::from_millis(SESSION_MS) + Duration::from_secs(4),
        "b led {after_kill:?} after the kill"
    );
    let (seen, _) = c.wait_for_line_from(0, "leader=b", STEP);
    // b's job runs while it leads.
    wait_until("b's job to write", STEP, || {
        std::fs::read_to_string(&log).unwrap().lines().any(|l| l == "b")
    })
    .await;
    // SIGTERM: the leader relinquishes, the next leads within a second.
    b.signal(Signal::SIGTERM);
    let termed = Instant::now();
    c.wait_for_line_from(seen, "c leading", STEP);
    let after_term = termed.elapsed();
    let b = tokio::task::spawn_blocking(move || b.wait(STEP)).await.unwrap();
    assert_eq!(b.code, Some(0), "stdout: {:?}\nstderr: {}", b.stdout, b.stderr);
    assert!(
        after_term < Duration::from_secs(1),
        "c led {after_term:?} after b's SIGTERM"
    );
    // Let c's job write, then stop it.
    let written = std::fs::read_to_string(&log).unwrap().lines().count();
    wait_until("c's job to write", STEP, || {
        std::fs::read_to_string(&log).unwrap().lines().count() > written + 2
    })
    .await;
    c.signal(Signal::SIGTERM);
    let c = tokio::task::spawn_blocking(move || c.wait(STEP)).await.unwrap();
    assert_eq!(c.code, Some(0), "stdout: {:?}\nstderr: {}", c.stdout, c.stderr);
    let runs = leadership_runs(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(runs, ["a", "b", "c"], "two jobs interleaved in the log");
    eprintln!("figures: leader handover after kill -9: {after_kill:?}; after SIGTERM: {after_term:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_elections_live_under_the_registry_chroot() {
    let zk = ZooKeeper::start();
    let registry = connected(&url(&format!("{}/tenant-a", zk.connect_string()), 10_000)).await;
    let client = zk_client(&zk.connect_string()).await;
    let guard = registry.lock("/locks/chrooted").acquire(STEP).await.unwrap();
    // The guard speaks in chroot-relative paths; ZooKeeper holds the node under the chroot.
    assert!(
        guard.node_path().starts_with("/locks/chrooted/_c_"),
        "{}",
        guard.node_path()
    );
    assert_eq!(children(&client, "/tenant-a/locks/chrooted").await.len(), 1);
    assert!(children(&client, "/locks/chrooted").await.is_empty());
    guard.create("/fenced-in-chroot", b"x", false).await.unwrap();
    assert!(client.get_data("/tenant-a/fenced-in-chroot").await.is_ok());
    guard.release().await.unwrap();
    let participant = registry
        .leader_election("/election/chrooted", "solo")
        .join()
        .await
        .unwrap();
    tokio::time::timeout(STEP, participant.watch().wait_for(|s| s.is_leading()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(children(&client, "/tenant-a/election/chrooted").await.len(), 1);
    participant.relinquish().await.unwrap();
    assert!(children(&client, "/tenant-a/election/chrooted").await.is_empty());
}
