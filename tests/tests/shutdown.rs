//! Graceful shutdown against real sockets: the listener closes first, the
//! read-only event is two-way, requests already on the wire when a consumer
//! learns of the shutdown are executed, and a connection closes once its peer
//! acknowledged the event (or went quiet) and nothing is in flight on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::time::Duration;

use common::{RawClient, probe_server};
use rpc::protocol::rpc::frame::{OutFrame, READONLY_EVENT};
use rpc::protocol::server::ServerConfig;
use rpc::{Serialization, Status};
use rpc_tests::wait_until;
use tokio::time::Instant;

fn encode<T: serde::Serialize>(value: &T) -> bytes::Bytes {
    Serialization::Bincode.encode(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_crossing_the_readonly_event_run_and_an_acknowledged_connection_closes_at_once() {
    let server = probe_server(ServerConfig::default()).await;
    let addr = server.local_addr();
    let mut client = RawClient::connect(addr).await;
    client.send_request(1, "sleep", encode(&(400u64,))).await;
    wait_until("the slow call to run", Duration::from_secs(5), || {
        server.in_flight() == 1
    })
    .await;

    let started = Instant::now();
    let shutdown = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(20)).await })
    };
    // The read-only event comes, two-way so that its answer tells the server
    // that nothing more will follow it.
    let (event, body) = client.next_frame().await;
    assert!(event.is_event() && event.is_request(), "{event:?}");
    assert_eq!(&body[..], READONLY_EVENT);
    // The listener is closed before the event is sent: new connections are refused.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a connection was accepted during shutdown"
    );
    // A request the consumer sent before it read the event.
    client.send_request(2, "echo", encode(&("crossing",))).await;
    let (h, body) = client.next_response().await;
    assert_eq!(
        (h.id, Status::from_code(h.status)),
        (2, Status::Ok),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(Serialization::Bincode.decode::<String>(&body).unwrap(), "crossing");
    assert!(
        event.is_two_way(),
        "the read-only event must ask for an answer: {event:?}"
    );
    // The acknowledgement: nothing more comes on this connection.
    client.send_frame(OutFrame::event(event.id, false, false, b"")).await;
    let rest = client.expect_closed_within(Duration::from_secs(5)).await;
    let answered: Vec<_> = rest.iter().filter(|(h, _)| !h.is_event()).collect();
    assert_eq!(answered.len(), 1, "{rest:?}");
    assert_eq!(
        (answered[0].0.id, Status::from_code(answered[0].0.status)),
        (1, Status::Ok)
    );
    assert_eq!(Serialization::Bincode.decode::<u64>(&answered[0].1).unwrap(), 400);
    let abandoned = tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown ends once every connection drained")
        .unwrap();
    assert_eq!(abandoned, 0);
    // Drained by the acknowledgement, not by the 20 s grace period.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(server.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_the_event_is_served_until_it_goes_quiet() {
    let quiet = Duration::from_millis(600);
    let server = probe_server(ServerConfig {
        shutdown_quiet: quiet,
        ..ServerConfig::default()
    })
    .await;
    // Like a Java Dubbo consumer: it never answers the read-only event.
    let mut client = RawClient::connect(server.local_addr()).await;
    client.send_request(1, "echo", encode(&("before",))).await;
    assert_eq!(client.next_response().await.0.id, 1);

    let started = Instant::now();
    let shutdown = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(20)).await })
    };
    let (event, _) = client.next_frame().await;
    assert!(event.is_event(), "{event:?}");
    // Requests keep coming for a while: each is executed.
    for id in 2..5u64 {
        tokio::time::sleep(quiet / 3).await;
        client.send_request(id, "echo", encode(&("late",))).await;
        let (h, body) = client.next_response().await;
        assert_eq!(
            (h.id, Status::from_code(h.status)),
            (id, Status::Ok),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let last_request = Instant::now();
    // Then it goes quiet: the server closes the connection after the quiet period.
    client.expect_closed_within(Duration::from_secs(5)).await;
    let quiet_for = last_request.elapsed();
    assert!(
        quiet_for >= quiet.mul_f32(0.9) && quiet_for < quiet * 4,
        "closed {quiet_for:?} after the last request (quiet period {quiet:?})"
    );
    let abandoned = tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(abandoned, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_a_peer_that_never_stops_sending() {
    let server = probe_server(ServerConfig {
        shutdown_quiet: Duration::from_secs(5),
        ..ServerConfig::default()
    })
    .await;
    let mut client = RawClient::connect(server.local_addr()).await;
    client.send_request(1, "sleep", encode(&(10_000u64,))).await;
    wait_until("the slow call to run", Duration::from_secs(5), || {
        server.in_flight() == 1
    })
    .await;
    let started = Instant::now();
    let grace = Duration::from_millis(500);
    let abandoned = tokio::time::timeout(Duration::from_secs(5), server.shutdown(grace))
        .await
        .expect("shutdown is bounded by the grace period");
    assert_eq!(abandoned, 1, "the 10 s call was still running");
    assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
    assert!(client.closed_within(Duration::from_secs(3)).await);
    assert_eq!(server.connections(), 0);
}

/// A consumer calling `sleep(millis)` on the provider at `addr`, in the background.
async fn sleeping_call(addr: std::net::SocketAddr, millis: u64) -> tokio::task::JoinHandle<Result<u64, rpc::RpcError>> {
    let consumer = rpc::Consumer::builder()
        .registry(format!("rpc://{addr}"))
        .build()
        .await
        .unwrap();
    let probe: rpc_tests::probe::ProbeClient = consumer
        .reference::<rpc_tests::probe::ProbeClient>()
        .timeout(Duration::from_secs(30))
        .retries(0)
        .build()
        .await
        .unwrap();
    tokio::spawn(async move {
        let _consumer = consumer;
        probe.sleep(millis).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_and_several_servers_shut_down_within_grace_and_the_unregister_bound() {
    let mut zk = rpc_tests::zk::ZooKeeper::start();
    let grace = Duration::from_secs(1);
    let unregister = Duration::from_secs(2);
    let provider = rpc::Provider::builder()
        .registry(zk.url())
        .protocol("rpc", 0)
        .protocol("tri", 0)
        .shutdown_grace(grace)
        .unregister_timeout(unregister)
        .serve(rpc_tests::probe::ProbeServer::new(
            rpc_tests::probe::ProbeImpl::default(),
        ))
        .serve(rpc_examples::GreeterServer::new(rpc_examples::GreeterImpl::new(None)))
        .start()
        .await
        .unwrap();
    assert_eq!(provider.urls().len(), 4);
    // A call that outlives the grace period on each server.
    let calls = [
        sleeping_call(provider.local_addr("rpc").unwrap(), 20_000).await,
        sleeping_call(provider.local_addr("tri").unwrap(), 20_000).await,
    ];
    wait_until("a call on each server", Duration::from_secs(10), || {
        provider.in_flight() == 2
    })
    .await;
    // ZooKeeper goes away: every unregistration waits for its timeout (10 s).
    zk.stop();
    let started = Instant::now();
    let abandoned = provider.shutdown().await;
    let took = started.elapsed();
    // The unregistrations run at once, bounded by `unregister`; then both
    // servers drain at once, bounded by the one grace period.
    let bound = unregister + grace;
    assert!(
        took >= bound && took < bound + Duration::from_millis(1_500),
        "shutdown took {took:?}; expected about {bound:?}"
    );
    assert_eq!(abandoned, 2, "the calls outlive the grace period");
    assert_eq!(provider.connections(), 0);
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.outcome(), rpc::Outcome::Unknown, "{error}");
    }
}
