//! Network namespaces for tests that must not touch this machine's network.
//!
//! The project's rule: network tests use loopback only (`127.0.0.0/8`), or a
//! network namespace the test creates itself. Some peers make loopback
//! impossible: Java Dubbo will not register a loopback address and its client
//! rewrites `127.x` to the machine's first non-loopback address. A test with
//! such peers runs in a namespace of its own, where the only link is `lo`
//! carrying `127.0.0.1` plus private addresses (by default [`ADDRESS`],
//! `10.77.0.1`) that peers take for non-loopback ones. Nothing in the
//! namespace can reach, or be reached from, the machine's real network.
//!
//! # How
//! [`isolate`] (or [`isolate_with`] for more addresses) is the first
//! statement of the test. Outside a namespace it re-executes the current test
//! binary for that one test (`unshare --net -- <test binary> --exact <test>`),
//! with [`MARKER`] naming the test in the environment, relays the inner run's
//! output, asserts that the test ran there and passed, and returns `None`: the
//! outer test then returns at once. Inside (the marker names this test) it
//! brings `lo` up, adds the addresses to it, and returns the [`Netns`]: the
//! test body runs there, with everything it starts (ZooKeeper, Java, Rust
//! processes) inheriting the namespace.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn a_java_consumer_calls_a_rust_provider() {
//!     let Some(net) = rpc_tests::netns::isolate() else { return };
//!     let host = net.address().to_string();     // 10.77.0.1: Java keeps it
//!     // ... ZooKeeper on 127.0.0.1, providers on `host`, Java peers ...
//! }
//! ```
//!
//! The test's name is the name libtest gives the thread running it (the
//! test's path within its binary), so `isolate` must be called on that
//! thread (the body of a `#[test]`, or of a `#[tokio::test]`, which runs it
//! on the same thread), not from a spawned task.
//!
//! # Requirements
//! Creating a namespace needs root (or `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`),
//! util-linux's `unshare` and iproute2's `ip`. Without them the test FAILS
//! with [`REQUIREMENTS`]: it never skips.
//!
//! [`current`] tells code running in a test's process (harness helpers such
//! as `rpc_tests::java`) whether it is inside such a namespace, and its
//! addresses: the Java peers are started with `DUBBO_IP_TO_REGISTRY` set to
//! [`Netns::address`], and refuse to start outside a namespace.

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace's first extra address on `lo`: private, not loopback, so
/// peers that refuse loopback (Java Dubbo) use it.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// The environment variable naming the test that runs inside a namespace.
pub const MARKER: &str = "RPC_TESTS_NETNS";

/// The environment variable listing the namespace's extra addresses
/// (comma-separated), for [`current`].
pub const ADDRESSES: &str = "RPC_TESTS_NETNS_ADDRESSES";

/// What the machine needs, for failure messages.
pub const REQUIREMENTS: &str = "this test runs in a network namespace it creates (`unshare --net`, then `ip` \
                                sets up `lo`): run it as root (or with CAP_SYS_ADMIN and CAP_NET_ADMIN), with \
                                util-linux `unshare` and iproute2 `ip` installed (Debian: apt-get install \
                                util-linux iproute2)";

/// How long the inner run of one test may take.
pub const INNER_TIMEOUT: Duration = Duration::from_secs(600);

/// The namespace a test runs in: `lo` up with `127.0.0.1` and [`addresses`](Self::addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    addresses: Vec<Ipv4Addr>,
}

impl Netns {
    /// The first extra address ([`ADDRESS`] for [`isolate`]).
    pub fn address(&self) -> Ipv4Addr {
        self.addresses[0]
    }

    /// Every extra address on `lo`, in the order given to [`isolate_with`].
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }
}

/// The address of this namespace's end of a [`Neighbour`]'s link.
pub const LINK_OURS: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// The address of the [`Neighbour`]'s end of the link.
pub const LINK_THEIRS: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);

impl Netns {
    /// A second namespace beside this one, joined to it by a veth pair
    /// ([`LINK_OURS`] here, [`LINK_THEIRS`] there, a /24): a host that is
    /// not this one, as a foreign caller is. Programs run there through
    /// [`Neighbour::command`]. Gone (with its link) when dropped.
    ///
    /// # Panics
    /// When the namespace or the link cannot be made, with what failed.
    pub fn neighbour(&self) -> Neighbour {
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the neighbour namespace (unshare): {e}; {REQUIREMENTS}"));
        let neighbour = Neighbour { holder };
        let pid = neighbour.holder.id().to_string();
        // `unshare` has made the namespace once `sleep` runs in it: until then
        // the holder's namespace is still ours.
        let ours = std::fs::read_link("/proc/self/ns/net").ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == ours
            || std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() != "sleep")
        {
            assert!(
                Instant::now() < deadline,
                "the neighbour namespace did not appear within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let ours = format!("{LINK_OURS}/24");
        let theirs = format!("{LINK_THEIRS}/24");
        run(
            "ip",
            &[
                "link", "add", "rpcv0", "type", "veth", "peer", "name", "rpcv1", "netns", &pid,
            ],
        );
        run("ip", &["addr", "add", &ours, "dev", "rpcv0"]);
        run("ip", &["link", "set", "rpcv0", "up"]);
        for args in [
            &["ip", "addr", "add", theirs.as_str(), "dev", "rpcv1"][..],
            &["ip", "link", "set", "rpcv1", "up"],
            &["ip", "link", "set", "lo", "up"],
        ] {
            let mut all = vec!["-t", pid.as_str(), "-n", "--"];
            all.extend_from_slice(args);
            run("nsenter", &all);
        }
        neighbour
    }
}

/// A second namespace joined to the test's by a veth pair (see [`Netns::neighbour`]).
#[derive(Debug)]
pub struct Neighbour {
    /// `sleep` holding the namespace open.
    holder: std::process::Child,
}

impl Neighbour {
    /// `program` to run in the neighbour namespace (`nsenter`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.holder.id().to_string(), "-n", "--"])
            .arg(program);
        command
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs `program args` to completion.
///
/// # Panics
/// When it cannot run or fails, with its stderr and [`REQUIREMENTS`].
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program} {}`: {e}; {REQUIREMENTS}", args.join(" ")));
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}): {}; {REQUIREMENTS}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// [`isolate_with`] with the one address [`ADDRESS`].
///
/// # Panics
/// See [`isolate_with`].
pub fn isolate() -> Option<Netns> {
    isolate_with(&[ADDRESS])
}

/// Runs the calling test in a new network namespace whose `lo` carries
/// `addresses` (at least one; `/32` each) besides `127.0.0.1`: `None` in the
/// outer process, after the inner run passed (the caller returns), `Some`
/// inside (the caller goes on with the test).
///
/// # Panics
/// Outside: when the namespace cannot be made (with [`REQUIREMENTS`]), or the
/// inner run fails, does not run the test, or outlasts [`INNER_TIMEOUT`] (it is
/// killed), with its output. Inside: when `lo` cannot be set up. Either way,
/// when `addresses` is empty or the thread has no test name.
pub fn isolate_with(addresses: &[Ipv4Addr]) -> Option<Netns> {
    assert!(!addresses.is_empty(), "a test namespace needs at least one address");
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => panic!("rpc_tests::netns::isolate must run on the test's own thread (libtest names it after the test)"),
    };
    match std::env::var(MARKER) {
        Ok(inside) if inside == test => {
            set_up(addresses);
            Some(Netns {
                addresses: addresses.to_vec(),
            })
        }
        Ok(other) => panic!("{MARKER}={other} but this is test `{test}`: namespaces do not nest"),
        Err(_) => {
            run_inside(&test, addresses);
            None
        }
    }
}

/// The namespace this process runs in, when a test made it (from [`MARKER`]
/// and [`ADDRESSES`], which children inherit).
pub fn current() -> Option<Netns> {
    std::env::var(MARKER).ok()?;
    let addresses: Vec<Ipv4Addr> = std::env::var(ADDRESSES)
        .ok()?
        .split(',')
        .filter_map(|a| a.parse().ok())
        .collect();
    (!addresses.is_empty()).then_some(Netns { addresses })
}

/// Inside: `ip link set lo up`, then `ip addr add A/32 dev lo` for each address.
fn set_up(addresses: &[Ipv4Addr]) {
    let mut commands = vec![vec!["link".to_string(), "set".into(), "lo".into(), "up".into()]];
    for address in addresses {
        commands.push(vec![
            "addr".into(),
            "add".into(),
            format!("{address}/32"),
            "dev".into(),
            "lo".into(),
        ]);
    }
    for args in commands {
        let output = Command::new("ip").args(&args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run `ip {}` in the test's namespace: {e}; {REQUIREMENTS}",
                args.join(" ")
            )
        });
        assert!(
            output.status.success(),
            "`ip {}` failed in the test's namespace ({}): {}; {REQUIREMENTS}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
}

/// Outside: runs `test` of the current binary under `unshare --net`, relays
/// its output and checks that it ran and passed.
fn run_inside(test: &str, addresses: &[Ipv4Addr]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the current test binary: {e}"));
    let listed: Vec<String> = addresses.iter().map(Ipv4Addr::to_string).collect();
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1", "--color=never"])
        .env(MARKER, test)
        .env(ADDRESSES, listed.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `unshare`: {e}; {REQUIREMENTS}"));
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + INNER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("cannot wait for the namespaced run of `{test}`: {e}"),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    // Relayed through the harness's capture: shown on failure or with --nocapture.
    print!("{stdout}");
    eprint!("{stderr}");
    let Some(status) = status else {
        panic!("`{test}` in its network namespace did not finish within {INNER_TIMEOUT:?} (killed)");
    };
    let ran = stdout.contains(&format!("test {test} ... ")) || stderr.contains(&format!("test {test} ... "));
    assert!(
        ran || !stderr.contains("unshare"),
        "cannot create the network namespace for `{test}` ({status}): {}; {REQUIREMENTS}",
        stderr.trim()
    );
    assert!(
        ran,
        "`{test}` did not run in its network namespace ({status}): no such test in {}",
        exe.display()
    );
    assert!(
        status.success() && stdout.contains("test result: ok. 1 passed"),
        "`{test}` failed in its network namespace ({status}); its output is above"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    /// Inside: `lo` carries both addresses (a listener on each is reached),
    /// [`current`] reports them, and nothing routes beyond the namespace.
    #[test]
    fn a_test_runs_in_its_namespace_with_its_addresses() {
        let second = Ipv4Addr::new(10, 77, 0, 2);
        let Some(net) = isolate_with(&[ADDRESS, second]) else {
            return;
        };
        assert_eq!(net.addresses(), [ADDRESS, second]);
        assert_eq!(current(), Some(net.clone()));
        for address in net.addresses() {
            let listener = TcpListener::bind((*address, 0)).unwrap_or_else(|e| panic!("bind {address}: {e}"));
            let to = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
            TcpStream::connect(to).unwrap_or_else(|e| panic!("connect {to}: {e}"));
        }
        // No route to anything else (TEST-NET-1 stands for the outside world).
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        let error = socket.connect("192.0.2.1:9").err();
        assert!(error.is_some(), "a route leaves the namespace");
    }

    /// A test name the binary lacks is a failure that says so, never a pass
    /// (libtest would run 0 tests and exit 0).
    #[test]
    #[should_panic(expected = "did not run in its network namespace")]
    fn an_inner_run_that_runs_nothing_fails() {
        run_inside("netns::tests::no_such_test", &[ADDRESS]);
    }
}
