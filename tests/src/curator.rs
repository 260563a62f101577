//! Apache Curator peers for the lock and leader-election interoperability
//! tests: `tests/java/curator/CuratorPeer.java`, built on Debian's
//! `libcurator-recipes-java` 5.4 (`InterProcessMutex`, `LeaderLatch`), and the
//! Rust example programs that follow the same contract (`lock-counter`,
//! `leader-job`), each run as a child process whose stdout lines are read as
//! they are printed.
//!
//! * [`peer_classes`] compiles the Java peer with `javac` once per test
//!   process, into `<workspace>/target/curator-peer/` (skipped when the class
//!   is newer than the source);
//! * [`Peer::curator`] runs it (`lock ...` or `latch ...`, see the source's
//!   header for the contract), [`Peer::example`] runs a Rust example program,
//!   and [`Peer`] reads their lines, signals them and collects their exit.
//!
//! A test that needs Java, `javac` or Curator and cannot find them panics with
//! the command that installs them: it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How to get what the Java peer needs, for panic messages.
const INSTRUCTION: &str = "run ./scripts/test.sh, which installs them, or \
                           `apt-get install -y default-jdk-headless libcurator-recipes-java`";

/// The jars the peer compiles and runs against (Debian's unversioned links).
/// Curator 5.4 and its dependencies: ZooKeeper's client, Guava, SLF4J (with
/// slf4j-simple, which logs to stderr).
pub const JARS: &[&str] = &[
    "/usr/share/java/curator-recipes.jar",
    "/usr/share/java/curator-framework.jar",
    "/usr/share/java/curator-client.jar",
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/guava.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-simple.jar",
];

/// The peer's main class.
const MAIN_CLASS: &str = "CuratorPeer";

/// The workspace's root directory (the parent of this crate's).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("the tests crate {} has no parent directory", env!("CARGO_MANIFEST_DIR")))
}

/// `tests/java/curator/CuratorPeer.java`.
pub fn peer_source() -> PathBuf {
    workspace_root().join("tests/java/curator/CuratorPeer.java")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Panics unless `program -version` runs.
fn check_tool(program: &str) {
    let status = Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): the Curator tests need a JDK; {INSTRUCTION}"));
    assert!(
        status.success(),
        "`{program} -version` failed ({status}): the Curator tests need a JDK; {INSTRUCTION}"
    );
}

/// Compiles the peer into `dir` unless its class there is newer than the source.
fn compile(dir: &Path) {
    let source = peer_source();
    let Some(source_time) = modified(&source) else {
        panic!("the Java peer's source {} is missing", source.display())
    };
    let class = dir.join(format!("{MAIN_CLASS}.class"));
    if modified(&class).is_some_and(|class_time| class_time > source_time) {
        return;
    }
    // Into a directory of our own, then renamed into place: another test
    // process compiling at the same time never sees half-written classes.
    let parent = dir
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", dir.display()));
    let scratch = parent.join(format!("curator-peer.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("cannot create {}: {e}", scratch.display()));
    let output = Command::new("javac")
        .args(["-Xlint:all,-path", "-d"])
        .arg(&scratch)
        .args(["-cp", &JARS.join(":")])
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run javac: {e}; {INSTRUCTION}"));
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        panic!(
            "javac {} failed ({}):\n{}{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::rename(&scratch, dir) {
        let _ = std::fs::remove_dir_all(&scratch);
        // Lost a race with another process that just put its build there.
        assert!(
            modified(&class).is_some_and(|class_time| class_time > source_time),
            "cannot move the compiled peer to {}: {e}",
            dir.display()
        );
    }
}

/// The directory holding the compiled peer, `<workspace>/target/curator-peer/`;
/// the first call in a test process checks `java`, `javac` and the jars of
/// [`JARS`], and compiles the peer when the class is older than its source.
///
/// # Panics
/// When Java, `javac` or Curator are missing (with the command that installs
/// them), or the source does not compile (with javac's messages).
pub fn peer_classes() -> PathBuf {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES
        .get_or_init(|| {
            check_tool("java");
            check_tool("javac");
            for jar in JARS {
                assert!(
                    Path::new(jar).exists(),
                    "{jar} is missing: the Curator tests need Apache Curator 5.4 and its dependencies; {INSTRUCTION}"
                );
            }
            let dir = workspace_root().join("target").join("curator-peer");
            compile(&dir);
            dir
        })
        .clone()
}

/// The class path that runs the peer: its classes, then [`JARS`].
pub fn classpath() -> String {
    let classes = peer_classes();
    std::iter::once(classes.display().to_string())
        .chain(JARS.iter().map(|jar| (*jar).to_string()))
        .collect::<Vec<_>>()
        .join(":")
}

/// How a [`Peer`] ended.
#[derive(Debug)]
pub struct PeerOutput {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// All of stderr.
    pub stderr: String,
}

/// A peer running as a child process (a Java [`CuratorPeer`](Peer::curator)
/// or a Rust [example](Peer::example)), its stdout lines arriving as they are
/// printed and its stderr collected. Killed on drop.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    /// The command line, for messages.
    command: String,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    /// Lines of `seen` before this one were returned or passed over by
    /// [`wait_for_line`](Self::wait_for_line).
    cursor: usize,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Peer {
    /// Starts the Java peer with `args` (`lock ...` or `latch ...`), compiling
    /// it first when needed (see [`peer_classes`]).
    pub fn curator(args: &[&str]) -> Peer {
        let mut command = Command::new("java");
        command
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp"])
            .arg(classpath())
            .arg(MAIN_CLASS)
            .args(args);
        Peer::spawn(command, &format!("java {MAIN_CLASS} {}", args.join(" ")))
    }

    /// Starts the example program `name` (see [`example_binary`](crate::example_binary))
    /// with `args`, logging at `warn`.
    pub fn example(name: &str, args: &[&str]) -> Peer {
        let binary = crate::example_binary(name);
        let mut command = Command::new(&binary);
        command.args(args).env("RUST_LOG", "warn");
        Peer::spawn(command, &format!("{name} {}", args.join(" ")))
    }

    /// Starts `command` with stdout and stderr piped; `what` names it in messages.
    pub fn spawn(mut command: Command, what: &str) -> Peer {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout from {what}"));
        let stderr_pipe = child.stderr.take().unwrap_or_else(|| panic!("no stderr from {what}"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
        Peer {
            child,
            command: what.to_string(),
            lines,
            seen: Vec::new(),
            cursor: 0,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until a line starts with `prefix` and returns the rest of
    /// that line. Lines returned or passed over by earlier calls are not
    /// looked at again, so successive calls return successive matches.
    ///
    /// # Panics
    /// After `timeout`, or when the process closes its stdout (exits) first,
    /// with everything it printed.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.seen.len() {
                let line = &self.seen[self.cursor];
                self.cursor += 1;
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_string();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out after {timeout:?} waiting for a line starting with `{prefix}`{}",
                        self.report()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Let the exit status and the last of stderr arrive.
                    if self.wait_exit(Duration::from_secs(2)).is_some()
                        && let Some(reader) = self.stderr_reader.take()
                    {
                        let _ = reader.join();
                    }
                    panic!("no line starting with `{prefix}` before stdout closed{}", self.report())
                }
            }
        }
    }

    /// Every stdout line printed so far (reading what has arrived).
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Sends `signal` to the process.
    ///
    /// # Panics
    /// When the signal cannot be sent (the process was reaped).
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).unwrap_or_else(|e| panic!("cannot send {signal} to {} ({pid}): {e}", self.command));
    }

    /// Whether the process has exited (without reaping its output).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (up to `timeout`) for the process to exit and collects its output.
    ///
    /// # Panics
    /// When it is still running after `timeout` (it is killed), with
    /// everything it printed.
    pub fn wait(mut self, timeout: Duration) -> PeerOutput {
        let Some(code) = self.wait_exit(timeout) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("did not exit within {timeout:?}{}", self.report());
        };
        // The reader threads end at EOF, after the last line.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        PeerOutput {
            code,
            stdout: std::mem::take(&mut self.seen),
            stderr: self.stderr_text(),
        }
    }

    /// SIGTERM, then [`wait`](Self::wait) up to `timeout`.
    pub fn terminate(self, timeout: Duration) -> PeerOutput {
        self.signal(Signal::SIGTERM);
        self.wait(timeout)
    }

    /// Polls for the exit until `timeout`: `Some(exit code)` once exited.
    fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => return None,
                Err(e) => panic!("cannot wait for {}: {e}", self.command),
            }
        }
    }

    /// Stderr collected so far.
    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The command, its status and its output so far, for failure messages.
    pub fn report(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_string(),
            Err(e) => format!("unknown: {e}"),
        };
        format!(
            "\ncommand: {} ({status})\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `name` is a lock node as Curator's `InterProcessMutex` names it:
/// `_c_<uuid>-lock-<10-digit sequence>` (a protected, ephemeral sequential node).
pub fn is_curator_lock_node(name: &str) -> bool {
    is_protected_node(name, "-lock-")
}

/// Whether `name` is a participant node as Curator's `LeaderLatch` names it:
/// `_c_<uuid>-latch-<10-digit sequence>`.
pub fn is_curator_latch_node(name: &str) -> bool {
    is_protected_node(name, "-latch-")
}

/// `_c_` + a 36-character lowercase UUID (8-4-4-4-12 hex digits) + `infix` + 10 digits.
fn is_protected_node(name: &str, infix: &str) -> bool {
    let Some(rest) = name.strip_prefix("_c_") else {
        return false;
    };
    let Some((uuid, sequence)) = rest.split_once(infix) else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    let uuid_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    uuid_ok && sequence.len() == 10 && sequence.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing JDK fails the test with the install command; it never skips.
    #[test]
    #[should_panic(expected = "apt-get install -y default-jdk-headless libcurator-recipes-java")]
    fn a_missing_tool_fails_with_the_install_command() {
        check_tool("javac-that-is-not-installed");
    }

    #[test]
    fn curator_node_names() {
        assert!(is_curator_lock_node(
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-lock-0000000042"
        ));
        assert!(is_curator_latch_node(
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-latch-0000000000"
        ));
        for bad in [
            "lock-0000000042",
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-lock-42",
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca42-lock-0000000042",
            "_c_1B4E28BA-2FA1-11D2-883F-0016D3CCA427-lock-0000000042",
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-latch-0000000042",
            "x_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-lock-0000000042",
            "_c_1b4e28ba-2fa1-11d2-883f-0016d3cca427-lock-000000004x",
        ] {
            assert!(!is_curator_lock_node(bad), "{bad}");
        }
    }
}
