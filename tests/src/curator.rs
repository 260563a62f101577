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
//! * [`curator`] runs it (`lock ...` or `latch ...`, see the source's
//!   header for the contract), [`Process::example`] runs a Rust example
//!   program, and [`Process`] reads their lines, signals them and collects
//!   their exit.
//!
//! A test that needs Java, `javac` or Curator and cannot find them panics with
//! the command that installs them: it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

pub use crate::child::{Output, Process};

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
pub type PeerOutput = Output;

/// A peer running as a child process: a Java [`CuratorPeer`](curator) or a
/// Rust example program ([`Process::example`]).
pub type Peer = Process;

/// Starts the Java peer with `args` (`lock ...` or `latch ...`), compiling
/// it first when needed (see [`peer_classes`]).
pub fn curator(args: &[&str]) -> Peer {
    let mut command = Command::new("java");
    command
        .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(classpath())
        .arg(MAIN_CLASS)
        .args(args);
    Process::spawn(command, &format!("java {MAIN_CLASS} {}", args.join(" ")))
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
