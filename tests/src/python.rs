//! Real Python peers for interoperability tests: Apache Dubbo's Python
//! implementation (`apache-dubbo` 3.0.0b1, with kazoo for ZooKeeper) and
//! `grpcio`, running the scripts of `tests/python/`.
//!
//! * [`python`] finds the interpreter that has them: `$RPC_INTEROP_PYTHON`, or
//!   the virtualenv `target/interop-venv` that `./scripts/test.sh` creates;
//! * [`script`] is the path of a script in `tests/python/`;
//! * [`spawn`] runs a script as a child process ([`Process`]) whose output
//!   is read as it is printed.
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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub use crate::child::Process;

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

/// A script of `tests/python/` running as a child process (see [`spawn`]).
pub type PythonProcess = Process;

/// Starts the script `script` (a name in `tests/python/`) with `args` under
/// [`python`], unbuffered: its stdout lines arrive as they are printed.
///
/// # Panics
/// When the Python peers are missing (see [`python`]), the script does not
/// exist, or the process cannot start.
pub fn spawn(script: &str, args: &[&str]) -> PythonProcess {
    let python = python();
    let path = self::script(script);
    assert!(path.exists(), "no Python script {}", path.display());
    let mut command = Command::new(&python);
    command.arg(&path).args(args).env("PYTHONUNBUFFERED", "1");
    Process::spawn(command, &format!("python {script} {}", args.join(" ")))
}

/// Runs `zk_rules.py` (kazoo) against the ZooKeeper at `hosts`
/// (`host:port`) with `args`, as an operator would; returns the instant it
/// printed `done` (ZooKeeper has the write). Blocking.
///
/// # Panics
/// When the script fails or takes over two minutes, with what it printed.
pub fn write_rules(hosts: &str, args: &[&str]) -> std::time::Instant {
    let all: Vec<&str> = std::iter::once(hosts).chain(args.iter().copied()).collect();
    let mut writer = spawn("zk_rules.py", &all);
    writer.wait_for_line("done", Duration::from_secs(120));
    let at = std::time::Instant::now();
    let out = writer.wait(Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "zk_rules.py {all:?} failed: {}", out.stderr);
    at
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
        let mut provider = spawn("dubbo_provider.py", &[&zk.url(), &port, "py"]);
        assert_eq!(provider.wait_for_line("listening", Duration::from_secs(30)), "");

        let consumer = spawn("dubbo_consumer.py", &[&zk.url(), "world", "2"]);
        let out = consumer.wait(Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "stdout: {:?}\nstderr: {}", out.stdout, out.stderr);
        assert_eq!(
            out.stdout,
            ["reply: Hello, world from py", "reply: Hello, world from py"]
        );

        let address = format!("127.0.0.1:{port}");
        let mut grpc = spawn(
            "grpc_client.py",
            &[&address, "/org.example.Greeter/sayHello", "\"world\""],
        );
        assert_eq!(
            grpc.wait_for_line("reply: ", Duration::from_secs(30)),
            "\"Hello, world from py\""
        );
        assert_eq!(grpc.wait(Duration::from_secs(10)).code, Some(0));

        let grpc = spawn("grpc_client.py", &[&address, "/org.example.Greeter/nope", "\"world\""]);
        let out = grpc.wait(Duration::from_secs(30));
        assert_eq!(out.code, Some(1));
        assert!(out.stdout[0].starts_with("status: UNIMPLEMENTED"), "{:?}", out.stdout);
    }

    /// A script that exits without the line: the panic tells what it printed.
    #[test]
    #[should_panic(expected = "Usage::")]
    fn wait_for_line_reports_an_early_exit() {
        let mut usage = spawn("grpc_client.py", &[]);
        usage.wait_for_line("reply: ", Duration::from_secs(30));
    }
}
