//! The server over real TCP: one port speaks both protocols, every invocation
//! carries its caller's address, and the limits hold.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::testing::{self, SERVICE, VERSION};
use super::{Server, ServerConfig, ServerHandle};
use crate::error::Status;
use crate::protocol::rpc::frame::{Decoded, FrameCodec, Header, OutFrame, RequestMeta};
use crate::serialization::Serialization;

/// The bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(5);

async fn start(config: ServerConfig) -> (ServerHandle, testing::TestService) {
    let (shared, service) = testing::shared(config.clone());
    let server = Server::new(shared.dispatcher.clone(), config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (server, service)
}

fn meta(method: &str) -> RequestMeta<'_> {
    RequestMeta {
        service: SERVICE.into(),
        version: Some(VERSION.into()),
        group: None,
        method: method.into(),
        timeout_ms: Some(5_000),
        attachments: Default::default(),
    }
}

/// Sends a two-way bincode request for `method` on `stream` and returns the
/// answer's header and body.
async fn native_call(stream: TcpStream, method: &str) -> (Header, Bytes, TcpStream) {
    let mut stream = stream;
    let mut buf = BytesMut::new();
    let args = Serialization::Bincode.encode(&("x",)).unwrap();
    OutFrame::request(1, true, Serialization::Bincode, &meta(method), args)
        .unwrap()
        .write_to(&mut buf);
    stream.write_all(&buf).await.unwrap();
    let mut frames = FramedRead::new(stream, FrameCodec::new(1 << 20));
    let answer = tokio::time::timeout(WAIT, frames.next()).await.unwrap();
    match answer {
        Some(Ok(Decoded::Frame(header, body))) => (header, body, frames.into_inner()),
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Waits (bounded) for the server to close `stream`.
async fn expect_closed(mut stream: TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "expected a close, got {read:?}: {rest:?}"
    );
}

/// Polls (bounded) until the server counts no connection: it offers no event to wait on.
async fn no_connections_left(server: &ServerHandle) {
    let waited = tokio::time::timeout(WAIT, async {
        while server.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{} connections left", server.connections());
}

#[tokio::test]
async fn one_port_speaks_both_protocols_and_each_invocation_carries_its_callers_address() {
    let (server, _) = start(ServerConfig::default()).await;

    let native = TcpStream::connect(server.local_addr()).await.unwrap();
    let native_addr = native.local_addr().unwrap();
    let (header, body, _native) = native_call(native, "peer").await;
    assert_eq!(Status::from_code(header.status), Status::Ok);
    let seen: Option<String> = Serialization::Bincode.decode(&body).unwrap();
    assert_eq!(seen, Some(native_addr.to_string()));

    let mut http = TcpStream::connect(server.local_addr()).await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let request = format!(
        "POST /{SERVICE}/peer HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: 2\r\n\r\n[]"
    );
    http.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, http.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(&format!("\r\n\r\n\"{http_addr}\"")), "{response}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_accept() {
    let (server, _) = start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let first = TcpStream::connect(server.local_addr()).await.unwrap();
    let (header, _, first) = native_call(first, "echo").await;
    assert_eq!(Status::from_code(header.status), Status::Ok);
    assert_eq!(server.connections(), 1);

    let second = TcpStream::connect(server.local_addr()).await.unwrap();
    expect_closed(second).await;
    assert_eq!(server.connections(), 1);
    assert_eq!(server.stats().refused_connections, 1);

    drop(first);
    no_connections_left(&server).await;
    let third = TcpStream::connect(server.local_addr()).await.unwrap();
    let (header, _, _third) = native_call(third, "echo").await;
    assert_eq!(Status::from_code(header.status), Status::Ok);
}

#[tokio::test]
async fn a_connection_stalled_in_its_handshake_is_closed_and_uncounted() {
    let (server, _) = start(ServerConfig {
        handshake_timeout: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    for partial in [&[0xda_u8, 0xbb, 0xc2][..], b"POST /test.Echo/echo HTTP/1.1\r\n"] {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(partial).await.unwrap();
        expect_closed(stream).await;
    }
    no_connections_left(&server).await;
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_drains_the_open_ones() {
    let (server, service) = start(ServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buf = BytesMut::new();
    OutFrame::request(1, true, Serialization::Bincode, &meta("wait"), Bytes::new())
        .unwrap()
        .write_to(&mut buf);
    OutFrame::request(2, true, Serialization::Bincode, &meta("echo"), Bytes::new())
        .unwrap()
        .write_to(&mut buf);
    stream.write_all(&buf).await.unwrap();
    let mut frames = FramedRead::new(stream, FrameCodec::new(1 << 20));
    // Answered after the wait started: the wait is in flight.
    match tokio::time::timeout(WAIT, frames.next()).await.unwrap() {
        Some(Ok(Decoded::Frame(header, _))) => assert_eq!(header.id, 2),
        other => panic!("expected the echo's answer, got {other:?}"),
    }
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(WAIT).await }
    });
    // The read-only event comes once the listener is closed.
    let event = match tokio::time::timeout(WAIT, frames.next()).await.unwrap() {
        Some(Ok(Decoded::Frame(header, _))) if header.is_event() && header.is_request() => header.id,
        other => panic!("expected the read-only event, got {other:?}"),
    };
    assert!(
        TcpStream::connect(server.local_addr()).await.is_err(),
        "the listener must be closed"
    );
    assert_eq!(server.in_flight(), 1);
    let mut answer = BytesMut::new();
    OutFrame::event(event, false, false, b"").write_to(&mut answer);
    frames.get_mut().write_all(&answer).await.unwrap();
    service.release(1);
    match tokio::time::timeout(WAIT, frames.next()).await.unwrap() {
        Some(Ok(Decoded::Frame(header, _))) => {
            assert_eq!((header.id, Status::from_code(header.status)), (1, Status::Ok));
        }
        other => panic!("expected the answer, got {other:?}"),
    }
    assert_eq!(tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap(), 0);
    assert!(tokio::time::timeout(WAIT, frames.next()).await.unwrap().is_none());
    assert_eq!(server.connections(), 0);
}

/// Polls (bounded) until `done` holds of the server's stats: they offer no event to wait on.
async fn stats_until(server: &ServerHandle, what: &str, done: impl Fn(&super::ServerStats) -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !done(&server.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: {:?}", server.stats());
}

/// Writes native requests for `methods`, numbered from 1, on `stream`.
async fn send_requests(stream: &mut TcpStream, methods: &[&str]) {
    let mut buf = BytesMut::new();
    for (id, method) in (1..).zip(methods) {
        OutFrame::request(id, true, Serialization::Bincode, &meta(method), Bytes::new())
            .unwrap()
            .write_to(&mut buf);
    }
    stream.write_all(&buf).await.unwrap();
}

#[tokio::test]
async fn a_request_waiting_for_its_connections_limit_counts_as_queued() {
    let (server, service) = start(ServerConfig {
        max_in_flight_per_connection: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send_requests(&mut stream, &["wait", "echo"]).await;
    stats_until(&server, "the echo queued behind the wait", |s| {
        s.in_flight == 1 && s.queued == 1
    })
    .await;
    service.release(1);
    let mut frames = FramedRead::new(stream, FrameCodec::new(1 << 20));
    for _ in 0..2 {
        match tokio::time::timeout(WAIT, frames.next()).await.unwrap() {
            Some(Ok(Decoded::Frame(header, _))) => assert_eq!(Status::from_code(header.status), Status::Ok),
            other => panic!("expected an answer, got {other:?}"),
        }
    }
    stats_until(&server, "nothing queued any more", |s| {
        s.queued == 0 && s.in_flight == 0
    })
    .await;
    assert_eq!(server.stats().refused_requests, 0);
}

#[tokio::test]
async fn a_request_refused_by_the_servers_in_flight_limit_is_counted() {
    let (server, service) = start(ServerConfig {
        max_in_flight: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut waiting = TcpStream::connect(server.local_addr()).await.unwrap();
    send_requests(&mut waiting, &["wait"]).await;
    stats_until(&server, "the wait in flight", |s| s.in_flight == 1).await;
    let (header, _, _second) = native_call(TcpStream::connect(server.local_addr()).await.unwrap(), "echo").await;
    assert_eq!(Status::from_code(header.status), Status::ServerOverloaded);
    let stats = server.stats();
    assert_eq!((stats.refused_requests, stats.refused_connections), (1, 0), "{stats:?}");
    service.release(1);
}
