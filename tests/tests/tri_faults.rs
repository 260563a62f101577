//! The Triple client when things go wrong: which answers it trusts as "not
//! run" (only our provider's own refusals, not a proxy's 503), connecting
//! under a deadline, sharing one connection attempt, backing off from a peer
//! that accepts and closes at once, and telling callers whether it is usable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rpc::protocol::rpc::RpcChannelConfig;
use rpc::protocol::server::ServerConfig;
use rpc::protocol::tri::TriChannel;
use rpc::{ErrorKind, Invocation, Outcome, RpcError, Serialization, ServiceKey, Status};
use rpc_tests::probe::{ProbeImpl, ProbeServer};
use rpc_tests::wait_until;
use tokio::net::TcpListener;
use tokio::time::Instant;

fn invocation(method: &str, args: Bytes, timeout: Duration) -> Invocation {
    let mut invocation = Invocation::new(
        ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        method.to_string(),
        args,
        Serialization::Bincode,
    );
    invocation.set_deadline(Some(Instant::now() + timeout));
    invocation
}

async fn call(channel: &TriChannel, method: &str, args: Bytes, timeout: Duration) -> Result<Bytes, RpcError> {
    rpc::BoxInvoker::new(channel.clone())
        .invoke(invocation(method, args, timeout))
        .await
        .map(|r| r.into_payload())
}

fn encode<T: serde::Serialize>(value: &T) -> Bytes {
    Serialization::Bincode.encode(value).unwrap()
}

fn config() -> RpcChannelConfig {
    RpcChannelConfig {
        connect_timeout: Duration::from_secs(3),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        ..RpcChannelConfig::default()
    }
}

/// How a fake proxy answers every request.
type Answer = fn() -> http::Response<Full<Bytes>>;

/// An HTTP/2 server answering every request with `answer()`: a stand-in for a
/// proxy in front of a provider.
async fn fake_proxy(answer: Answer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_request: http::Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(answer())
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn http_status(status: u16) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(
            b"upstream connect error or disconnect/reset before headers",
        )))
        .unwrap()
}

fn grpc_status(code: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", code)
        .header("grpc-message", "no healthy upstream")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_providers_refusals_count_as_not_run() {
    let cases: [(&str, Answer); 5] = [
        ("HTTP 503", || http_status(503)),
        ("HTTP 502", || http_status(502)),
        ("HTTP 429", || http_status(429)),
        ("grpc-status 14 UNAVAILABLE", || grpc_status("14")),
        ("grpc-status 8 RESOURCE_EXHAUSTED", || grpc_status("8")),
    ];
    for (what, answer) in cases {
        let proxy = fake_proxy(answer).await;
        let channel = TriChannel::new(proxy.to_string(), config());
        let error = call(&channel, "echo", encode(&("x",)), Duration::from_secs(2))
            .await
            .unwrap_err();
        // Something in between answered after forwarding, perhaps: it may have run.
        assert_eq!(error.outcome(), Outcome::Unknown, "{what}: {error}");
        assert!(error.message().contains("may have run"), "{what}: {error}");
    }

    // Our provider at capacity: its refusal says the handler did not run.
    let provider = rpc::Provider::builder()
        .protocol("tri", 0)
        .server_config(ServerConfig {
            max_in_flight: 1,
            ..ServerConfig::default()
        })
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let channel = TriChannel::new(provider.local_addr("tri").unwrap().to_string(), config());
    let busy = {
        let channel = channel.clone();
        tokio::spawn(async move { call(&channel, "sleep", encode(&(1_000u64,)), Duration::from_secs(5)).await })
    };
    wait_until("a call in flight", Duration::from_secs(5), || provider.in_flight() == 1).await;
    let error = call(&channel, "echo", encode(&("x",)), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(Status::ServerOverloaded), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(busy.await.unwrap().is_ok());
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_refusal_marked_as_ours_is_trusted() {
    let proxy = fake_proxy(|| {
        let mut answer = http_status(503);
        answer.headers_mut().insert(
            rpc::protocol::tri::headers::REFUSED,
            http::HeaderValue::from_static("shutting-down"),
        );
        answer
    })
    .await;
    let channel = TriChannel::new(proxy.to_string(), config());
    let error = call(&channel, "echo", encode(&("x",)), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
}

/// A listener whose accept queue is full: connection attempts to it hang.
async fn black_hole() -> (TcpListener, std::net::TcpStream, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fills the queue (never accepted).
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (listener, filler, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_for_a_connection_only_until_its_deadline() {
    let (_listener, _filler, addr) = black_hole().await;
    let channel = TriChannel::new(addr.to_string(), config());
    assert!(channel.is_available(), "idle and never failed");
    // A patient call starts connecting (up to the 3 s connect timeout)...
    let patient = {
        let channel = channel.clone();
        tokio::spawn(async move { call(&channel, "echo", encode(&("x",)), Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!channel.is_available(), "connecting");
    // ...and impatient ones share that attempt, each failing at its own deadline.
    let started = Instant::now();
    let impatient: Vec<_> = (0..10)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { call(&channel, "echo", encode(&("x",)), Duration::from_millis(300)).await })
        })
        .collect();
    for call in impatient {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
        assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
        assert!(
            error
                .message()
                .contains(&format!("no connection to {addr} before the call's deadline")),
            "{error}"
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(900),
        "the calls waited {took:?} for a 300 ms deadline"
    );
    let error = patient.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(!channel.is_available());
    assert!(channel.is_backing_off());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_connection_attempt() {
    let provider = rpc::Provider::builder()
        .protocol("tri", 0)
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let channel = TriChannel::new(provider.local_addr("tri").unwrap().to_string(), config());
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(
                async move { call(&channel, "echo", encode(&(format!("{i}"),)), Duration::from_secs(5)).await },
            )
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(provider.connections(), 1);
    assert!(channel.is_available());
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_and_closes_at_once_is_backed_off_not_stormed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        });
    }
    let channel = TriChannel::new(addr.to_string(), config());
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_millis(1_500) {
        let error = call(&channel, "echo", encode(&("x",)), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_ne!(error.outcome(), Outcome::Remote, "{error}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let accepted = accepted.load(Ordering::Relaxed);
    // Backoff from 100 ms, doubling: a handful of attempts in 1.5 s, not one per call.
    assert!(
        (1..=7).contains(&accepted),
        "{accepted} connections for {calls} calls in 1.5 s: each death reset the backoff"
    );
    assert!(!channel.is_available());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_going_away_makes_the_channel_unavailable() {
    let provider = rpc::Provider::builder()
        .protocol("tri", 0)
        .shutdown_grace(Duration::from_secs(2))
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let channel = TriChannel::new(provider.local_addr("tri").unwrap().to_string(), config());
    assert_eq!(
        call(&channel, "echo", encode(&("x",)), Duration::from_secs(2))
            .await
            .unwrap(),
        encode(&"x")
    );
    assert!(channel.is_available());
    // GOAWAY: the idle connection closes gracefully.
    provider.shutdown().await;
    wait_until(
        "the channel to see the provider go away",
        Duration::from_secs(5),
        || !channel.is_available(),
    )
    .await;
    // Nothing listens any more: the next call is not sent.
    let error = call(&channel, "echo", encode(&("x",)), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(!channel.is_available());
}
