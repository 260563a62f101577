//! Client channels over real TCP recover by themselves, for both protocols:
//! a connection attempt that every caller gave up on still ends (and the
//! channel backs off, then offers itself again), and a channel whose backoff
//! is over is available to the cluster again without a call having to try it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rpc::protocol::Health;
use rpc::protocol::rpc::{RpcChannel, RpcChannelConfig};
use rpc::protocol::tri::TriChannel;
use rpc::{BoxInvoker, ErrorKind, Invocation, Outcome, RpcError, Serialization, ServiceKey};
use rpc_tests::wait_until;
use tokio::net::TcpListener;
use tokio::time::Instant;

fn config() -> RpcChannelConfig {
    RpcChannelConfig {
        connect_timeout: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        ..RpcChannelConfig::default()
    }
}

async fn call(invoker: BoxInvoker, timeout: Duration) -> Result<Bytes, RpcError> {
    let mut invocation = Invocation::new(
        ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        "echo",
        Bytes::from_static(b"\x01x"),
        Serialization::Bincode,
    );
    invocation.set_deadline(Some(Instant::now() + timeout));
    invoker.invoke(invocation).await.map(|r| r.into_payload())
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

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_attempt_every_caller_gave_up_on_still_ends_and_the_channel_recovers() {
    let (_listener, _filler, addr) = black_hole().await;
    let channel = RpcChannel::new(addr.to_string(), config());
    let error = call(BoxInvoker::new(channel.clone()), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(error.message().contains("before the call's deadline"), "{error}");
    assert_eq!(channel.health(), Health::Unavailable, "still connecting");
    // Nobody waits for the attempt any more: it still ends at the connect
    // timeout, and the channel backs off instead of "connecting" for ever,
    // out of the cluster's rotation.
    wait_until("the abandoned attempt to time out", Duration::from_secs(3), || {
        channel.is_backing_off()
    })
    .await;
    wait_until("the backoff to end", Duration::from_secs(3), || {
        channel.health() == Health::Ready
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tri_channel_whose_backoff_is_over_is_available_again() {
    let channel = TriChannel::new(closed_port().await.to_string(), config());
    let error = call(BoxInvoker::new(channel.clone()), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(channel.is_backing_off());
    assert!(!channel.is_available());
    wait_until("the backoff to end", Duration::from_secs(3), || {
        !channel.is_backing_off()
    })
    .await;
    // The cluster sends calls only to available providers while any is: a
    // channel that stayed unavailable after its backoff would never be tried again.
    assert!(channel.is_available(), "the backoff is over: the next call may connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sees_tri_providers_that_went_away_as_shutting_down() {
    use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};

    let mut providers = Vec::new();
    for _ in 0..2 {
        let provider = rpc::Provider::builder()
            .protocol("tri", 0)
            .shutdown_grace(Duration::from_secs(2))
            .serve(ProbeServer::new(ProbeImpl::default()))
            .start()
            .await
            .unwrap();
        providers.push(provider);
    }
    let addresses: Vec<String> = providers
        .iter()
        .map(|p| p.local_addr("tri").unwrap().to_string())
        .collect();
    let consumer = rpc::Consumer::builder()
        .registry(format!("tri://{}", addresses.join(",")))
        .build()
        .await
        .unwrap();
    let probe: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    // Both connected.
    for _ in 0..20 {
        assert_eq!(probe.echo("x".into()).await.unwrap(), "x");
    }
    // GOAWAY, then nothing listens: the providers are leaving, not failing,
    // and the consumer's error says so.
    for provider in &providers {
        provider.shutdown().await;
    }
    let started = Instant::now();
    loop {
        let error = probe.echo("x".into()).await.unwrap_err();
        assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
        if error.message().contains("every provider (2) is shutting down") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the consumer never saw the providers leave: {error}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
