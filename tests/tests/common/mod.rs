//! Helpers shared by the test files that talk to a server over raw TCP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rpc::protocol::Dispatcher;
use rpc::protocol::rpc::frame::{Decoded, FrameCodec, Header, OutFrame, RequestMeta};
use rpc::protocol::server::{Server, ServerConfig, ServerHandle};
use rpc::{Serialization, ServiceKey};
use rpc_tests::probe::{ProbeImpl, ProbeServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

/// A server exporting the probe service with `config`, on a free port.
pub(crate) async fn probe_server(config: ServerConfig) -> ServerHandle {
    let dispatcher = Dispatcher::new([(
        ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        rpc::protocol::Exported::new(ProbeServer::new(ProbeImpl::default())),
    )]);
    Server::new(dispatcher, config).bind("127.0.0.1:0").await.unwrap()
}

/// The request meta of a probe method, with a 5 s timeout.
pub(crate) fn probe(method: &str) -> RequestMeta<'_> {
    RequestMeta {
        service: "org.rpc.test.Probe".into(),
        version: Some("1.0.0".into()),
        group: None,
        method: method.into(),
        timeout_ms: Some(5_000),
        attachments: Default::default(),
    }
}

/// The encoded bytes of a two-way bincode request to a probe method.
pub(crate) fn request_bytes(id: u64, method: &str, args: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::request(id, true, Serialization::Bincode, &probe(method), args)
        .unwrap()
        .write_to(&mut buf);
    buf
}

/// A native-protocol client that writes frames by hand and reads whatever comes.
pub(crate) struct RawClient {
    pub(crate) frames: FramedRead<OwnedReadHalf, FrameCodec>,
    pub(crate) write: OwnedWriteHalf,
}

impl RawClient {
    pub(crate) async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, write) = stream.into_split();
        RawClient {
            frames: FramedRead::new(read, FrameCodec::new(16 * 1024 * 1024)),
            write,
        }
    }

    /// Connects with a small receive buffer (no autotuning), so that
    /// replies it does not read back up into the server quickly.
    pub(crate) async fn connect_small_buffer(addr: SocketAddr) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (read, write) = stream.into_split();
        RawClient {
            frames: FramedRead::new(read, FrameCodec::new(16 * 1024 * 1024)),
            write,
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    pub(crate) async fn send_frame(&mut self, frame: OutFrame) {
        let mut buf = BytesMut::new();
        frame.write_to(&mut buf);
        self.send(&buf).await;
    }

    /// Sends a two-way bincode request for a probe method.
    pub(crate) async fn send_request(&mut self, id: u64, method: &str, args: Bytes) {
        let bytes = request_bytes(id, method, args);
        self.send(&bytes).await;
    }

    /// The next frame of any kind, within 5 s.
    pub(crate) async fn next_frame(&mut self) -> (Header, Bytes) {
        let item = tokio::time::timeout(Duration::from_secs(5), self.frames.next())
            .await
            .expect("a frame within 5 s");
        match item {
            Some(Ok(Decoded::Frame(h, b))) => (h, b),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next non-event frame, within 5 s.
    pub(crate) async fn next_response(&mut self) -> (Header, Bytes) {
        loop {
            let (h, b) = self.next_frame().await;
            if !h.is_event() {
                return (h, b);
            }
        }
    }

    /// Waits (up to `within`) for the server to close the connection,
    /// collecting the frames it sends before.
    pub(crate) async fn expect_closed_within(mut self, within: Duration) -> Vec<(Header, Bytes)> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(within, self.frames.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return seen,
                Ok(Some(Ok(Decoded::Frame(h, b)))) => seen.push((h, b)),
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("the server did not close the connection within {within:?}"),
            }
        }
    }

    /// Whether the server closed the connection within `within` (reading and discarding).
    pub(crate) async fn closed_within(self, within: Duration) -> bool {
        let mut read = self.frames.into_inner();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}
