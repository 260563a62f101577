//! Bounded provider-side work: a client that sends without reading replies
//! meets TCP back-pressure instead of growing the provider, refusals are
//! never dropped, and a full server answers "overloaded" at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::collections::HashSet;
use std::time::Duration;

use bytes::BytesMut;
use common::{RawClient, probe_server};
use rpc::protocol::rpc::frame::{Decoded, Header, OutFrame, RequestMeta};
use rpc::protocol::server::ServerConfig;
use rpc::{Serialization, Status};
use rpc_examples::GreeterClient;
use rpc_tests::ProviderProcess;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

fn encode<T: serde::Serialize>(value: &T) -> bytes::Bytes {
    Serialization::Bincode.encode(value).unwrap()
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_never_dropped_when_the_client_reads_late() {
    let server = probe_server(ServerConfig::default()).await;
    let client = RawClient::connect_small_buffer(server.local_addr()).await;
    let RawClient { mut frames, mut write } = client;
    // Many requests in a serialization this provider does not speak (Dubbo's
    // kryo, id 8; hessian2, id 2, is the dubbo protocol's), written without reading anything:
    // far more refusals than the server's send queue and the socket buffers hold.
    const N: u64 = 100_000;
    let mut bytes = BytesMut::new();
    for id in 0..N {
        Header {
            flag: 0x80 | 0x40 | 8,
            status: 0,
            id,
            body_len: 4,
        }
        .write(&mut bytes);
        bytes.extend_from_slice(b"\x05abc");
    }
    let writer = tokio::spawn(async move {
        write.write_all(&bytes).await.unwrap();
        write
    });
    // Start reading only once the writer is done or stuck.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while !writer.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut seen = HashSet::new();
    while (seen.len() as u64) < N {
        let item = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut frames))
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} refusals arrived", seen.len()));
        match item {
            Some(Ok(Decoded::Frame(h, body))) if !h.is_event() => {
                assert_eq!(
                    Status::from_code(h.status),
                    Status::SerializationError,
                    "{}",
                    String::from_utf8_lossy(&body)
                );
                assert!(seen.insert(h.id), "request {} answered twice", h.id);
            }
            Some(Ok(_)) => {}
            other => panic!("after {} refusals: {other:?}", seen.len()),
        }
    }
    let _write = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_refuses_with_overloaded_and_runs_nothing() {
    let server = probe_server(ServerConfig {
        max_in_flight: 4,
        ..ServerConfig::default()
    })
    .await;
    let mut busy = RawClient::connect(server.local_addr()).await;
    for id in 0..4 {
        busy.send_request(id, "sleep", encode(&(1_500u64,))).await;
    }
    rpc_tests::wait_until("four calls to run", Duration::from_secs(5), || server.in_flight() == 4).await;
    // Another connection: refused at once, every one answered.
    let mut other = RawClient::connect(server.local_addr()).await;
    let started = Instant::now();
    for id in 100..150 {
        other.send_request(id, "echo", encode(&("x",))).await;
    }
    let mut refused = HashSet::new();
    for _ in 100..150 {
        let (h, body) = other.next_response().await;
        let message = String::from_utf8_lossy(&body);
        assert_eq!(Status::from_code(h.status), Status::ServerOverloaded, "{message}");
        assert!(
            message.contains("4 calls in flight") && message.contains("org.rpc.test.Probe"),
            "{message}"
        );
        refused.insert(h.id);
    }
    assert_eq!(refused.len(), 50);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // The busy calls finish; then calls are served again.
    for _ in 0..4 {
        assert_eq!(Status::from_code(busy.next_response().await.0.status), Status::Ok);
    }
    rpc_tests::wait_until("the calls to finish", Duration::from_secs(5), || {
        server.in_flight() == 0
    })
    .await;
    other.send_request(200, "echo", encode(&("again",))).await;
    let (h, _) = other.next_response().await;
    assert_eq!((h.id, Status::from_code(h.status)), (200, Status::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_holds_at_most_its_limit_in_flight_and_reading_pauses() {
    let server = probe_server(ServerConfig {
        max_in_flight_per_connection: 8,
        ..ServerConfig::default()
    })
    .await;
    let mut client = RawClient::connect(server.local_addr()).await;
    for id in 0..20 {
        client.send_request(id, "sleep", encode(&(300u64,))).await;
    }
    rpc_tests::wait_until("eight calls to run", Duration::from_secs(5), || server.in_flight() == 8).await;
    // The rest wait unread (none is refused): never more than eight at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.in_flight(), 8);
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let (h, _) = client.next_response().await;
        assert_eq!(Status::from_code(h.status), Status::Ok);
        assert!(server.in_flight() <= 8);
        ids.insert(h.id);
    }
    assert_eq!(ids.len(), 20);
}

/// The greeter's `sayHello("x")` as a native request frame.
fn greeting(id: u64) -> BytesMut {
    let meta = RequestMeta {
        service: "org.example.Greeter".into(),
        version: Some("1.0.0".into()),
        group: None,
        method: "sayHello".into(),
        timeout_ms: Some(60_000),
        attachments: Default::default(),
    };
    let mut buf = BytesMut::new();
    OutFrame::request(id, true, Serialization::Bincode, &meta, encode(&("x",)))
        .unwrap()
        .write_to(&mut buf);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_replies_cannot_grow_the_provider() {
    // RSS the provider may reach: its baseline is a few MiB.
    const LIMIT_KIB: u64 = 64 * 1024;
    const REQUESTS: u64 = 1_000_000;
    let provider = ProviderProcess::spawn(&["--port", "0"]);
    let pid = provider.pid();
    let baseline = rss_kib(pid);

    // Another consumer, calling throughout on its own connection.
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{}", provider.address))
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_secs(3))
        .retries(0)
        .build()
        .await
        .unwrap();
    assert_eq!(greeter.say_hello("first".into()).await.unwrap(), "Hello, first");

    // The flood: sayHello requests on one connection, never reading a reply.
    let mut flood = tokio::net::TcpStream::connect(&provider.address).await.unwrap();
    let chunk: BytesMut = (0..1_000).fold(BytesMut::new(), |mut acc, id| {
        acc.extend_from_slice(&greeting(id));
        acc
    });
    let started = Instant::now();
    let mut sent = 0u64;
    let mut peak = baseline;
    let mut answered = 0u32;
    let mut stalled = false;
    while sent < REQUESTS && started.elapsed() < Duration::from_secs(30) {
        match tokio::time::timeout(Duration::from_millis(500), flood.write_all(&chunk)).await {
            Ok(result) => {
                result.unwrap();
                sent += 1_000;
            }
            // The provider stopped reading: back-pressure reached us.
            Err(_) => stalled = true,
        }
        peak = peak.max(rss_kib(pid));
        assert!(
            peak < LIMIT_KIB,
            "the provider grew to {peak} KiB (baseline {baseline} KiB) after {sent} unread requests"
        );
        if sent % 20_000 == 0 || stalled {
            let reply = greeter.say_hello(format!("during {sent}")).await;
            assert_eq!(reply.unwrap(), format!("Hello, during {sent}"));
            answered += 1;
        }
        if stalled && started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    peak = peak.max(rss_kib(pid));
    eprintln!(
        "flood: {sent} requests written in {:?} (stalled: {stalled}); provider RSS {baseline} KiB -> peak {peak} KiB; \
         {answered} calls of another client answered meanwhile",
        started.elapsed()
    );
    assert!(stalled, "{sent} unread requests were all read: no back-pressure");
    assert!(peak < LIMIT_KIB);
    assert!(answered >= 2);
    drop(flood);
    assert_eq!(greeter.say_hello("after".into()).await.unwrap(), "Hello, after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_after_three_heartbeats() {
    let heartbeat = Duration::from_millis(200);
    let server = probe_server(ServerConfig {
        heartbeat,
        ..ServerConfig::default()
    })
    .await;
    let mut client = RawClient::connect_small_buffer(server.local_addr()).await;
    // Large answers that it never reads (8 MB: more than the socket buffers
    // hold): the server's writes stall.
    for id in 0..8 {
        client.send_request(id, "blob", encode(&(1_000_000u32,))).await;
    }
    let started = Instant::now();
    rpc_tests::wait_until(
        "the server to drop the connection that stopped reading",
        Duration::from_secs(10),
        || server.connections() == 0,
    )
    .await;
    assert!(started.elapsed() >= heartbeat * 2, "{:?}", started.elapsed());
    // Handlers still running when it closed find no connection to answer on.
    rpc_tests::wait_until("the handlers to finish", Duration::from_secs(5), || {
        server.in_flight() == 0
    })
    .await;
}
