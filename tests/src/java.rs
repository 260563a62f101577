//! Real Java Apache Dubbo peers for interoperability tests: the provider and
//! consumer of `tests/java/dubbo-greeter` (Dubbo 3.3.6 from Maven Central),
//! built by `tests/java/build.sh` into `target/java-peers/`.
//!
//! * [`classpath`] is the built jar and its dependencies, checked to exist and
//!   to be newer than the Java sources;
//! * [`JavaPeer::provider`] runs `org.example.GreeterProvider`, which exports
//!   `org.example.Greeter` (version `1.0.0`) over `dubbo` (Hessian2) and `tri`,
//!   registered in ZooKeeper at interface level, and waits for it to be ready;
//! * [`JavaPeer::consumer`] runs `org.example.GreeterConsumer`, which calls it
//!   through ZooKeeper (or at a direct URL) and answers one line per call
//!   written to [`JavaPeer::call`]: `ok <value>` or `err <class>: <message>`;
//! * [`JavaPeer::run_consumer`] runs a consumer over a fixed list of calls.
//!
//! Calls, and what the Java provider answers (see `GreeterConsumer.java`):
//! `hello NAME` (`ok Hello, NAME from java`), `order ITEM QTY [TAG,TAG]`
//! (`ok OrderId{id=QTY*1000+TAGS}`, or `err org.example.OrderRejected: ...`
//! when QTY <= 0), `sleep MS` (`ok void`), `list a,b` (`ok [a, b]`),
//! `map k=1,j=2` (`ok {j=2, k=1}`, sorted), `nullable -` (`ok null`).
//!
//! Java Dubbo refuses to register a loopback address and its client replaces
//! a loopback provider address with the machine's first non-loopback one, so
//! the peers run only inside a test's network namespace
//! ([`crate::netns::isolate`]): there, they register (`DUBBO_IP_TO_REGISTRY`)
//! and are reached on the namespace's [`Netns::address`](crate::netns::Netns::address)
//! (`10.77.0.1`), and never touch this machine's network. Read a provider's
//! URLs from [`JavaPeer::exported_url`]. A test that needs the peers and
//! cannot find them panics with the command that builds them: it never skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

pub use crate::child::{Output, Process};

/// How to build the peers, for panic messages.
pub const BUILD_INSTRUCTION: &str = "run tests/java/build.sh (it needs a JDK 17 and Maven; ./scripts/test.sh \
                                     installs them and runs it)";

/// How long a Java peer may take to print `ready` (a JVM with Dubbo starts in
/// about 3 s on an idle machine; the test machines are shared).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// JVM options: quick start, small heap, IPv4 addresses in the URLs.
const JVM_OPTIONS: &[&str] = &[
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xmx256m",
    "-Djava.net.preferIPv4Stack=true",
];

/// The workspace's root directory (the parent of this crate's).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("the tests crate {} has no parent directory", env!("CARGO_MANIFEST_DIR")))
}

/// `<workspace>/target/java-peers`, where `tests/java/build.sh` builds the peers.
pub fn peers_dir() -> PathBuf {
    workspace_root().join("target").join("java-peers")
}

/// The newest modification time under `path` (a file or a directory tree).
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(time) = self::newest(&entry.path()) {
                newest = newest.max(time);
            }
        }
    }
    Some(newest)
}

/// The class path of the Java peers: the built jar, then its dependencies.
///
/// # Panics
/// When they are not built, or are older than their sources, with
/// [`BUILD_INSTRUCTION`].
pub fn classpath() -> String {
    classpath_in(&peers_dir())
}

/// [`classpath`] of peers built into `dir`.
fn classpath_in(dir: &Path) -> String {
    let jar = dir.join("build").join("dubbo-greeter.jar");
    let stamp = dir.join("stamp");
    let listing = dir.join("classpath.txt");
    for path in [&jar, &stamp, &listing] {
        assert!(
            path.exists(),
            "the Java Dubbo peers are not built ({} is missing): {BUILD_INSTRUCTION}",
            path.display()
        );
    }
    let sources = workspace_root().join("tests").join("java").join("dubbo-greeter");
    if let (Some(built), Some(changed)) = (newest(&stamp), newest(&sources)) {
        assert!(
            built >= changed,
            "the Java Dubbo peers in {} are older than their sources in {}: {BUILD_INSTRUCTION}",
            dir.display(),
            sources.display()
        );
    }
    let dependencies = std::fs::read_to_string(&listing)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {BUILD_INSTRUCTION}", listing.display()));
    format!("{}:{}", jar.display(), dependencies.trim())
}

/// One Java peer process (`org.example.GreeterProvider` or
/// `org.example.GreeterConsumer`): its stdout lines arrive as they are
/// printed, its stderr (Dubbo's warnings) is collected for panic messages.
/// Killed on drop.
#[derive(Debug)]
pub struct JavaPeer {
    process: Process,
    /// A provider's `exported <url>` lines, in order (`dubbo`, then `tri`).
    exported: Vec<String>,
}

impl JavaPeer {
    /// Starts `java -cp <peers> <main_class> <args>` (`main_class` in
    /// package `org.example`), without waiting for anything. Its stdin is a
    /// pipe: a consumer without calls in `args` reads them from it.
    ///
    /// # Panics
    /// When the peers are not built (see [`classpath`]), the process is not
    /// in a test's network namespace ([`crate::netns`]), or `java` cannot start.
    pub fn spawn(main_class: &str, args: &[&str]) -> JavaPeer {
        let classpath = classpath();
        let Some(net) = crate::netns::current() else {
            panic!(
                "the Java peers run only in a test's network namespace (they would use this machine's \
                 address): start the test with `rpc_tests::netns::isolate()`"
            )
        };
        let mut command = Command::new("java");
        command
            .env("DUBBO_IP_TO_REGISTRY", net.address().to_string())
            .args(JVM_OPTIONS)
            .arg("-cp")
            .arg(&classpath)
            .arg(format!("org.example.{main_class}"))
            .args(args);
        let what = format!("java org.example.{main_class} {} ({BUILD_INSTRUCTION})", args.join(" "));
        JavaPeer {
            process: Process::spawn_with_stdin(command, &what),
            exported: Vec::new(),
        }
    }

    /// Starts a Java provider registered in the ZooKeeper at `registry`
    /// (`zookeeper://host:port`), exporting over `dubbo` on `dubbo_port` and
    /// `tri` on `tri_port`, and waits (up to [`READY_TIMEOUT`]) for `ready`.
    /// `extra` goes to `GreeterProvider` as is: `--name N` (answers
    /// `Hello, X from N`), `--version V`, `--timeout MS` (published),
    /// `--application NAME`, `--session-timeout MS` (its ZooKeeper session;
    /// Dubbo's default of 60 s is how long a killed provider stays listed),
    /// `--stop-timeout MS` (see [`terminate`](Self::terminate)).
    ///
    /// # Panics
    /// When it does not get ready in time, with everything it printed.
    pub fn provider(registry: &str, dubbo_port: u16, tri_port: u16, extra: &[&str]) -> JavaPeer {
        let (dubbo_port, tri_port) = (dubbo_port.to_string(), tri_port.to_string());
        let mut args = vec![
            "--registry",
            registry,
            "--dubbo-port",
            &dubbo_port,
            "--tri-port",
            &tri_port,
        ];
        args.extend_from_slice(extra);
        let mut peer = JavaPeer::spawn("GreeterProvider", &args);
        peer.wait_for_line("ready", READY_TIMEOUT);
        peer.exported = peer
            .process
            .lines()
            .iter()
            .filter_map(|line| line.strip_prefix("exported "))
            .map(str::to_owned)
            .collect();
        peer
    }

    /// Starts an interactive Java consumer with `args` (`--registry URL` or
    /// `--url PROTOCOL://HOST:PORT/org.example.Greeter`, `--protocol dubbo|tri`,
    /// `--timeout MS`, `--retries N` (default 0), `--version V`, `--check false`
    /// to start without a provider, `--stop-timeout MS`) and waits (up to
    /// [`READY_TIMEOUT`]) for its reference to exist; then [`call`](Self::call)
    /// runs calls. It exits by itself when its stdin closes; drop kills it.
    ///
    /// # Panics
    /// When it does not get ready in time (for instance when it finds no
    /// provider: it prints `failed <exception>` and exits 1).
    pub fn consumer(args: &[&str]) -> JavaPeer {
        let mut peer = JavaPeer::spawn("GreeterConsumer", args);
        peer.wait_for_line("ready", READY_TIMEOUT);
        peer
    }

    /// Runs a Java consumer with `args` over `calls` (one JVM, one call
    /// each, in order) and returns its result lines, one per call.
    ///
    /// # Panics
    /// When it does not finish within [`READY_TIMEOUT`] plus `calls_timeout`,
    /// exits non-zero, or prints a different number of results.
    pub fn run_consumer(args: &[&str], calls: &[&str], calls_timeout: Duration) -> Vec<String> {
        let mut all = args.to_vec();
        all.extend_from_slice(calls);
        let mut peer = JavaPeer::spawn("GreeterConsumer", &all);
        // Closing stdin: a consumer given no calls reads none.
        peer.process.close_stdin();
        let Output { code, stdout, stderr } = peer.wait(READY_TIMEOUT + calls_timeout);
        let results: Vec<String> = stdout
            .iter()
            .filter(|l| l.starts_with("ok") || l.starts_with("err "))
            .cloned()
            .collect();
        assert!(
            code == Some(0) && results.len() == calls.len(),
            "the Java consumer {args:?} exited with {code:?} and {} results for {} calls\nstdout:\n{}\nstderr:\n{stderr}",
            results.len(),
            calls.len(),
            stdout.join("\n")
        );
        results
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// A provider's exported URLs (from its `exported <url>` lines): the
    /// `dubbo://` one, then the `tri://` one.
    pub fn exported(&self) -> &[String] {
        &self.exported
    }

    /// A provider's exported URL of `protocol` (`dubbo` or `tri`).
    ///
    /// # Panics
    /// When it exported none.
    pub fn exported_url(&self, protocol: &str) -> &str {
        let prefix = format!("{protocol}://");
        self.exported
            .iter()
            .find(|url| url.starts_with(&prefix))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the Java provider exported no {prefix} URL: {:?}", self.exported))
    }

    /// Sends one call line to an interactive consumer and returns its result
    /// line (`ok ...` or `err ...`).
    ///
    /// # Panics
    /// When no result arrives within `timeout`, or the consumer has exited.
    pub fn call(&mut self, call: &str, timeout: Duration) -> String {
        let sent = match self.process.stdin() {
            Some(stdin) => writeln!(stdin, "{call}").and_then(|()| stdin.flush()),
            None => panic!("the Java peer has no stdin for calls{}", self.process.report()),
        };
        if let Err(e) = sent {
            panic!(
                "cannot send `{call}` to the Java consumer: {e}{}",
                self.process.report()
            );
        }
        self.process.next_line_matching(
            &format!("the result of `{call}`"),
            |l| l.starts_with("ok") || l.starts_with("err "),
            timeout,
        )
    }

    /// Reads stdout until a line starts with `prefix` and returns the rest of
    /// it (see [`Process::wait_for_line`]).
    ///
    /// # Panics
    /// After `timeout`, or when the process closes its stdout (exits) first,
    /// with everything it printed.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        self.process.wait_for_line(prefix, timeout)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        self.process.signal(signal);
    }

    /// SIGTERM (a provider unregisters, prints `stopped` and exits 0; or,
    /// when ZooKeeper does not answer within its `--stop-timeout`, default
    /// 15 s, prints `stop timed out` and exits 1), then [`wait`](Self::wait).
    pub fn terminate(self, timeout: Duration) -> Output {
        self.process.terminate(timeout)
    }

    /// Waits (up to `timeout`) for the process to exit and collects its output.
    ///
    /// # Panics
    /// When it is still running after `timeout` (it is killed), with
    /// everything it printed.
    pub fn wait(self, timeout: Duration) -> Output {
        self.process.wait(timeout)
    }

    /// SIGKILL, and reap it (a provider's nodes stay until its ZooKeeper
    /// session expires: Dubbo's default session timeout is 60 s).
    pub fn kill(self) {
        self.process.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a build, the error says so and names the script that builds the peers.
    #[test]
    #[should_panic(expected = "is missing): run tests/java/build.sh")]
    fn missing_peers_fail_with_the_build_instruction() {
        let dir = std::env::temp_dir().join(format!("rpc-no-java-peers-{}", std::process::id()));
        classpath_in(&dir);
    }
}
