//! Interoperability with real peers of other languages, installed by
//! `./scripts/test.sh` in `target/interop-venv`: Apache Dubbo's Python
//! implementation (both directions, through a real ZooKeeper) and grpcio.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use rpc_tests::python::{self, PythonProcess};
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ConsumerProcess, ProviderProcess, free_port};

fn registry(zk: &ZooKeeper) -> String {
    format!("{}?session=10000&timeout=5000", zk.url())
}

async fn finish(process: PythonProcess) -> (Option<i32>, Vec<String>, String) {
    let out = tokio::task::spawn_blocking(move || process.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    (out.code, out.stdout, out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_dubbo_consumer_calls_rust_providers_through_zookeeper() {
    let zk = ZooKeeper::start();
    let registry = registry(&zk);
    // One provider registers a tri:// URL, the other an rpc:// one: the Python
    // client calls every URL it finds with Triple, and every port speaks it.
    let _tri = ProviderProcess::spawn(&[
        "--registry",
        &registry,
        "--port",
        "0",
        "--protocol",
        "tri",
        "--tag",
        "tri",
    ]);
    let _rpc = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "rpc"]);
    let consumer = python::spawn("dubbo_consumer.py", &[zk.url().as_str(), "world", "20"]);
    let (code, stdout, stderr) = finish(consumer).await;
    assert_eq!(code, Some(0), "stdout: {stdout:?}\nstderr: {stderr}");
    let replies: Vec<&String> = stdout.iter().filter(|l| l.starts_with("reply: ")).collect();
    assert_eq!(replies.len(), 20, "{stdout:?}");
    assert!(
        replies
            .iter()
            .all(|r| *r == "reply: Hello, world from tri" || *r == "reply: Hello, world from rpc"),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_consumer_calls_a_python_dubbo_provider_through_zookeeper() {
    let zk = ZooKeeper::start();
    let port = free_port().to_string();
    let registry = registry(&zk);
    let provider_args = [zk.url(), port, "py".to_string()];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = provider_args.iter().map(String::as_str).collect();
        let mut provider = python::spawn("dubbo_provider.py", &args);
        provider.wait_for_line("listening", Duration::from_secs(30));
        // Its URL is `tri://127.0.0.1:PORT?service=org.example.Greeter`: no
        // version (read as 1.0.0), no methods, no serialization: it reads
        // JSON, which the default consumer (preferring bincode) sends it.
        // (Defect: it sent bincode, and every call hung until its deadline.)
        let consumer = ConsumerProcess::spawn(&["--registry", &registry, "--calls", "10", "--check", "-v"]);
        let out = consumer.wait(Duration::from_secs(60));
        drop(provider);
        out
    })
    .await
    .unwrap();
    assert_eq!(out.counts(), (10, 0), "stderr:\n{}", out.stderr);
    assert_eq!(out.count_lines("from py"), 10, "{:?}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_calls_the_tri_endpoint_directly() {
    let provider = ProviderProcess::spawn(&["--port", "0", "--protocol", "tri", "--tag", "grpc"]);
    let address = provider.address.clone();
    let call = |path: &str, body: &str, timeout: &str| {
        python::spawn("grpc_client.py", &[address.as_str(), path, body, timeout])
    };
    let (code, stdout, stderr) = finish(call("/org.example.Greeter/sayHello", r#""world""#, "5")).await;
    assert_eq!(code, Some(0), "{stdout:?} {stderr}");
    assert_eq!(
        stdout.last().map(String::as_str),
        Some(r#"reply: "Hello, world from grpc""#)
    );
    // Several arguments travel as a JSON array; a struct as an object.
    let (_, stdout, _) = finish(call(
        "/org.example.Greeter/placeOrder",
        r#"[{"item":"tea","quantity":2}]"#,
        "5",
    ))
    .await;
    assert_eq!(stdout.last().map(String::as_str), Some(r#"reply: {"Ok":1}"#));
    // Errors arrive as gRPC statuses.
    let (code, stdout, _) = finish(call("/org.example.Greeter/noSuchMethod", "[]", "5")).await;
    assert_eq!(code, Some(1));
    assert!(
        stdout.last().unwrap().starts_with("status: UNIMPLEMENTED"),
        "{stdout:?}"
    );
    let (_, stdout, _) = finish(call("/org.example.Greeter/sayHello", "{not json", "5")).await;
    assert!(
        stdout.last().unwrap().starts_with("status: INVALID_ARGUMENT"),
        "{stdout:?}"
    );
    // grpcio's deadline travels as grpc-timeout and is kept.
    let (_, stdout, _) = finish(call("/org.example.Greeter/sleep", "[5000]", "0.5")).await;
    assert!(
        stdout.last().unwrap().starts_with("status: DEADLINE_EXCEEDED"),
        "{stdout:?}"
    );
}
