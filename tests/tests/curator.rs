//! Interoperability of the ZooKeeper lock and leader election with Apache
//! Curator 5.4 (Debian's `libcurator-recipes-java`): the Java peer
//! `tests/java/curator/CuratorPeer.java` (`InterProcessMutex`, `LeaderLatch`)
//! and the Rust examples `lock-counter` and `leader-job`, which share its
//! contract (arguments and stdout lines), run as real processes against a real
//! ZooKeeper. The Java-only tests prove the peer and the checks themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rpc_tests::curator::{self, Peer, PeerOutput, is_curator_latch_node, is_curator_lock_node};
use rpc_tests::zk::ZooKeeper;
use zookeeper_client::{AddWatchMode, EventType, SessionState};

/// Bound of every wait for a line, a file's content or an exit.
const WAIT: Duration = Duration::from_secs(20);
/// Bound of a leadership handover after the leader's SIGTERM.
const HANDOVER: Duration = Duration::from_secs(2);
/// Lock rounds of each peer.
const ROUNDS: usize = 50;
const LOCK_PATH: &str = "/locks/interop";
const COUNTER: &str = "/counters/interop";
const ELECTION_PATH: &str = "/election/interop";

/// Which implementation a peer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// `CuratorPeer` (Apache Curator).
    Java,
    /// The Rust example programs.
    Rust,
}

/// The Rust examples' registry URL: a 4 s session, like the Java peer's.
fn registry(zk: &ZooKeeper) -> String {
    format!("{}?session=4000", zk.url())
}

/// A lock peer: `ROUNDS` rounds at `LOCK_PATH` holding 5 ms, counting in `COUNTER`.
fn lock_peer(side: Side, zk: &ZooKeeper, name: &str) -> Peer {
    let rounds = ROUNDS.to_string();
    let common = [
        "--path",
        LOCK_PATH,
        "--rounds",
        &rounds,
        "--hold-ms",
        "5",
        "--counter",
        COUNTER,
        "--name",
        name,
    ];
    match side {
        Side::Java => {
            let connect = zk.connect_string();
            let args: Vec<&str> = ["lock", "--connect", &connect].into_iter().chain(common).collect();
            curator::curator(&args)
        }
        Side::Rust => {
            let registry = registry(zk);
            let args: Vec<&str> = ["--registry", registry.as_str()].into_iter().chain(common).collect();
            Peer::example("lock-counter", &args)
        }
    }
}

/// An election peer at `ELECTION_PATH` with id `name`, appending to `log` while leading.
fn latch_peer(side: Side, zk: &ZooKeeper, name: &str, log: &Path) -> Peer {
    let log = log.display().to_string();
    let common = ["--path", ELECTION_PATH, "--name", name, "--log", &log];
    match side {
        Side::Java => {
            let connect = zk.connect_string();
            let args: Vec<&str> = ["latch", "--connect", &connect].into_iter().chain(common).collect();
            curator::curator(&args)
        }
        Side::Rust => {
            let registry = registry(zk);
            let args: Vec<&str> = ["--registry", registry.as_str()].into_iter().chain(common).collect();
            Peer::example("leader-job", &args)
        }
    }
}

/// The names of the nodes created directly under a path while it runs, seen
/// through a persistent recursive watch of a separate ZooKeeper client (so a
/// node that lives for a millisecond is seen too).
struct NodeWatch {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl NodeWatch {
    /// Connects and sets the watch on `parent` (which need not exist yet);
    /// returns once the watch is in place.
    fn start(connect: &str, parent: &str) -> NodeWatch {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, watching) = std::sync::mpsc::channel();
        let connect = connect.to_string();
        let watched = parent.to_string();
        let task = runtime.spawn(async move {
            let client = zookeeper_client::Client::connect(&connect)
                .await
                .expect("the watching client connects to ZooKeeper");
            let mut watcher = client
                .watch(&watched, AddWatchMode::PersistentRecursive)
                .await
                .expect("a persistent watch is set");
            ready.send(()).unwrap();
            let mut created = Vec::new();
            loop {
                tokio::select! {
                    event = watcher.changed() => {
                        if event.event_type == EventType::Session {
                            assert!(
                                !matches!(event.session_state, SessionState::Expired | SessionState::Closed),
                                "the watching client lost its session: {event:?}"
                            );
                            continue;
                        }
                        if event.event_type == EventType::NodeCreated
                            && let Some((dir, name)) = event.path.rsplit_once('/')
                            && dir == watched
                        {
                            created.push(name.to_string());
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
            created
        });
        watching
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the watch on {parent} was not set within {WAIT:?}"));
        NodeWatch { runtime, stop, task }
    }

    /// Stops watching; the names of the nodes created, in order.
    fn finish(self) -> Vec<String> {
        let _ = self.stop.send(());
        self.runtime
            .block_on(async { tokio::time::timeout(WAIT, self.task).await })
            .expect("the watch stops")
            .expect("the watch task ends without panicking")
    }
}

/// The data of `path`, through a fresh client.
fn read_znode(connect: &str, path: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = zookeeper_client::Client::connect(connect).await.unwrap();
        let (data, _) = client
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        String::from_utf8(data).unwrap()
    })
}

fn describe(name: &str, output: &PeerOutput) -> String {
    format!(
        "\n--- {name}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.code,
        output.stdout.join("\n"),
        output.stderr
    )
}

/// The counter values of `round K counter=V` lines, checking K runs 1..=ROUNDS
/// and the last line is `rounds=ROUNDS`.
fn counter_values(output: &PeerOutput, all: &str) -> Vec<u64> {
    let rounds: Vec<(usize, u64)> = output
        .stdout
        .iter()
        .filter_map(|line| {
            let (round, counter) = line.strip_prefix("round ")?.split_once(" counter=")?;
            Some((round.parse().ok()?, counter.parse().ok()?))
        })
        .collect();
    let numbers: Vec<usize> = rounds.iter().map(|(k, _)| *k).collect();
    assert_eq!(numbers, (1..=ROUNDS).collect::<Vec<_>>(), "round lines{all}");
    assert_eq!(
        output.stdout.last().map(String::as_str),
        Some(format!("rounds={ROUNDS}").as_str()),
        "last line{all}"
    );
    rounds.into_iter().map(|(_, v)| v).collect()
}

/// Two lock peers on the same path and counter, `ROUNDS` rounds each: both
/// exit 0 without a violation, every increment lands (the values they saw
/// are exactly 1..=2*ROUNDS and the counter ends there), they took turns,
/// and every lock node follows Curator's naming.
fn lock_rounds(first: Side, second: Side) {
    let zk = ZooKeeper::start();
    let watch = NodeWatch::start(&zk.connect_string(), LOCK_PATH);
    let mut a = lock_peer(first, &zk, "first");
    if first == Side::Java && second == Side::Rust {
        // A JVM needs a second or two to start, a Rust program milliseconds:
        // start the Rust peer once the Java one takes rounds, so they contend.
        a.wait_for_line("round 1 ", WAIT);
    }
    let b = lock_peer(second, &zk, "second");
    let a = a.wait(Duration::from_secs(60));
    let b = b.wait(Duration::from_secs(60));
    let created = watch.finish();
    let all = format!("{}{}", describe("first", &a), describe("second", &b));

    assert_eq!((a.code, b.code), (Some(0), Some(0)), "exit codes{all}");
    assert!(
        !a.stdout.iter().chain(&b.stdout).any(|l| l.contains("VIOLATION")),
        "a peer saw another holder's marker{all}"
    );
    let a_values = counter_values(&a, &all);
    let b_values = counter_values(&b, &all);
    let mut turns: Vec<(u64, char)> = a_values
        .iter()
        .map(|v| (*v, 'a'))
        .chain(b_values.iter().map(|v| (*v, 'b')))
        .collect();
    turns.sort();
    let values: Vec<u64> = turns.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        values,
        (1..=2 * ROUNDS as u64).collect::<Vec<_>>(),
        "the values the peers wrote are not exactly 1..={} (an update was lost){all}",
        2 * ROUNDS
    );
    assert_eq!(read_znode(&zk.connect_string(), COUNTER), (2 * ROUNDS).to_string());
    let handovers = turns.windows(2).filter(|w| w[0].1 != w[1].1).count();
    let order: String = turns.iter().map(|(_, side)| *side).collect();
    assert!(
        handovers >= 4,
        "the peers hardly contended ({handovers} handovers, order {order}): the test proves little{all}"
    );
    assert!(
        created.len() >= 2 * ROUNDS,
        "saw {} lock nodes created under {LOCK_PATH} for {} rounds: {created:?}",
        created.len(),
        2 * ROUNDS
    );
    let strange: Vec<&String> = created.iter().filter(|n| !is_curator_lock_node(n)).collect();
    assert!(
        strange.is_empty(),
        "lock nodes not named like Curator's `_c_<uuid>-lock-<10 digits>`: {strange:?}"
    );
    eprintln!("lock rounds {first:?} + {second:?}: {handovers} handovers, order {order}");
}

/// A scratch directory for a test's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rpc-curator-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names appended to the job's log, one per line.
fn log_names(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many lines `name` the job's log has.
fn job_count(log: &Path, name: &str) -> usize {
    log_names(log).iter().filter(|n| *n == name).count()
}

/// Waits until the job's log has `count` lines `name` (the leader does its job).
fn wait_for_job(log: &Path, name: &str, count: usize, peer: &mut Peer) {
    let start = Instant::now();
    while job_count(log, name) < count {
        assert!(
            start.elapsed() < WAIT,
            "{name} did not append its {count}th line to {} within {WAIT:?}{}",
            log.display(),
            peer.report()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Consecutive runs of equal names: `A A B B B C` -> `[A, B, C]`.
fn runs(names: &[String]) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for name in names {
        if runs.last() != Some(name) {
            runs.push(name.clone());
        }
    }
    runs
}

/// Three election peers A, B, C (of `sides`) at one path: A leads; B joins and
/// names A as leader; A's SIGTERM hands over to B within `HANDOVER`; C joins and
/// names B; B's SIGTERM hands over to C. The job's log changes name only at
/// the handovers (runs A, B, C), and every participant node follows Curator's
/// naming.
fn leader_handover(sides: [Side; 3]) {
    let zk = ZooKeeper::start();
    let dir = TempDir::new(&format!("{sides:?}").replace([' ', '[', ']', ','], ""));
    let log = dir.0.join("job.log");
    let watch = NodeWatch::start(&zk.connect_string(), ELECTION_PATH);

    let mut a = latch_peer(sides[0], &zk, "A", &log);
    a.wait_for_line("A leading", WAIT);
    wait_for_job(&log, "A", 1, &mut a);

    let mut b = latch_peer(sides[1], &zk, "B", &log);
    assert_eq!(
        b.wait_for_line("leader=", WAIT),
        "A",
        "B names A as leader{}",
        b.report()
    );
    // Both run while A leads for a few more of its job's periods: B must not write meanwhile.
    wait_for_job(&log, "A", job_count(&log, "A") + 3, &mut a);
    assert!(
        !b.lines().iter().any(|l| l == "B leading"),
        "B leads while A does{}",
        b.report()
    );

    let sent = Instant::now();
    let a = a.terminate(WAIT);
    assert_eq!(a.code, Some(0), "A exits 0 on SIGTERM{}", describe("A", &a));
    b.wait_for_line("B leading", WAIT);
    let handover = sent.elapsed();
    assert!(handover < HANDOVER, "A -> B took {handover:?}{}", b.report());
    wait_for_job(&log, "B", 1, &mut b);

    let mut c = latch_peer(sides[2], &zk, "C", &log);
    assert_eq!(
        c.wait_for_line("leader=", WAIT),
        "B",
        "C names B as leader{}",
        c.report()
    );
    wait_for_job(&log, "B", job_count(&log, "B") + 3, &mut b);

    let sent = Instant::now();
    let b = b.terminate(WAIT);
    assert_eq!(b.code, Some(0), "B exits 0 on SIGTERM{}", describe("B", &b));
    c.wait_for_line("C leading", WAIT);
    let second_handover = sent.elapsed();
    assert!(
        second_handover < HANDOVER,
        "B -> C took {second_handover:?}{}",
        c.report()
    );
    wait_for_job(&log, "C", 1, &mut c);
    let c = c.terminate(WAIT);
    assert_eq!(c.code, Some(0), "C exits 0 on SIGTERM{}", describe("C", &c));
    let created = watch.finish();

    let all = format!("{}{}{}", describe("A", &a), describe("B", &b), describe("C", &c));
    assert!(
        a.stdout.iter().any(|l| l == "leader=A"),
        "A names itself as leader{all}"
    );
    // While A led (from `A leading` to its `A not leading`), nobody else did.
    let led: Vec<&String> = a
        .stdout
        .iter()
        .skip_while(|l| *l != "A leading")
        .take_while(|l| *l != "A not leading")
        .collect();
    assert!(
        !led.iter().any(|l| *l == "leader=B" || *l == "leader=C"),
        "A saw another leader while it led{all}"
    );
    assert_eq!(
        b.stdout.iter().filter(|l| *l == "B leading").count(),
        1,
        "B led once{all}"
    );
    let names = log_names(&log);
    assert_eq!(
        runs(&names),
        ["A", "B", "C"],
        "the job's log interleaves leaders (runs of {names:?}){all}"
    );
    // One participant node each (more only if a participant lost its session and joined again).
    assert!(created.len() >= 3, "a participant node each: {created:?}");
    let strange: Vec<&String> = created.iter().filter(|n| !is_curator_latch_node(n)).collect();
    assert!(
        strange.is_empty(),
        "participant nodes not named like Curator's `_c_<uuid>-latch-<10 digits>`: {strange:?}"
    );
    eprintln!("leader handover {sides:?}: A->B {handover:?}, B->C {second_handover:?}");
}

/// The peer and the checks themselves: two Curator `InterProcessMutex` peers.
#[test]
fn curator_lock_peers_exclude_each_other() {
    lock_rounds(Side::Java, Side::Java);
}

/// The peer and the checks themselves: three Curator `LeaderLatch` peers.
#[test]
fn curator_latch_peers_hand_over() {
    leader_handover([Side::Java, Side::Java, Side::Java]);
}

/// Issue 16: a Curator `InterProcessMutex` (Java) and our `Lock` (the
/// `lock-counter` example) on the same path never hold at once over 100
/// alternating rounds, and ours names its nodes as Curator does.
#[test]
fn a_curator_mutex_and_our_lock_exclude_each_other() {
    lock_rounds(Side::Java, Side::Rust);
}

/// Issue 16: a Curator `LeaderLatch` (Java) and our `LeaderElection` (the
/// `leader-job` example) agree on one leader: Curator's `getLeader()` names
/// ours while ours leads, ours names Curator's, and leadership passes both
/// ways on SIGTERM within 2 s without two jobs running at once.
#[test]
fn a_curator_leader_latch_and_our_election_agree_on_one_leader() {
    leader_handover([Side::Rust, Side::Java, Side::Rust]);
}
