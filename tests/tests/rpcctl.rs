//! `rpcctl` as an operator runs it: the built binary as a real process,
//! against a real ZooKeeper holding our providers (example processes), a
//! Python Dubbo provider and garbage nodes; calls to a provider whose Rust
//! trait `rpcctl` has never seen; a QoS port (a minimal HTTP server here:
//! the real one is another crate's).
//!
//! The binary is built by the test (`cargo build -p rpcctl`, a no-op when
//! fresh) into this target directory, so it is never stale.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use rpc_tests::ProviderProcess;
use rpc_tests::python;
use rpc_tests::zk::ZooKeeper;
use zookeeper_client as zkc;

/// `target/<profile>/rpcctl`, built once per test binary.
fn rpcctl() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>/rpcctl
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
            let target_dir = profile_dir.parent().unwrap();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "--quiet", "-p", "rpcctl", "--bin", "rpcctl", "--target-dir"]);
            build.arg(target_dir);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.current_dir(env!("CARGO_MANIFEST_DIR")).status().unwrap();
            assert!(status.success(), "`cargo build -p rpcctl` failed: {status}");
            let path = profile_dir.join("rpcctl");
            assert!(path.exists(), "no rpcctl at {}", path.display());
            path
        })
        .clone()
}

/// Runs `rpcctl args...` to completion (bounded by the commands' own
/// timeouts), off the async runtime.
async fn run(args: Vec<String>) -> Output {
    let binary = rpcctl();
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || Command::new(binary).args(&args).output().unwrap()),
    )
    .await
    .expect("rpcctl did not finish within 120 s")
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Creates `path` (and its parents) as persistent nodes.
async fn create(client: &zkc::Client, path: &str) {
    let mode = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
    client.mkdir(path, &mode).await.unwrap();
}

/// Waits (watching, up to 30 s) until `path` has `count` children.
async fn wait_for_children(client: &zkc::Client, path: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (children, watcher) = match client.list_and_watch_children(path).await {
            Ok((children, watcher)) => (children, Some(watcher)),
            // Not there yet: its parent's creation is the next event.
            Err(zkc::Error::NoNode) => (Vec::new(), None),
            Err(e) => panic!("cannot list {path}: {e}"),
        };
        if children.len() >= count {
            assert_eq!(children.len(), count, "{path}: {children:?}");
            return;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "{path} has {children:?}, not {count} children, after 30 s"
        );
        match watcher {
            Some(watcher) => {
                let _ = tokio::time::timeout(remaining, watcher.changed()).await;
            }
            None => {
                let (_, exists) = client.check_and_watch_stat(path).await.unwrap();
                let _ = tokio::time::timeout(remaining, exists.changed()).await;
            }
        }
    }
}

/// `rpcctl ls` lists every real provider (two Rust example processes, a
/// Python Dubbo one) and a Rust consumer, and warns about each garbage node
/// by name while still listing the rest; `--json` says the same for scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcctl_ls_lists_real_providers_and_warns_about_garbage() {
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let rpc = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "a"]);
    let weighted = ProviderProcess::spawn(&[
        "--registry",
        &registry,
        "--port",
        "0",
        "--tag",
        "b",
        "--version",
        "2.0.0",
        "--weight",
        "200",
    ]);
    let python_port = rpc_tests::free_port().to_string();
    let python_args = [registry.clone(), python_port.clone(), "py".to_string()];
    let python = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = python_args.iter().map(String::as_str).collect();
        let mut python = python::spawn("dubbo_provider.py", &args);
        python.wait_for_line("listening", Duration::from_secs(30));
        python
    })
    .await
    .unwrap();

    let client = zkc::Client::connect(&zk.connect_string()).await.unwrap();
    create(&client, "/dubbo/org.example.Greeter/providers/not-a-url").await;
    create(&client, "/dubbo/org.example.Broken/providers/rpc%3A%2F%2F%3Anope").await;
    // Not a service: no providers or consumers node (Dubbo's config center).
    create(&client, "/dubbo/config/dubbo").await;

    // A Rust consumer of the greeter registers itself.
    let consumer = rpc::Consumer::builder()
        .application("shop")
        .registry(&registry)
        .build()
        .await
        .unwrap();
    let _greeter = consumer
        .reference::<rpc_examples::GreeterClient>()
        .build()
        .await
        .unwrap();
    // The consumer's node, and the Python provider's (written after it listens).
    wait_for_children(&client, "/dubbo/org.example.Greeter/consumers", 1).await;
    wait_for_children(&client, "/dubbo/org.example.Greeter/providers", 4).await;

    let out = run(args(&["ls", &registry])).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("rpcctl ls:\n{stdout}{stderr}");
    for needle in [
        "org.example.Greeter",
        "providers (3):",
        rpc.address.as_str(),
        weighted.address.as_str(),
        &format!("127.0.0.1:{python_port}"),
        "2.0.0",
        "200",
        "greeter-provider",
        "consumers (1):",
        "shop",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
    assert!(!stdout.contains("config"), "{stdout}");
    assert!(
        stderr.contains("warning: skipped /dubbo/org.example.Greeter/providers/not-a-url: not a URL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/dubbo/org.example.Broken/providers/rpc%3A%2F%2F%3Anope"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "no colour off a terminal: {stderr:?}");

    let out = run(args(&["ls", &registry, "--json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let greeter = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["interface"] == "org.example.Greeter")
        .unwrap();
    let mut protocols: Vec<&str> = greeter["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["protocol"].as_str().unwrap())
        .collect();
    protocols.sort_unstable();
    assert_eq!(protocols, ["rpc", "rpc", "tri"], "{greeter}");
    let heavy = greeter["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == weighted.address.as_str())
        .unwrap();
    assert_eq!(
        (heavy["version"].as_str(), heavy["weight"].as_u64()),
        (Some("2.0.0"), Some(200))
    );
    assert_eq!(heavy["disabled"], false);
    assert_eq!(greeter["consumers"][0]["application"], "shop");
    assert_eq!(json["skipped"].as_array().unwrap().len(), 2, "{json}");

    drop(python);
    drop((rpc, weighted));
}

/// `rpcctl call` reaches the greeter example process (a provider whose
/// trait `rpcctl` has never seen) through ZooKeeper and directly; an unknown
/// method exits 1 with the error's kind; a dead registry says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcctl_call_through_zookeeper_and_direct() {
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let provider = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "zk"]);
    let direct = format!("rpc://{}", provider.address);
    let hello = |target: &str| {
        args(&[
            "call",
            target,
            "org.example.Greeter",
            "sayHello",
            r#"["world"]"#,
            "--version",
            "1.0.0",
            "--timeout",
            "5s",
        ])
    };
    for target in [registry.as_str(), direct.as_str()] {
        let out = run(hello(target)).await;
        assert!(out.status.success(), "{target}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "\"Hello, world from zk\"\n", "{target}");
    }
    // Directly to a provider of each other protocol (dubbo: Hessian2).
    for protocol in ["tri", "dubbo"] {
        let other = ProviderProcess::spawn(&[
            "--registry",
            "memory://",
            "--port",
            "0",
            "--protocol",
            protocol,
            "--tag",
            protocol,
        ]);
        let target = format!("{protocol}://{}", other.address);
        let out = run(hello(&target)).await;
        assert!(out.status.success(), "{target}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("\"Hello, world from {protocol}\"\n"),
            "{target}"
        );
    }
    // Any version by default; a struct argument; a `Result` answer.
    let order = args(&[
        "call",
        &registry,
        "org.example.Greeter",
        "placeOrder",
        r#"[{"item":"tea","quantity":2}]"#,
    ]);
    let out = run(order).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let placed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(placed["Ok"].is_u64(), "{placed}");

    let out = run(args(&["call", &direct, "org.example.Greeter", "nope", "[]"])).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: Remote(ServiceNotFound) (answered by the provider): ") && stderr.contains("nope"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = run(args(&["call", &direct, "org.example.Greeter", "sayHello", "world"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not JSON"), "{}", text(&out.stderr));

    let nobody = format!("zookeeper://127.0.0.1:{}", rpc_tests::free_port());
    let out = run(args(&["ls", &nobody])).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach ZooKeeper at 127.0.0.1:") && stderr.contains("is it running"),
        "{stderr}"
    );
    drop(provider);
}

/// `rpcctl qos` sends `GET /COMMAND?ARGS`, prints the body, and exits by
/// the HTTP status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcctl_qos_sends_the_command_and_exits_by_status() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for answer in [
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nAs ordered.\r\n",
            "HTTP/1.1 403 Forbidden\r\n\r\nforeign address",
        ] {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            requests.push(String::from_utf8(request).unwrap());
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
        requests
    });
    let out = run(args(&["qos", &address, "offline", "org.example.Greeter"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "As ordered.\r\n");
    let out = run(args(&["qos", &address, "ls"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "foreign address\n");
    assert!(
        text(&out.stderr).contains("answered 403 Forbidden"),
        "{}",
        text(&out.stderr)
    );
    let requests = server.await.unwrap();
    assert!(
        requests[0].starts_with("GET /offline?org.example.Greeter HTTP/1.0\r\n"),
        "{requests:?}"
    );
    assert!(requests[1].starts_with("GET /ls HTTP/1.0\r\n"), "{requests:?}");

    let closed = format!("127.0.0.1:{}", rpc_tests::free_port());
    let out = run(args(&["qos", &closed, "ready"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the QoS port"),
        "{}",
        text(&out.stderr)
    );
}
