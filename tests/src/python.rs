//! Real Python peers for interoperability tests: Apache Dubbo's Python
//! implementation (`apache-dubbo` 3.0.0b1, with kazoo for ZooKeeper) and
//! `grpcio`, running the scripts of `tests/python/`.
//!
//! * [`python`] finds the interpreter that has them: `$RPC_INTEROP_PYTHON`, or
//!   the virtualenv `target/interop-venv` that `./scripts/test.sh` creates;
//! * [`script`] is the path of a script in `tests/python/`;
//! * [`PythonProcess`] runs a script as a child process and reads its output
//!   as it is printed.
//!
//! A test that needs them and cannot find them panics with the command that
//! installs them: it never skips.
//!
//! The scripts (each documents itself):
//! * `dubbo_provider.py ZK_URL PORT TAG` serves `org.example.Greeter.sayHello`
//!   over Triple on 127.0.0.1:PORT, registered in ZooKeeper, and prints
//!   `listening`;
//! * `dubbo_consumer.py ZK_URL NAME [COUNT]` calls it through ZooKeeper and
//!   prints `reply: <text>` per call, or `error: <type>: <message>` (exit 1);
//! * `grpc_client.py HOST:PORT PATH JSON_BODY [TIMEOUT_SECS]` makes one grpcio
//!   call and prints `reply: <raw JSON>`, or `status: <code> <details>` (exit 1);
//! * `zk_rules.py HOSTS set|delete|child|churn ...` writes governance rules into
//!   ZooKeeper with kazoo, as an operator would, and prints `done`.
//!
//! A killed `dubbo_provider.py` does not unregister: its ZooKeeper node stays
//! until its session expires (kazoo's default timeout: 10 s), and a Python
//! consumer created meanwhile fails with `RemotingError` (after 3 s).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to get the Python peers, for panic messages.
const INSTRUCTION: &str = "run ./scripts/test.sh, which creates target/interop-venv with apache-dubbo and grpcio; \
                           or set RPC_INTEROP_PYTHON";

/// The modules the scripts need.
const IMPORT_CHECK: &str = "import dubbo, grpc, kazoo";

/// The workspace's root directory (the parent of this crate's).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("the tests crate {} has no parent directory", env!("CARGO_MANIFEST_DIR")))
}

/// `$RPC_INTEROP_PYTHON`, else the venv's interpreter when it exists.
fn locate_python() -> PathBuf {
    if let Some(path) = std::env::var_os("RPC_INTEROP_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join("target/interop-venv/bin/python");
    assert!(
        venv.exists(),
        "the Python interop peers are not installed (RPC_INTEROP_PYTHON is not set and {} is missing): {INSTRUCTION}",
        venv.display()
    );
    venv
}

/// Panics unless `python` can import the modules the scripts need.
fn check_imports(python: &Path) {
    let output = Command::new(python)
        .args(["-c", IMPORT_CHECK])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the Python interpreter {}: {e}; {INSTRUCTION}",
                python.display()
            )
        });
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let error = stderr.trim().lines().last().unwrap_or("(no error message)");
        panic!(
            "`{} -c \"{IMPORT_CHECK}\"` failed ({}): {error}; {INSTRUCTION}",
            python.display(),
            output.status
        );
    }
}

/// The Python interpreter that has `apache-dubbo`, `kazoo` and `grpcio`:
/// `$RPC_INTEROP_PYTHON` when set, else `<workspace>/target/interop-venv/bin/python`.
/// The first call checks that it imports them.
///
/// # Panics
/// When there is no such interpreter, or it cannot import them, with the
/// command that installs them.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python = locate_python();
            check_imports(&python);
            python
        })
        .clone()
}

/// The path of the script `name` in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    workspace_root().join("tests").join("python").join(name)
}

/// A script of `tests/python/` running as a child process under [`python`],
/// its stdout lines arriving as they are printed and its stderr collected.
/// Killed on drop.
#[derive(Debug)]
pub struct PythonProcess {
    child: Child,
    /// `script args...`, for messages.
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

impl PythonProcess {
    /// Starts the script `script` (a name in `tests/python/`) with `args`.
    ///
    /// # Panics
    /// When the Python peers are missing (see [`python`]), the script does not
    /// exist, or the process cannot start.
    pub fn spawn(script: &str, args: &[&str]) -> PythonProcess {
        let python = python();
        let path = self::script(script);
        assert!(path.exists(), "no Python script {}", path.display());
        let mut child = Command::new(&python)
            .arg(&path)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), path.display()));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout from {script}"));
        let stderr_pipe = child.stderr.take().unwrap_or_else(|| panic!("no stderr from {script}"));
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
        PythonProcess {
            child,
            command: std::iter::once(script)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
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

    /// Waits (up to `timeout`) for the process to exit and returns its exit
    /// code (None when killed by a signal), every stdout line and all of stderr.
    ///
    /// # Panics
    /// When it is still running after `timeout` (it is killed), with
    /// everything it printed.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
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
        (code, std::mem::take(&mut self.seen), self.stderr_text())
    }

    /// SIGKILL, and reap it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    /// The command, its status and its output so far, for panic messages.
    fn report(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_string(),
            Err(e) => format!("unknown: {e}"),
        };
        format!(
            "\ncommand: python {} ({status})\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::free_port;
    use crate::zk::ZooKeeper;

    /// The helpers and scripts themselves: Python provider and consumer
    /// through a real ZooKeeper, and grpcio straight to the provider.
    #[test]
    fn python_peers_talk_to_each_other() {
        let zk = ZooKeeper::start();
        let port = free_port().to_string();
        let mut provider = PythonProcess::spawn("dubbo_provider.py", &[&zk.url(), &port, "py"]);
        assert_eq!(provider.wait_for_line("listening", Duration::from_secs(30)), "");

        let consumer = PythonProcess::spawn("dubbo_consumer.py", &[&zk.url(), "world", "2"]);
        let (code, stdout, stderr) = consumer.wait(Duration::from_secs(30));
        assert_eq!(code, Some(0), "stdout: {stdout:?}\nstderr: {stderr}");
        assert_eq!(stdout, ["reply: Hello, world from py", "reply: Hello, world from py"]);

        let address = format!("127.0.0.1:{port}");
        let mut grpc = PythonProcess::spawn(
            "grpc_client.py",
            &[&address, "/org.example.Greeter/sayHello", "\"world\""],
        );
        assert_eq!(
            grpc.wait_for_line("reply: ", Duration::from_secs(30)),
            "\"Hello, world from py\""
        );
        let (code, _, _) = grpc.wait(Duration::from_secs(10));
        assert_eq!(code, Some(0));

        let grpc = PythonProcess::spawn("grpc_client.py", &[&address, "/org.example.Greeter/nope", "\"world\""]);
        let (code, stdout, _) = grpc.wait(Duration::from_secs(30));
        assert_eq!(code, Some(1));
        assert!(stdout[0].starts_with("status: UNIMPLEMENTED"), "{stdout:?}");
    }

    /// A script that exits without the line: the panic tells what it printed.
    #[test]
    #[should_panic(expected = "Usage::")]
    fn wait_for_line_reports_an_early_exit() {
        let mut usage = PythonProcess::spawn("grpc_client.py", &[]);
        usage.wait_for_line("reply: ", Duration::from_secs(30));
    }
}
