//! Real ZooKeeper servers for tests: standalone or a loopback ensemble.
//!
//! Each server runs Debian's `zookeeper` package as a child process
//! (`java ... QuorumPeerMain zoo.cfg`) on free 127.0.0.1 ports with a temporary
//! data directory, and is killed (and its directory removed) on drop. Members
//! can be stopped, killed, frozen and restarted on the same ports and data.
//! A test that needs ZooKeeper and cannot find it panics with the command that
//! installs it: it never skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::free_port;

const JAR: &str = "/usr/share/java/zookeeper.jar";
const CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Ticks of 200 ms: sessions may last from 0.4 s to 60 s.
const TICK_MS: u64 = 200;

/// Sends a four-letter command (`ruok`, `srvr`, `mntr`, `stat`, `dump`, `wchp`) and returns the answer
/// (empty when the server does not answer within a second).
pub fn four_letter(address: &str, command: &str) -> String {
    let Ok(addr) = address.parse() else {
        return String::new();
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(command.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// The session ids a server's `dump` names, or `None` when it does not answer.
///
/// A standalone server's `dump` lists the sessions its SessionTracker holds
/// (one `0x<hex id>` line each, under their expiry bucket), the sessions that
/// still own ephemeral nodes (`0x<hex id>:` followed by the paths) and the
/// open connections (`ip: /127.0.0.1:port sessionId: 0x<hex id>`; `0x0` for
/// one without a session yet): a session missing from all three is expired or
/// closed, and its ephemeral nodes are deleted. (An ensemble member's `dump`
/// is only complete on the leader.)
pub fn dump_sessions(address: &str) -> Option<Vec<i64>> {
    let dump = four_letter(address, "dump");
    if !dump.contains("SessionTracker dump") {
        return None;
    }
    let ids = dump
        .split_whitespace()
        .filter_map(|word| word.trim_end_matches(':').strip_prefix("0x"))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        // Session ids are signed 64-bit in the protocol, printed unsigned in hex.
        .map(|id| id as i64)
        .collect();
    Some(ids)
}

/// The watches a server holds, by path (`wchp`): each watched path and the
/// session ids watching it. Data and exists watches count; child watches too.
///
/// # Panics
/// When the server does not answer `wchp`.
pub fn watches_by_path(address: &str) -> std::collections::BTreeMap<String, Vec<i64>> {
    let answer = four_letter(address, "wchp");
    assert!(
        !answer.is_empty() && !answer.contains("not executed"),
        "ZooKeeper at {address} did not answer `wchp`: {answer:?}"
    );
    let mut watches = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in answer.lines() {
        let line = line.trim();
        if line.starts_with('/') {
            current = Some(line.to_owned());
            watches.entry(line.to_owned()).or_insert_with(Vec::new);
        } else if let (Some(path), Some(hex)) = (&current, line.strip_prefix("0x")) {
            if let Ok(id) = u64::from_str_radix(hex, 16) {
                watches.entry(path.clone()).or_insert_with(Vec::new).push(id as i64);
            }
        }
    }
    watches
}

/// One ZooKeeper server process.
#[derive(Debug)]
pub struct Server {
    dir: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

impl Server {
    fn new(dir: PathBuf, client_port: u16, peers: &[(u16, u16)], id: usize) -> Server {
        assert!(
            Path::new(JAR).exists(),
            "ZooKeeper is not installed ({JAR} is missing): run ./scripts/test.sh, which installs \
             Debian's `zookeeper` package, or `apt-get install -y zookeeper`"
        );
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let mut cfg = format!(
            "tickTime={TICK_MS}\ninitLimit=50\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr,stat,dump,wchp\n\
             minSessionTimeout={}\nmaxSessionTimeout=60000\n",
            data.display(),
            TICK_MS * 2
        );
        for (i, (peer, election)) in peers.iter().enumerate() {
            cfg.push_str(&format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1));
        }
        if !peers.is_empty() {
            std::fs::write(data.join("myid"), format!("{}\n", id + 1))
                .unwrap_or_else(|e| panic!("cannot write myid: {e}"));
        }
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap_or_else(|e| panic!("cannot write zoo.cfg: {e}"));
        let mut server = Server {
            dir,
            client_port,
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap_or_else(|e| panic!("cannot open the ZooKeeper log: {e}"));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open the ZooKeeper log: {e}"));
        let child = Command::new("java")
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.display()))
            .arg("-Xmx256m")
            .args(["-cp", CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain"])
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java for ZooKeeper (is a JRE installed?): {e}"));
        self.child = Some(child);
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until it answers `ruok` (and, with `serving`, `srvr` reports a mode).
    fn wait_ready(&mut self, serving: bool) {
        let started = Instant::now();
        loop {
            let ok = four_letter(&self.address(), "ruok") == "imok"
                && (!serving || four_letter(&self.address(), "srvr").contains("Mode:"));
            if ok {
                return;
            }
            if !self.is_running() || started.elapsed() > READY_TIMEOUT {
                panic!(
                    "ZooKeeper at {} did not become ready within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.address(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn signal_and_reap(&mut self, signal: Signal) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) {
        self.signal_and_reap(Signal::SIGTERM);
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self) {
        self.signal_and_reap(Signal::SIGKILL);
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP);
        }
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
    }

    /// Starts the process again on the same ports and data, without waiting.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.launch();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("rpc-zk-{}-{name}-{n}", std::process::id()))
}

/// Most ZooKeeper servers (JVMs) running at once in one test process: a test
/// binary runs its tests in parallel, and a dozen JVMs on two cores make
/// session handling time out. A test starting a server waits for a slot.
const MAX_SERVERS: usize = 2;

static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) = (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Slots for `n` servers, held until dropped.
#[derive(Debug)]
struct Slots(usize);

impl Slots {
    /// Waits until `n` servers may start (all at once: an ensemble needs them together).
    fn take(n: usize) -> Slots {
        let n = n.min(MAX_SERVERS);
        let (count, freed) = &RUNNING;
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        while *running + n > MAX_SERVERS {
            running = freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += n;
        Slots(n)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING;
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        *running -= self.0;
        freed.notify_all();
    }
}

/// A standalone ZooKeeper server.
#[derive(Debug)]
pub struct ZooKeeper {
    server: Server,
    _slot: Slots,
}

impl ZooKeeper {
    /// Starts a server on a free loopback port and waits until it answers
    /// (first waiting, when several tests run, until few enough servers run).
    pub fn start() -> ZooKeeper {
        let slot = Slots::take(1);
        let mut server = Server::new(temp_dir("standalone"), free_port(), &[], 0);
        server.wait_ready(false);
        ZooKeeper { server, _slot: slot }
    }

    /// `127.0.0.1:port`.
    pub fn connect_string(&self) -> String {
        self.server.address()
    }

    /// `zookeeper://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("zookeeper://{}", self.server.address())
    }

    /// Stops the server (SIGTERM).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts it again on the same port and data, and waits until it answers.
    pub fn start_again(&mut self) {
        self.server.start_again();
        self.server.wait_ready(false);
    }

    /// The server process.
    pub fn server(&mut self) -> &mut Server {
        &mut self.server
    }
}

/// An ensemble of ZooKeeper servers on loopback.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Server>,
    _slots: Slots,
}

impl Ensemble {
    /// Starts `n` servers and waits for a quorum.
    pub fn start(n: usize) -> Ensemble {
        let slots = Slots::take(n);
        let peers: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let members = (0..n)
            .map(|i| Server::new(temp_dir(&format!("member{i}")), free_port(), &peers, i))
            .collect();
        let mut ensemble = Ensemble { members, _slots: slots };
        ensemble.wait_for_quorum();
        ensemble
    }

    /// Waits until every running member serves (a leader and followers).
    pub fn wait_for_quorum(&mut self) {
        for member in &mut self.members {
            if member.is_running() {
                member.wait_ready(true);
            }
        }
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...`.
    pub fn connect_string(&self) -> String {
        self.members.iter().map(Server::address).collect::<Vec<_>>().join(",")
    }

    /// `zookeeper://127.0.0.1:p1,127.0.0.1:p2,...`.
    pub fn url(&self) -> String {
        format!("zookeeper://{}", self.connect_string())
    }

    /// Member `i` (0-based).
    pub fn member(&mut self, i: usize) -> &mut Server {
        &mut self.members[i]
    }
}
