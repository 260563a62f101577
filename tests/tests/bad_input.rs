//! Hostile and malformed input against a real server over raw TCP: every case
//! gets a clear error (a status when the request id is known, otherwise a
//! closed connection), the server keeps serving, and no connection leaks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use rpc::protocol::Dispatcher;
use rpc::protocol::rpc::frame::{Decoded, FrameCodec, Header, OutFrame, RequestMeta};
use rpc::protocol::server::{Server, ServerConfig, ServerHandle};
use rpc::{Serialization, ServiceKey, Status};
use rpc_tests::probe::{ProbeImpl, ProbeServer};
use rpc_tests::wait_until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

const LIMIT: usize = 64 * 1024;

async fn server(config: ServerConfig) -> ServerHandle {
    let dispatcher = Dispatcher::new([(
        ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        rpc::protocol::Exported::new(ProbeServer::new(ProbeImpl::default())),
    )]);
    Server::new(dispatcher, config).bind("127.0.0.1:0").await.unwrap()
}

async fn default_server() -> ServerHandle {
    server(ServerConfig {
        max_payload: LIMIT,
        ..ServerConfig::default()
    })
    .await
}

struct RawClient {
    frames: FramedRead<OwnedReadHalf, FrameCodec>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl RawClient {
    async fn connect(server: &ServerHandle) -> RawClient {
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let (read, write) = stream.into_split();
        RawClient {
            frames: FramedRead::new(read, FrameCodec::new(16 * 1024 * 1024)),
            write,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    async fn send_frame(&mut self, frame: OutFrame) {
        let mut buf = BytesMut::new();
        frame.write_to(&mut buf);
        self.send(&buf).await;
    }

    async fn request(&mut self, id: u64, ser: Serialization, meta: &RequestMeta<'_>, args: Bytes) -> (Header, Bytes) {
        self.send_frame(OutFrame::request(id, true, ser, meta, args).unwrap())
            .await;
        self.next_response().await
    }

    /// The next non-event frame, within 5 s.
    async fn next_response(&mut self) -> (Header, Bytes) {
        loop {
            let item = tokio::time::timeout(Duration::from_secs(5), self.frames.next())
                .await
                .expect("a response within 5 s");
            match item {
                Some(Ok(Decoded::Frame(h, b))) if !h.is_event() => return (h, b),
                Some(Ok(_)) => continue,
                other => panic!("expected a response, got {other:?}"),
            }
        }
    }

    /// Waits (up to 5 s) for the server to close the connection.
    async fn expect_closed(self) {
        let mut read = self.frames.into_inner();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server did not close the connection"),
            }
        }
    }
}

fn meta<'a>(service: &'a str, version: Option<&'a str>, method: &'a str) -> RequestMeta<'a> {
    RequestMeta {
        service: service.into(),
        version: version.map(Into::into),
        group: None,
        method: method.into(),
        timeout_ms: Some(5_000),
        attachments: Default::default(),
    }
}

fn probe(method: &str) -> RequestMeta<'_> {
    meta("org.rpc.test.Probe", Some("1.0.0"), method)
}

fn message(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

async fn assert_still_serving(server: &ServerHandle) {
    let mut client = RawClient::connect(server).await;
    let args = Serialization::Bincode.encode(&("alive",)).unwrap();
    let (h, body) = client.request(1, Serialization::Bincode, &probe("echo"), args).await;
    assert_eq!(Status::from_code(h.status), Status::Ok);
    assert_eq!(Serialization::Bincode.decode::<String>(&body).unwrap(), "alive");
}

async fn assert_no_connections_left(server: &ServerHandle) {
    wait_until(
        "the server's connection count to return to zero",
        Duration::from_secs(5),
        || server.connections() == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrong_magic_close_the_connection() {
    let server = default_server().await;
    // Dubbo's magic starts with 0xda; anything else is taken for HTTP (Triple).
    for garbage in [
        &[0u8; 64][..],
        &[0xff; 16][..],
        &[0xda, 0x00, 0xc2, 0x14, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0][..],
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS hello
    ] {
        let mut client = RawClient::connect(&server).await;
        client.send(garbage).await;
        client.expect_closed().await;
    }
    // An HTTP request that is not a call gets an HTTP answer.
    let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    drop(stream);
    assert_still_serving(&server).await;
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_then_eof_closes_cleanly() {
    let server = default_server().await;
    let frame = OutFrame::request(
        1,
        true,
        Serialization::Bincode,
        &probe("echo"),
        Bytes::from_static(b"abc"),
    )
    .unwrap();
    for cut in [3, 16, 20] {
        let mut client = RawClient::connect(&server).await;
        let mut bytes = BytesMut::new();
        frame.write_to(&mut bytes);
        client.send(&bytes[..cut]).await;
        client.write.shutdown().await.unwrap();
        client.expect_closed().await;
    }
    assert_still_serving(&server).await;
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_gets_bad_request_and_the_connection_survives() {
    let server = default_server().await;
    let mut client = RawClient::connect(&server).await;
    let args = Serialization::Bincode.encode(&(vec![0u8; LIMIT * 2],)).unwrap();
    let (h, body) = client.request(77, Serialization::Bincode, &probe("size"), args).await;
    assert_eq!((h.id, Status::from_code(h.status)), (77, Status::BadRequest));
    assert!(
        message(&body).contains("exceeds the payload limit of 65536 bytes"),
        "{}",
        message(&body)
    );
    // Same connection, next request works.
    let args = Serialization::Bincode.encode(&(vec![0u8; 10],)).unwrap();
    let (h, body) = client.request(78, Serialization::Bincode, &probe("size"), args).await;
    assert_eq!((h.id, Status::from_code(h.status)), (78, Status::Ok));
    assert_eq!(Serialization::Bincode.decode::<u64>(&body).unwrap(), 10);
    drop(client);
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_methods_and_versions_are_service_not_found() {
    let server = default_server().await;
    let mut client = RawClient::connect(&server).await;
    let args = Serialization::Json.encode(&("x",)).unwrap();
    let cases = [
        (
            meta("org.nope.Missing", Some("1.0.0"), "echo"),
            "`org.nope.Missing:1.0.0` is not exported here",
        ),
        (probe("nope"), "no method `nope` in org.rpc.test.Probe"),
        (
            meta("org.rpc.test.Probe", Some("9.9.9"), "echo"),
            "this provider exports org.rpc.test.Probe:1.0.0",
        ),
        (
            RequestMeta {
                group: Some("blue".into()),
                ..probe("echo")
            },
            "`blue/org.rpc.test.Probe:1.0.0` is not exported here",
        ),
    ];
    for (i, (meta, expected)) in cases.into_iter().enumerate() {
        let (h, body) = client.request(i as u64, Serialization::Json, &meta, args.clone()).await;
        assert_eq!(Status::from_code(h.status), Status::ServiceNotFound, "{meta:?}");
        assert!(
            message(&body).contains(expected),
            "{} should contain {expected}",
            message(&body)
        );
    }
    drop(client);
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_arguments_and_meta_are_bad_requests() {
    let server = default_server().await;
    let mut client = RawClient::connect(&server).await;
    // Arguments of the wrong type: `add` takes two integers.
    let args = Serialization::Json.encode(&("not", "numbers")).unwrap();
    let (h, body) = client.request(1, Serialization::Json, &probe("add"), args).await;
    assert_eq!(Status::from_code(h.status), Status::BadRequest);
    assert!(
        message(&body).contains("cannot decode the arguments"),
        "{}",
        message(&body)
    );
    // A body whose meta is garbage.
    let mut frame = BytesMut::new();
    Header {
        flag: 0x80 | 0x40 | Serialization::Bincode.id(),
        status: 0,
        id: 2,
        body_len: 8,
    }
    .write(&mut frame);
    frame.put_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    client.send(&frame).await;
    let (h, body) = client.next_response().await;
    assert_eq!((h.id, Status::from_code(h.status)), (2, Status::BadRequest));
    assert!(
        message(&body).contains("cannot decode the request meta"),
        "{}",
        message(&body)
    );
    // Still fine afterwards.
    let args = Serialization::Json.encode(&(2, 3)).unwrap();
    let (h, body) = client.request(3, Serialization::Json, &probe("add"), args).await;
    assert_eq!(Status::from_code(h.status), Status::Ok);
    assert_eq!(&body[..], b"5");
    drop(client);
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_service_error_and_the_server_lives_on() {
    let server = default_server().await;
    let mut client = RawClient::connect(&server).await;
    for id in 0..3 {
        let (h, body) = client
            .request(id, Serialization::Bincode, &probe("boom"), Bytes::from_static(b""))
            .await;
        assert_eq!(Status::from_code(h.status), Status::ServiceError);
        assert!(
            message(&body).contains("panicked: boom on purpose"),
            "{}",
            message(&body)
        );
    }
    assert_still_serving(&server).await;
    drop(client);
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_dubbo_request_gets_a_readable_bad_request() {
    let server = default_server().await;
    let mut client = RawClient::connect(&server).await;
    // What a Dubbo consumer sends (serialization id 2, hessian2), cut after
    // the method name: the parameter types and the rest are missing.
    let mut frame = BytesMut::new();
    let body = b"\x052.0.2\x30\x13org.example.Greeter\x051.0.0\x08sayHello";
    Header {
        flag: 0x80 | 0x40 | 2,
        status: 0,
        id: 9,
        body_len: body.len() as u32,
    }
    .write(&mut frame);
    frame.put_slice(body);
    client.send(&frame).await;
    let (h, body) = client.next_response().await;
    assert_eq!(
        (h.id, h.serialization_id(), Status::from_code(h.status)),
        (9, 2, Status::BadRequest)
    );
    // The message is a Hessian string (32 to 1023 characters: 0x30-0x33 and
    // one more length byte), as a Dubbo peer reads it.
    assert_eq!(body[0] & 0xfc, 0x30, "{body:?}");
    let text = String::from_utf8_lossy(&body[2..]).into_owned();
    assert!(
        text.starts_with("malformed dubbo request: cannot read the parameter types: hessian: truncated input"),
        "{text}"
    );
    assert_still_serving(&server).await;
    drop(client);
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_three_heartbeats() {
    let server = server(ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    // Connects and never answers the server's heartbeats.
    let client = RawClient::connect(&server).await;
    client.expect_closed().await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(290) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_channel_alive() {
    let server = server(ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let channel = rpc::protocol::rpc::RpcChannel::new(
        server.local_addr().to_string(),
        rpc::protocol::rpc::RpcChannelConfig {
            heartbeat: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let consumer_stub = rpc::Stub::new(
        ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        rpc::BoxInvoker::new(channel.clone()),
    );
    let client = <rpc_tests::probe::ProbeClient as rpc::ServiceClient>::from_stub(consumer_stub);
    assert_eq!(client.echo("a".into()).await.unwrap(), "a");
    // Idle for ten heartbeat intervals: both sides' heartbeats keep it open.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(channel.is_connected());
    assert_eq!(server.connections(), 1);
    assert_eq!(client.echo("b".into()).await.unwrap(), "b");
    channel.disconnect();
    assert_no_connections_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_bad_clients_at_once_leak_nothing() {
    let server = default_server().await;
    let clients = (0..50).map(|i| {
        let addr = server.local_addr();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let junk: Vec<u8> = (0..(i * 7 + 1)).map(|b| (b * 31 + i) as u8).collect();
            let _ = stream.write_all(&junk).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        })
    });
    for client in futures::future::join_all(clients).await {
        client.unwrap();
    }
    assert_still_serving(&server).await;
    assert_no_connections_left(&server).await;
}

/// Whether the server closes `stream` within `within` (reading and discarding).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_cut_after_the_handshake_timeout() {
    let handshake = Duration::from_millis(300);
    let server = server(ServerConfig {
        handshake_timeout: handshake,
        ..ServerConfig::default()
    })
    .await;
    let native_header = Header {
        flag: 0x80 | 0x40 | Serialization::Bincode.id(),
        status: 0,
        id: 1,
        body_len: 10,
    }
    .to_bytes();
    let cases: [(&str, &[u8]); 4] = [
        ("the start of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
        (
            "the HTTP/2 preface less its last byte",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r",
        ),
        (
            "half an HTTP/1 request head",
            b"POST /org.rpc.test.Probe/echo HTTP/1.1\r\nHost: x\r\n",
        ),
        ("half a native frame header", &native_header[..8]),
    ];
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let started = tokio::time::Instant::now();
        stream.write_all(bytes).await.unwrap();
        assert!(
            closed_within(&mut stream, Duration::from_secs(3)).await,
            "a client that sent {what} and stalled still holds its connection"
        );
        let after = started.elapsed();
        assert!(after >= handshake.mul_f32(0.9), "{what}: closed after {after:?}");
    }
    assert_no_connections_left(&server).await;
    assert_still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_but_complete_handshakes_are_served() {
    let handshake = Duration::from_millis(300);
    let server = server(ServerConfig {
        handshake_timeout: handshake,
        ..ServerConfig::default()
    })
    .await;
    // A consumer connects when its reference is built and may stay silent
    // until its first call: the handshake timeout does not apply.
    let mut client = RawClient::connect(&server).await;
    tokio::time::sleep(handshake * 3).await;
    let args = Serialization::Bincode.encode(&("late",)).unwrap();
    let (h, body) = client.request(1, Serialization::Bincode, &probe("echo"), args).await;
    assert_eq!(Status::from_code(h.status), Status::Ok);
    assert_eq!(Serialization::Bincode.decode::<String>(&body).unwrap(), "late");
    drop(client);

    // A header in pieces, each well within the timeout, then a slow body:
    // the limit is on the first header, not on the frame.
    let mut client = RawClient::connect(&server).await;
    let frame = OutFrame::request(
        2,
        true,
        Serialization::Bincode,
        &probe("echo"),
        Serialization::Bincode.encode(&("pieces",)).unwrap(),
    )
    .unwrap();
    let mut bytes = BytesMut::new();
    frame.write_to(&mut bytes);
    for piece in [&bytes[..4], &bytes[4..16]] {
        client.send(piece).await;
        tokio::time::sleep(handshake / 3).await;
    }
    tokio::time::sleep(handshake * 2).await;
    client.send(&bytes[16..]).await;
    let (h, body) = client.next_response().await;
    assert_eq!((h.id, Status::from_code(h.status)), (2, Status::Ok));
    assert_eq!(Serialization::Bincode.decode::<String>(&body).unwrap(), "pieces");

    // HTTP/1: the head in two pieces within the timeout, then the body later.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"POST /org.rpc.test.Probe/echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(handshake / 3).await;
    stream
        .write_all(b"content-type: application/json\r\ncontent-length: 8\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(handshake * 2).await;
    stream.write_all(b"[\"slow\"]").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("\"slow\""),
        "{answer}"
    );
    drop(client);
    assert_no_connections_left(&server).await;
}
