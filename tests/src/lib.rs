//! Support for the workspace's end-to-end tests: real processes and sockets.
//!
//! * [`example_binary`] finds a built example program (`cargo test --workspace`
//!   builds them before running tests);
//! * [`ProviderProcess`] runs `greeter-provider` as a child process, waits for
//!   its `listening on` line, and can stop it gently (SIGTERM), kill it
//!   (SIGKILL), freeze (SIGSTOP) and thaw (SIGCONT) it;
//! * [`ExampleProcess`] runs an example program (such as `greeter-consumer`,
//!   [`ConsumerProcess`]) and reads its output as it
//!   is printed;
//! * [`zk`] runs real ZooKeeper servers, and [`proxy::Proxy`] sits between
//!   a client and its server to cut the network between them on demand;
//! * [`java`] runs the Java Apache Dubbo peers of `tests/java/`, and
//!   [`capture::RecordingProxy`] records the bytes between a client and its server;
//! * [`java_greeter`] is the Java peers' `org.example.Greeter` in Rust;
//! * [`netns`] runs a test in a network namespace of its own (the Java tests:
//!   Java Dubbo will not use loopback, and tests must not use the machine's network);
//! * [`curator`] compiles and runs an Apache Curator peer (Java) and the
//!   Rust examples that share its lock and leader-election contract;
//! * [`free_port`] and [`wait_until`] for the rest.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod capture;
pub mod child;
pub mod curator;
pub mod java;
pub mod java_greeter;
pub mod netns;
pub mod proxy;
pub mod python;
pub mod zk;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The path of the example program `name`, built by `cargo test --workspace`.
///
/// # Panics
/// When it is not built, with the command that builds it.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example `{name}` is not built at {}: run the whole suite with `cargo test --workspace` \
         (it builds the examples), or `cargo build -p rpc-examples --examples` first",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
/// For states that offer no event to await (counters of another process or task).
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `greeter-provider` example running as a child process.
#[derive(Debug)]
pub struct ProviderProcess {
    child: Child,
    /// The address it listens on (`host:port`).
    pub address: String,
}

impl ProviderProcess {
    /// Starts `greeter-provider` with `args` and waits (up to 30 s) for its
    /// `listening on <protocol>://<address>` line.
    pub fn spawn(args: &[&str]) -> ProviderProcess {
        let binary = example_binary("greeter-provider");
        let mut child = Command::new(&binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout from greeter-provider"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!("greeter-provider {args:?} did not report `listening on` within 30 s (exit: {status})");
            }
        };
        let address = url.split_once("://").map(|(_, a)| a.to_string()).unwrap_or(url);
        ProviderProcess { child, address }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).unwrap_or_else(|e| panic!("cannot send {signal} to provider {}: {e}", self.child.id()));
    }

    /// SIGKILL, and reap it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (up to `timeout`) for it to exit; returns its stdout exit status.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    panic!("provider did not exit within {timeout:?} of SIGTERM");
                }
            }
        }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An example program running as a child process, its stdout lines
/// arriving as they are printed (for `greeter-consumer`: replies with `-v`,
/// then `ok=<n> failed=<m>`). Killed on drop.
#[derive(Debug)]
pub struct ExampleProcess {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    seen: Vec<String>,
}

/// The `greeter-consumer` example as a child process.
pub type ConsumerProcess = ExampleProcess;

/// What a finished [`ExampleProcess`] printed.
#[derive(Debug)]
pub struct ConsumerOutput {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// All of stderr.
    pub stderr: String,
}

impl ConsumerOutput {
    /// `(ok, failed)` from the final `ok=<n> failed=<m>` line.
    ///
    /// # Panics
    /// When the line is missing.
    pub fn counts(&self) -> (u64, u64) {
        let last = self.stdout.last().map(String::as_str).unwrap_or_default();
        let parse = |key: &str| {
            last.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|n| n.parse().ok())
        };
        match (parse("ok="), parse("failed=")) {
            (Some(ok), Some(failed)) => (ok, failed),
            _ => panic!(
                "no `ok=<n> failed=<m>` line; stdout: {:?}\nstderr: {}",
                self.stdout, self.stderr
            ),
        }
    }

    /// `degraded=<k>` from the final line: calls the consumer answered itself.
    ///
    /// # Panics
    /// When the line is missing.
    pub fn degraded(&self) -> u64 {
        let last = self.stdout.last().map(String::as_str).unwrap_or_default();
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix("degraded="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `degraded=<k>` in the last line; stdout: {:?}", self.stdout))
    }

    /// Stdout lines containing `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.stdout.iter().filter(|l| l.contains(needle)).count()
    }
}

impl ExampleProcess {
    /// Starts `greeter-consumer` with `args`.
    pub fn spawn(args: &[&str]) -> ExampleProcess {
        let log = std::env::var("RPC_CONSUMER_LOG").unwrap_or_else(|_| "error".into());
        ExampleProcess::start("greeter-consumer", args, &log)
    }

    /// Starts the example program `name` with `args`, logging at `log` (`RUST_LOG`) on stderr.
    pub fn start(name: &str, args: &[&str], log: &str) -> ExampleProcess {
        ExampleProcess::start_with_env(name, args, log, &[])
    }

    /// As [`start`](Self::start), with the environment variables `env` set too.
    pub fn start_with_env(name: &str, args: &[&str], log: &str, env: &[(&str, &str)]) -> ExampleProcess {
        let binary = example_binary(name);
        let mut child = Command::new(&binary)
            .args(args)
            .env("RUST_LOG", log)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout from {name}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr from {name}"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        ExampleProcess {
            name: name.to_owned(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines read so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// Reads stdout until a line at index `from` or later (of [`lines`](Self::lines))
    /// contains `needle`; returns its index and text. Panics after `timeout`.
    pub fn wait_for_line_from(&mut self, from: usize, needle: &str, timeout: Duration) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        let mut index = from;
        loop {
            while index < self.seen.len() {
                if self.seen[index].contains(needle) {
                    return (index, self.seen[index].clone());
                }
                index += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => {
                    let status = self.child.try_wait();
                    // Killed, so its stderr ends and can be shown.
                    let _ = self.child.kill();
                    let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
                        .join()
                        .unwrap_or_default();
                    let tail = &stderr[stderr.len().saturating_sub(4000)..];
                    panic!(
                        "{} (pid {}, {status:?}): no line with `{needle}` within {timeout:?} ({e}); \
                         lines: {:?}\nstderr (end): {tail}",
                        self.name,
                        self.child.id(),
                        self.seen.iter().rev().take(10).collect::<Vec<_>>()
                    )
                }
            }
        }
    }

    /// Reads stdout until `count` lines containing `needle` were printed
    /// (counting from the start); panics after `timeout`.
    pub fn wait_for_lines(&mut self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        // Counted as lines arrive: a load run prints hundreds of thousands.
        let mut found = self.seen.iter().filter(|l| l.contains(needle)).count();
        while found < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    found += usize::from(line.contains(needle));
                    self.seen.push(line);
                }
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {count} lines with `{needle}`; last lines: {:?}",
                    self.seen.iter().rev().take(5).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Sends `signal` to the process (SIGINT: stop calling and print the summary).
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).unwrap_or_else(|e| panic!("cannot send {signal} to {} {}: {e}", self.name, self.child.id()));
    }

    /// Lines printed so far (as read by [`wait_for_lines`](Self::wait_for_lines)).
    pub fn seen(&self) -> usize {
        self.seen.len()
    }

    /// Waits (up to `timeout`) for the process to exit and collects its output.
    pub fn wait(mut self, timeout: Duration) -> ConsumerOutput {
        let deadline = Instant::now() + timeout;
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    panic!("{} did not exit within {timeout:?}; lines: {:?}", self.name, self.seen);
                }
            }
        };
        // The reader thread ends at EOF, after the last line.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .unwrap_or_default();
        ConsumerOutput {
            code,
            stdout: std::mem::take(&mut self.seen),
            stderr,
        }
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service for tests: echo, arithmetic, waiting, panicking, large payloads.
pub mod probe {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Barrier;

    /// Test service.
    #[rpc::service(interface = "org.rpc.test.Probe", version = "1.0.0")]
    pub trait Probe {
        /// Answers `s`.
        async fn echo(&self, s: String) -> String;
        /// Answers `a + b`.
        async fn add(&self, a: i64, b: i64) -> i64;
        /// Waits until the barrier's count of calls are in flight, then answers the call number.
        async fn gather(&self) -> u64;
        /// Waits `millis` ms, then answers them.
        async fn sleep(&self, millis: u64) -> u64;
        /// Panics.
        async fn boom(&self) -> String;
        /// Answers `len` bytes.
        async fn blob(&self, len: u32) -> Vec<u8>;
        /// Answers the length of `data`.
        async fn size(&self, data: Vec<u8>) -> u64;
        /// Answers nothing.
        async fn ping(&self);
    }

    /// The implementation.
    #[derive(Debug, Default)]
    pub struct ProbeImpl {
        barrier: Option<Arc<Barrier>>,
        calls: AtomicU64,
    }

    impl ProbeImpl {
        /// `gather` waits until `n` calls are waiting.
        pub fn with_barrier(n: usize) -> Self {
            ProbeImpl {
                barrier: Some(Arc::new(Barrier::new(n))),
                calls: AtomicU64::new(0),
            }
        }
    }

    impl Probe for ProbeImpl {
        async fn echo(&self, s: String) -> String {
            s
        }

        async fn add(&self, a: i64, b: i64) -> i64 {
            a.wrapping_add(b)
        }

        async fn gather(&self) -> u64 {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            if let Some(barrier) = &self.barrier {
                barrier.wait().await;
            }
            n
        }

        async fn sleep(&self, millis: u64) -> u64 {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            millis
        }

        async fn boom(&self) -> String {
            panic!("boom on purpose")
        }

        async fn blob(&self, len: u32) -> Vec<u8> {
            vec![7; len as usize]
        }

        async fn size(&self, data: Vec<u8>) -> u64 {
            data.len() as u64
        }

        async fn ping(&self) {}
    }
}
