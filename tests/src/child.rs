//! A peer running as a child process, as the interop and process tests use
//! them (Python and Java peers, the Curator peer, example programs): its
//! stdout lines arrive as they are printed and can be waited for, its stderr
//! is collected (bounded) for failure messages. Killed on drop.
//!
//! Every wait is bounded, and every failure panics with the command, its
//! status and everything it printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The most of a process's stderr kept for messages (Java's stack traces are long).
const STDERR_KEPT: usize = 256 * 1024;

/// How a [`Process`] ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// Stderr (its first 256 KiB).
    pub stderr: String,
}

/// A child process with its output followed (see the module docs).
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// The command line, for messages.
    command: String,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    /// Lines of `seen` before this one were returned or passed over by
    /// [`wait_for_line`](Self::wait_for_line).
    cursor: usize,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Process {
    /// Starts `command` with stdout and stderr piped and no stdin; `what`
    /// names it in messages.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn spawn(command: Command, what: &str) -> Process {
        Self::start(command, what, false)
    }

    /// As [`spawn`](Self::spawn), with stdin a pipe ([`stdin`](Self::stdin)).
    pub fn spawn_with_stdin(command: Command, what: &str) -> Process {
        Self::start(command, what, true)
    }

    /// Starts the example program `name` (see [`example_binary`](crate::example_binary))
    /// with `args`, logging at `warn`.
    pub fn example(name: &str, args: &[&str]) -> Process {
        let binary = crate::example_binary(name);
        let mut command = Command::new(&binary);
        command.args(args).env("RUST_LOG", "warn");
        Process::spawn(command, &format!("{name} {}", args.join(" ")))
    }

    fn start(mut command: Command, what: &str, stdin: bool) -> Process {
        let mut child = command
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
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
                if text.len() < STDERR_KEPT {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Process {
            stdin: child.stdin.take(),
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

    /// Its stdin, when started with [`spawn_with_stdin`](Self::spawn_with_stdin).
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Closes its stdin (the process reads end of file).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until a line starts with `prefix` and returns the rest of
    /// that line. Lines returned or passed over by earlier calls are not
    /// looked at again, so successive calls return successive matches.
    ///
    /// # Panics
    /// After `timeout`, or when the process closes its stdout (exits) first,
    /// with everything it printed.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let line = self.next_line_matching(
            &format!("a line starting with `{prefix}`"),
            |l| l.starts_with(prefix),
            timeout,
        );
        line[prefix.len()..].to_string()
    }

    /// Reads stdout until a line `matches` and returns it (see
    /// [`wait_for_line`](Self::wait_for_line)); `what` describes the line in messages.
    ///
    /// # Panics
    /// As [`wait_for_line`](Self::wait_for_line).
    pub fn next_line_matching(&mut self, what: &str, matches: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.seen.len() {
                let line = &self.seen[self.cursor];
                self.cursor += 1;
                if matches(line) {
                    return line.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("timed out after {timeout:?} waiting for {what}{}", self.report())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Let the exit status and the last of stderr arrive.
                    if self.wait_exit(Duration::from_secs(2)).is_some()
                        && let Some(reader) = self.stderr_reader.take()
                    {
                        let _ = reader.join();
                    }
                    panic!("no {what} before stdout closed{}", self.report())
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
    pub fn wait(mut self, timeout: Duration) -> Output {
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
        Output {
            code,
            stdout: std::mem::take(&mut self.seen),
            stderr: self.stderr_text(),
        }
    }

    /// SIGTERM, then [`wait`](Self::wait) up to `timeout`.
    pub fn terminate(self, timeout: Duration) -> Output {
        self.signal(Signal::SIGTERM);
        self.wait(timeout)
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that exits before printing the awaited line fails the wait
    /// at once, with its exit status and output, not after the timeout.
    #[test]
    fn wait_for_line_reports_an_early_exit() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; echo oops >&2; exit 3"]);
        let mut process = Process::spawn(command, "sh -c ...");
        assert_eq!(process.wait_for_line("start", Duration::from_secs(10)), "ed");
        let started = Instant::now();
        let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process.wait_for_line("never", Duration::from_secs(30));
        }))
        .expect_err("the wait must fail");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failed only after {:?}",
            started.elapsed()
        );
        let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("before stdout closed"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("oops"), "{message}");
    }

    /// `wait` returns the exit code and all of both streams.
    #[test]
    fn wait_collects_the_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo a; echo b; echo e >&2; exit 0"]);
        let output = Process::spawn(command, "sh").wait(Duration::from_secs(10));
        assert_eq!(output.code, Some(0));
        assert_eq!(output.stdout, ["a", "b"]);
        assert_eq!(output.stderr, "e\n");
    }
}
