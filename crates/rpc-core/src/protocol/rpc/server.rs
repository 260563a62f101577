//! The native protocol's side of a server connection: frames in, requests
//! run, answers, heartbeats and events out. The [protocol-neutral
//! server](crate::protocol::server) hands a connection here when its first
//! byte is Dubbo's magic.
//!
//! What a native connection guarantees, on top of the server's own:
//!
//! * **Bounded work.** A connection has at most
//!   [`ServerConfig::max_in_flight_per_connection`] requests in flight; while
//!   it has that many, or while its send queue is full (a client that does not
//!   read its replies), nothing more is read from it, so the client meets TCP
//!   back-pressure instead of the server buffering without bound. Every answer
//!   the reader sends (refusals, event answers) has its room in the send queue
//!   reserved before the request is read, so none is ever dropped.
//! * **Heartbeats.** The writer sends one when the peer has been silent for
//!   [`ServerConfig::heartbeat`], and closes the connection after three
//!   silent intervals, or when the peer reads nothing for three.
//! * **Draining.** When the server is leaving, the connection sends the
//!   two-way read-only event and keeps running what still arrives; it closes
//!   once nothing is in flight and nothing more can come: its peer answered
//!   the event (which it sends after everything it sent before) or, for peers
//!   that never answer it, stayed silent for [`ServerConfig::shutdown_quiet`].
//!
//! [`ServerConfig::max_in_flight_per_connection`]: crate::protocol::server::ServerConfig::max_in_flight_per_connection
//! [`ServerConfig::heartbeat`]: crate::protocol::server::ServerConfig::heartbeat
//! [`ServerConfig::shutdown_quiet`]: crate::protocol::server::ServerConfig::shutdown_quiet

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, Permit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::FramedRead;
use tokio_util::sync::WaitForCancellationFuture;

use super::conn::{ConnShared, QUEUE, enqueue, run_writer};
use super::frame::{Decoded, FrameCodec, HEADER_LEN, Header, MAGIC, OutFrame, hessian2_string, split_request};
use crate::dispatch::Dispatcher;
use crate::error::{RpcError, Status};
use crate::invocation::{Invocation, MethodName, ServiceKey};
use crate::protocol::dubbo;
use crate::protocol::server::{Dispatch, Greeting, Handshake, ServeConnection, ServerShared};
use crate::serialization::Serialization;
use std::borrow::Cow;

/// The native protocol as the [server](crate::protocol::server) sees it: it
/// claims connections that start with Dubbo's magic.
#[derive(Debug)]
pub(crate) struct RpcServerSide;

impl ServeConnection for RpcServerSide {
    fn claims(&self, first: u8) -> bool {
        first == MAGIC.to_be_bytes()[0]
    }

    fn greeting(&self) -> Box<dyn Greeting> {
        Box::new(FrameHeader { seen: 0 })
    }

    fn serve(
        &self,
        stream: Handshake<TcpStream>,
        peer: SocketAddr,
        server: Arc<ServerShared>,
    ) -> BoxFuture<'static, ()> {
        // Owned halves: no lock per read or write.
        let (read, write) = stream.into_split();
        Box::pin(serve(read, write, peer, server))
    }
}

/// A native connection's first message: one frame header.
#[derive(Debug)]
struct FrameHeader {
    seen: usize,
}

impl Greeting for FrameHeader {
    fn complete_after(&mut self, bytes: &[u8]) -> bool {
        self.seen += bytes.len();
        self.seen >= HEADER_LEN
    }

    fn awaited(&self) -> &'static str {
        "frame header"
    }
}

/// Where a native connection is in the server's graceful shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    /// The server is not shutting down.
    Serving,
    /// The server is shutting down; the read-only event is still to be sent.
    Telling,
    /// The read-only event (this id) is sent; waiting for the peer's answer,
    /// or for it to go quiet.
    Told(u64),
    /// The peer sends nothing more: close once nothing is in flight.
    PeerDone,
}

/// Why a native connection's reader stopped waiting.
enum Signal {
    /// The connection closed.
    Closed,
    /// The server closes every connection now.
    ServerClosed,
    /// The grace period is over: flush and close.
    Drain,
    /// The server started shutting down.
    ReadOnly,
    /// The peer sent no request for the quiet period since it was told.
    Quiet,
    /// The peer is done and nothing is in flight: the connection is drained.
    Idle,
}

/// The futures a native connection's reader watches besides its socket.
struct ReaderSignals<'p, 'f> {
    closed: Pin<&'p mut WaitForCancellationFuture<'f>>,
    server_closed: Pin<&'p mut WaitForCancellationFuture<'f>>,
    draining: Pin<&'p mut WaitForCancellationFuture<'f>>,
    readonly: Pin<&'p mut tokio::sync::futures::Notified<'f>>,
    quiet: Option<Pin<Box<Sleep>>>,
}

impl ReaderSignals<'_, '_> {
    /// The next signal, given where the connection's drain stands.
    async fn next(&mut self, drain: Drain, slots: &Semaphore, limit: u32) -> Signal {
        let quiet = async {
            match (&mut self.quiet, drain) {
                (Some(quiet), Drain::Told(_)) => quiet.as_mut().await,
                _ => std::future::pending().await,
            }
        };
        let idle = async {
            if drain == Drain::PeerDone {
                // Every slot free: nothing in flight on this connection.
                let _ = slots.acquire_many(limit).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = self.closed.as_mut() => Signal::Closed,
            _ = self.server_closed.as_mut() => Signal::ServerClosed,
            _ = self.draining.as_mut() => Signal::Drain,
            _ = self.readonly.as_mut(), if drain == Drain::Serving => Signal::ReadOnly,
            _ = quiet => Signal::Quiet,
            _ = idle => Signal::Idle,
        }
    }
}

/// Serves one native connection, reading `read` and writing `write` (the
/// halves of any transport: TCP's owned halves, `tokio::io::split` of
/// anything else), until it closes: the peer closes it or sends an unreadable
/// stream, a heartbeat finds it silent, or the server's shutdown drains or
/// closes it. `peer` is the caller's address, given to every invocation.
pub(crate) async fn serve<R, W>(read: R, write: W, peer: SocketAddr, server: Arc<ServerShared>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ConnShared::new(peer.to_string()));
    let (tx, rx) = mpsc::channel(QUEUE);
    let heartbeat = server.config.heartbeat;
    let writer = {
        let conn = conn.clone();
        tokio::spawn(async move {
            run_writer(write, rx, &conn, heartbeat).await;
        })
    };
    let mut frames = FramedRead::new(read, FrameCodec::new(server.config.max_payload));
    let limit = server
        .config
        .max_in_flight_per_connection
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(limit));
    let mut drain = Drain::Serving;
    // The signals are waited on by futures made once, not once per frame: each
    // new one would register with (and leave) its notifier under a lock.
    let closed = conn.close.cancelled();
    let server_closed = server.shutdown.closing();
    let draining = server.shutdown.draining();
    let readonly = server.shutdown.leaving_changed();
    tokio::pin!(closed, server_closed, draining, readonly);
    // Registered before the flag is read below, so no change is missed.
    readonly.as_mut().enable();
    let mut watch = ReaderSignals {
        closed,
        server_closed,
        draining,
        readonly,
        quiet: None,
    };
    // Acts on a signal; false when the connection must stop.
    let on_signal = |signal: Signal, drain: &mut Drain| -> bool {
        match signal {
            Signal::Closed => false,
            Signal::ServerClosed => {
                conn.close("server closed");
                false
            }
            Signal::Drain | Signal::Idle => {
                conn.drain.cancel();
                false
            }
            Signal::ReadOnly => true,
            Signal::Quiet => {
                *drain = Drain::PeerDone;
                true
            }
        }
    };
    'read: loop {
        if drain == Drain::Serving && server.shutdown.is_leaving() {
            drain = Drain::Telling;
        }
        // Room for one answer before reading a frame: reading pauses while the
        // send queue is full, and an answer the reader sends is never dropped.
        let room = match tx.try_reserve() {
            Ok(room) => room,
            Err(mpsc::error::TrySendError::Closed(())) => break,
            Err(mpsc::error::TrySendError::Full(())) => tokio::select! {
                biased;
                room = tx.reserve() => match room {
                    Ok(room) => room,
                    Err(_) => break,
                },
                signal = watch.next(drain, &slots, limit as u32) => {
                    if on_signal(signal, &mut drain) { continue } else { break }
                }
            },
        };
        if drain == Drain::Telling {
            // Two-way: the peer's answer comes after every request it sent before.
            let event = conn.event_request(true);
            let id = u64::from_be_bytes(event.header[4..12].try_into().unwrap_or_default());
            room.send(event);
            drain = Drain::Told(id);
            watch.quiet = Some(Box::pin(tokio::time::sleep(server.config.shutdown_quiet)));
            continue;
        }
        // Frames first: under load the signals are polled only when the socket
        // has nothing more (the socket's cooperative budget bounds the wait).
        let item = tokio::select! {
            biased;
            item = frames.next() => item,
            signal = watch.next(drain, &slots, limit as u32) => {
                if on_signal(signal, &mut drain) { continue } else { break }
            }
        };
        let decoded = match item {
            Some(Ok(decoded)) => decoded,
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection: unreadable stream");
                conn.close(e.to_string());
                break;
            }
            None => {
                conn.close("client closed the connection");
                break;
            }
        };
        conn.touch();
        let (header, body) = match on_frame(&server, &conn, decoded) {
            Incoming::Answer(frame) => {
                room.send(frame);
                continue;
            }
            Incoming::Nothing => continue,
            Incoming::Answered(id) => {
                if drain == Drain::Told(id) {
                    drain = Drain::PeerDone;
                }
                continue;
            }
            Incoming::Request(header, body) => (header, body),
        };
        if let (Drain::Told(_), Some(quiet)) = (drain, watch.quiet.as_mut()) {
            quiet.as_mut().reset(Instant::now() + server.config.shutdown_quiet);
        }
        // A slot for the request: reading pauses while the connection has its
        // limit in flight.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Counted as queued while it waits.
                let _queued = server.queued.enter();
                loop {
                    tokio::select! {
                        biased;
                        slot = slots.clone().acquire_owned() => match slot {
                            Ok(slot) => break slot,
                            Err(_) => break 'read,
                        },
                        signal = watch.next(drain, &slots, limit as u32) => {
                            if !on_signal(signal, &mut drain) {
                                break 'read;
                            }
                        }
                    }
                }
            }
        };
        start_request(&server, peer, &tx, room, slot, header, body);
    }
    drop(tx);
    let _ = writer.await;
    tracing::debug!(%peer, reason = %conn.reason(), "connection closed");
}

/// What the reader does with a frame.
enum Incoming {
    /// Send this answer.
    Answer(OutFrame),
    /// Nothing to do.
    Nothing,
    /// The peer answered our event request with this id.
    Answered(u64),
    /// A request to run.
    Request(Header, Bytes),
}

fn on_frame(server: &ServerShared, conn: &ConnShared, decoded: Decoded) -> Incoming {
    let (header, body) = match decoded {
        Decoded::Frame(header, body) => (header, body),
        Decoded::Oversized(header) => {
            tracing::warn!(peer = %conn.peer, id = header.id, len = header.body_len, "refusing an oversized frame");
            if header.is_request() && header.is_two_way() && !header.is_event() {
                let message = format!(
                    "request body of {} bytes exceeds the payload limit of {} bytes",
                    header.body_len, server.config.max_payload
                );
                return refusal(&header, Status::BadRequest, &message);
            }
            return Incoming::Nothing;
        }
    };
    let dubbo = header.serialization_id() == dubbo::HESSIAN2_ID;
    if dubbo {
        conn.set_dubbo();
    }
    if header.is_event() {
        return match (header.is_request(), header.is_two_way()) {
            (true, true) if dubbo => Incoming::Answer(dubbo::event_frame(header.id, false, false, dubbo::NULL_BODY)),
            (true, true) => Incoming::Answer(OutFrame::event(header.id, false, false, b"")),
            (true, false) => Incoming::Nothing,
            // Answers to our heartbeats and to the read-only event.
            (false, _) => Incoming::Answered(header.id),
        };
    }
    if !header.is_request() {
        return Incoming::Nothing;
    }
    Incoming::Request(header, body)
}

/// Starts a request, answering with `room` when it is refused or answered at once.
fn start_request(
    server: &Arc<ServerShared>,
    peer: SocketAddr,
    tx: &mpsc::Sender<OutFrame>,
    room: Permit<'_, OutFrame>,
    slot: OwnedSemaphorePermit,
    header: Header,
    body: Bytes,
) {
    let answer = |room: Permit<'_, OutFrame>, incoming: Incoming| {
        if let Incoming::Answer(frame) = incoming {
            room.send(frame);
        }
    };
    let request = if header.serialization_id() == dubbo::HESSIAN2_ID {
        parse_dubbo(&body)
    } else {
        parse_native(&header, &body)
    };
    let request = match request {
        Ok(request) => request,
        Err((status, message)) => {
            tracing::debug!(id = header.id, "refused: {message}");
            return answer(room, refusal(&header, status, &message));
        }
    };
    let wire = request.wire;
    let (version, group) = (request.version.as_deref(), request.group.as_deref());
    let exported = server.dispatcher.exported(&request.service, version, group);
    let key = match exported {
        Some((key, _)) => key.clone(),
        None => ServiceKey::new(&request.service, version, group),
    };
    let guard = match server.admit(&key, &request.method) {
        Ok(guard) => guard,
        Err(error) => return answer(room, refusal(&header, Status::ServerOverloaded, error.message())),
    };
    // The generated descriptor's name when the method exists: no copy per call.
    let method: MethodName = exported
        .and_then(|(_, service)| service.descriptor().methods.iter().find(|m| m.name == request.method))
        .map_or_else(
            || MethodName::from(request.method.clone().into_owned()),
            |m| m.name.into(),
        );
    let mut invocation = Invocation::new(key, method, request.args, request.serialization);
    if let Some(ms) = request.timeout_ms {
        let now = Instant::now();
        invocation.set_started(Some(now));
        invocation.set_deadline(Some(now + Duration::from_millis(ms)));
    }
    invocation.set_attachments(request.attachments);
    invocation.set_remote_address(Some(peer));
    let mut running = match exported {
        Some((_, service)) => Dispatcher::start_on(service, invocation),
        // Not exported as asked: the dispatcher matches wildcards, or explains.
        None => server.dispatcher.start(invocation),
    };
    if server.config.dispatch == Dispatch::Inline
        && let Some(result) = running.poll_once()
    {
        // Answered without waiting: no task, no timer.
        if let Some(frame) = response_frame(&header, wire, result) {
            room.send(frame);
        }
        return;
    }
    drop(room);
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = running.finish().await;
        if let Some(frame) = response_frame(&header, wire, result) {
            let _ = enqueue(&tx, frame).await;
        }
        // Released once the answer is queued: a drained connection has every answer queued.
        drop((guard, slot));
    });
}

/// Which protocol a request came by, and how to answer it.
#[derive(Clone, Copy, Debug)]
enum Wire {
    /// The native protocol.
    Native,
    /// `dubbo` (Hessian2); `attachments`: the caller reads response attachments.
    Dubbo { attachments: bool },
}

/// A request's names, deadline, attachments and arguments, whichever
/// protocol it came by.
struct Parsed<'a> {
    service: Cow<'a, str>,
    version: Option<Cow<'a, str>>,
    group: Option<Cow<'a, str>>,
    method: Cow<'a, str>,
    timeout_ms: Option<u64>,
    attachments: crate::invocation::Attachments,
    args: Bytes,
    serialization: Serialization,
    wire: Wire,
}

/// A native request, or the status and message of its refusal.
fn parse_native<'a>(header: &Header, body: &'a Bytes) -> Result<Parsed<'a>, (Status, String)> {
    let Some(serialization) =
        Serialization::from_id(header.serialization_id()).filter(|s| Serialization::ALL.contains(s))
    else {
        let message = format!(
            "unsupported serialization id {} (this provider speaks {}, and dubbo's hessian2 = 2)",
            header.serialization_id(),
            Serialization::ALL
                .map(|s| format!("{} = {}", s.name(), s.id()))
                .join(", ")
        );
        return Err((Status::SerializationError, message));
    };
    let (meta, args) = split_request(serialization, body).map_err(|message| (Status::BadRequest, message))?;
    Ok(Parsed {
        service: meta.service,
        version: meta.version,
        group: meta.group,
        method: meta.method,
        timeout_ms: meta.timeout_ms,
        attachments: meta.attachments.into_owned(),
        args,
        serialization,
        wire: Wire::Native,
    })
}

/// A `dubbo` request, or the status and message of its refusal.
fn parse_dubbo(body: &Bytes) -> Result<Parsed<'static>, (Status, String)> {
    let request = dubbo::DubboRequest::decode(body)
        .map_err(|message| (Status::BadRequest, format!("malformed dubbo request: {message}")))?;
    let mut attachments = crate::invocation::Attachments::default();
    for (key, value) in &request.attachments {
        if !matches!(key.as_str(), "path" | "interface" | "version" | "group" | "timeout") {
            attachments.insert(key.clone(), value.clone());
        }
    }
    Ok(Parsed {
        version: request.service_version().map(|v| Cow::Owned(v.to_owned())),
        group: request.group().map(|g| Cow::Owned(g.to_owned())),
        timeout_ms: request.timeout().map(|t| t.as_millis() as u64),
        wire: Wire::Dubbo {
            attachments: request.wants_response_attachments(),
        },
        attachments,
        service: Cow::Owned(request.path),
        method: Cow::Owned(request.method),
        args: request.args,
        serialization: Serialization::Hessian2,
    })
}

/// The answer to send for `result`, if the request wants one.
fn response_frame(
    header: &Header,
    wire: Wire,
    result: Result<crate::response::Response, RpcError>,
) -> Option<OutFrame> {
    if !header.is_two_way() {
        return None;
    }
    if let Wire::Dubbo { attachments } = wire {
        return Some(match result {
            Ok(response) => dubbo::ok_response(header.id, response.into_payload(), attachments),
            Err(error) => {
                let status = error.status().unwrap_or(Status::ServerError);
                dubbo::error_response(header.id, status, &error.to_string())
            }
        });
    }
    Some(match result {
        Ok(response) => OutFrame::response(
            header.id,
            Status::Ok,
            header.serialization_id(),
            response.into_payload(),
        ),
        Err(error) => error_frame(header, &error),
    })
}

fn error_frame(header: &Header, error: &RpcError) -> OutFrame {
    let status = error.status().unwrap_or(Status::ServerError);
    let message = error.message().to_string();
    OutFrame::response(header.id, status, header.serialization_id(), Bytes::from(message))
}

/// The refusal of a request with `status`, if it wants an answer.
fn refusal(header: &Header, status: Status, message: &str) -> Incoming {
    if !header.is_two_way() {
        return Incoming::Nothing;
    }
    // A Dubbo peer decodes the message with the serialization it asked for;
    // answer hessian2 (id 2) in kind, everything else as UTF-8.
    let body = if header.serialization_id() == 2 {
        hessian2_string(message)
    } else {
        Bytes::from(message.to_string())
    };
    Incoming::Answer(OutFrame::response(header.id, status, header.serialization_id(), body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DEFAULT_MAX_PAYLOAD;
    use crate::protocol::rpc::frame::{FLAG_REQUEST, FLAG_TWO_WAY, READONLY_EVENT, RequestMeta};
    use crate::protocol::server::ServerConfig;
    use crate::protocol::server::testing::{self, SERVICE, VERSION};
    use bytes::BytesMut;
    use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
    use tokio::task::JoinHandle;

    /// The caller's address the tests hand the connection.
    const PEER: &str = "192.0.2.1:40000";
    /// The bound on every wait for the server.
    const WAIT: Duration = Duration::from_secs(5);
    /// The flag of a two-way bincode request.
    const FLAG_REQUEST_TWO_WAY: u8 = FLAG_REQUEST | FLAG_TWO_WAY | 30;

    /// A consumer's end of a native connection served over `duplex`, writing
    /// frames by hand.
    struct Client {
        frames: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
        write: WriteHalf<DuplexStream>,
        served: JoinHandle<()>,
    }

    fn connect(server: &Arc<ServerShared>) -> Client {
        let (client, io) = tokio::io::duplex(64 * 1024);
        let (read, write) = tokio::io::split(io);
        let served = tokio::spawn(serve(read, write, PEER.parse().unwrap(), server.clone()));
        let (read, write) = tokio::io::split(client);
        Client {
            frames: FramedRead::new(read, FrameCodec::new(DEFAULT_MAX_PAYLOAD)),
            write,
            served,
        }
    }

    impl Client {
        async fn send_bytes(&mut self, bytes: &[u8]) {
            self.write.write_all(bytes).await.unwrap();
        }

        async fn send(&mut self, frame: OutFrame) {
            let mut buf = BytesMut::new();
            frame.write_to(&mut buf);
            self.send_bytes(&buf).await;
        }

        /// The next frame the server sends, within [`WAIT`].
        async fn next(&mut self) -> (Header, Bytes) {
            match tokio::time::timeout(WAIT, self.frames.next()).await {
                Ok(Some(Ok(Decoded::Frame(header, body)))) => (header, body),
                other => panic!("expected a frame, got {other:?}"),
            }
        }

        /// Sends a two-way bincode request and returns the answer's status and body.
        async fn call(&mut self, id: u64, meta: &RequestMeta<'_>, args: Bytes) -> (Status, Bytes) {
            self.send(OutFrame::request(id, true, Serialization::Bincode, meta, args).unwrap())
                .await;
            let (header, body) = self.next().await;
            assert!(!header.is_event() && !header.is_request(), "{header:?}");
            assert_eq!(header.id, id);
            (Status::from_code(header.status), body)
        }

        /// Expects the server to close the connection within `within`
        /// (sending nothing but heartbeats before), and its connection task to
        /// end. Returns the heartbeats it sent.
        async fn expect_closed(mut self, within: Duration) -> usize {
            let deadline = Instant::now() + within;
            let mut heartbeats = 0;
            loop {
                match tokio::time::timeout_at(deadline, self.frames.next()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(Decoded::Frame(h, body)))) if h.is_event() && h.is_request() && body.is_empty() => {
                        heartbeats += 1;
                    }
                    other => panic!("expected the connection to close, got {other:?}"),
                }
            }
            tokio::time::timeout(WAIT, self.served).await.unwrap().unwrap();
            heartbeats
        }
    }

    fn meta<'a>(service: &'a str, method: &'a str) -> RequestMeta<'a> {
        RequestMeta {
            service: service.into(),
            version: Some(VERSION.into()),
            group: None,
            method: method.into(),
            timeout_ms: Some(5_000),
            attachments: Default::default(),
        }
    }

    fn args(value: &str) -> Bytes {
        Serialization::Bincode.encode(&(value,)).unwrap()
    }

    #[test]
    fn a_native_handshake_ends_with_the_frame_header() {
        let mut greeting = RpcServerSide.greeting();
        assert!(!greeting.complete_after(&[0xda; 5]));
        assert!(!greeting.complete_after(&[0xbb; 10]));
        assert!(greeting.complete_after(&[0; 1]));
        assert!(RpcServerSide.claims(0xda));
        assert!(!RpcServerSide.claims(b'P'));
    }

    #[tokio::test]
    async fn a_request_is_answered_and_its_invocation_carries_the_callers_address() {
        let (server, _) = testing::shared(ServerConfig::default());
        let mut client = connect(&server);
        let (status, body) = client.call(1, &meta(SERVICE, "echo"), args("hello")).await;
        assert_eq!(status, Status::Ok, "{}", String::from_utf8_lossy(&body));
        assert_eq!(body, args("hello"));
        let (status, body) = client.call(2, &meta(SERVICE, "peer"), args("")).await;
        assert_eq!(status, Status::Ok);
        let peer: Option<String> = Serialization::Bincode.decode(&body).unwrap();
        assert_eq!(peer.as_deref(), Some(PEER));
    }

    /// A `dubbo` request frame to the test service.
    fn dubbo_request(id: u64, service: &str, version: Option<&str>, method: &str) -> OutFrame {
        let body = dubbo::request_body(service, version, method, "", b"", &[("timeout", "5000")]).unwrap();
        dubbo::request_frame(id, true, body.freeze())
    }

    fn hessian_string(body: &[u8]) -> String {
        rpc_hessian::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn dubbo_requests_share_the_port_and_are_answered_in_dubbos_form() {
        let (server, _) = testing::shared(ServerConfig::default());
        let mut client = connect(&server);
        // Java Dubbo's real request, for a service this server does not export.
        client
            .send_bytes(include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/java/captures/dubbo-sayHello-request.bin"
            )))
            .await;
        let (header, body) = client.next().await;
        assert_eq!((header.serialization_id(), header.flag & FLAG_REQUEST), (2, 0));
        assert_eq!(Status::from_code(header.status), Status::ServiceNotFound);
        let message = hessian_string(&body);
        assert!(message.contains("org.example.Greeter:1.0.0"), "{message}");

        // An exported method: Dubbo's reply flag 4 (value + attachments).
        client.send(dubbo_request(7, SERVICE, Some(VERSION), "peer")).await;
        let (header, body) = client.next().await;
        assert_eq!(
            (header.id, Status::from_code(header.status)),
            (7, Status::Ok),
            "{body:?}"
        );
        let peer: String = crate::hessian2::decode_reply(&body).unwrap();
        assert_eq!(peer, PEER);
        assert_eq!(body[0], 0x94);
        assert!(body.ends_with(b"H\x05dubbo\x052.0.2Z"));

        // A wrong version and an unknown method: status 60 with a message.
        client.send(dubbo_request(8, SERVICE, Some("9.9.9"), "peer")).await;
        let (header, body) = client.next().await;
        assert_eq!(Status::from_code(header.status), Status::ServiceNotFound);
        assert!(hessian_string(&body).contains("9.9.9"), "{}", hessian_string(&body));
        client.send(dubbo_request(9, SERVICE, Some(VERSION), "nope")).await;
        let (header, body) = client.next().await;
        assert_eq!(Status::from_code(header.status), Status::ServiceNotFound);
        assert!(hessian_string(&body).contains("nope"), "{}", hessian_string(&body));

        // A malformed body: status 40, and the connection stays.
        let bad = dubbo::request_frame(10, true, Bytes::from_static(b"\x052.0.2\x30"));
        client.send(bad).await;
        let (header, body) = client.next().await;
        assert_eq!((header.id, Status::from_code(header.status)), (10, Status::BadRequest));
        assert!(hessian_string(&body).contains("malformed dubbo request"));

        // Java's heartbeat: a two-way event with a null body, answered in kind.
        client.send(dubbo::event_frame(11, true, true, dubbo::NULL_BODY)).await;
        let (header, body) = client.next().await;
        assert_eq!((header.id, header.flag, &body[..]), (11, 0x22, &b"N"[..]));

        // The native protocol still works on the same connection.
        let (status, _) = client.call(12, &meta(SERVICE, "echo"), args("x")).await;
        assert_eq!(status, Status::Ok);
    }

    #[tokio::test]
    async fn an_unknown_service_is_answered_with_its_status_and_the_connection_stays() {
        let (server, _) = testing::shared(ServerConfig::default());
        let mut client = connect(&server);
        let (status, body) = client.call(1, &meta("test.Missing", "echo"), args("x")).await;
        assert_eq!(status, Status::ServiceNotFound);
        let message = String::from_utf8_lossy(&body);
        assert!(
            message.contains("test.Missing:1.0.0") && message.contains("not exported"),
            "{message}"
        );
        let (status, _) = client.call(2, &meta(SERVICE, "nope"), args("x")).await;
        assert_eq!(status, Status::ServiceNotFound);
        let (status, body) = client.call(3, &meta(SERVICE, "echo"), args("still")).await;
        assert_eq!((status, body), (Status::Ok, args("still")));
    }

    #[tokio::test]
    async fn a_malformed_header_closes_the_connection() {
        let (server, _) = testing::shared(ServerConfig::default());
        let mut client = connect(&server);
        let mut header = Header {
            flag: FLAG_REQUEST_TWO_WAY,
            status: 0,
            id: 1,
            body_len: 0,
        }
        .to_bytes();
        header[0] = 0xde;
        client.send_bytes(&header).await;
        client.expect_closed(WAIT).await;
    }

    #[tokio::test]
    async fn bad_frames_with_a_request_id_are_answered_and_the_connection_stays() {
        let (server, _) = testing::shared(ServerConfig {
            max_payload: 1024,
            ..ServerConfig::default()
        });
        let mut client = connect(&server);
        // Over the payload limit: skipped unread, answered 40.
        let big = Bytes::from(vec![7u8; 4096]);
        let (status, body) = client.call(1, &meta(SERVICE, "echo"), big).await;
        assert_eq!(status, Status::BadRequest);
        assert!(String::from_utf8_lossy(&body).contains("payload limit of 1024 bytes"));
        // A body that is no request: answered 40.
        let garbage = Header {
            flag: FLAG_REQUEST_TWO_WAY,
            status: 0,
            id: 2,
            body_len: 3,
        };
        let mut buf = BytesMut::new();
        garbage.write(&mut buf);
        buf.extend_from_slice(b"abc");
        client.send_bytes(&buf).await;
        let (header, _) = client.next().await;
        assert_eq!((header.id, Status::from_code(header.status)), (2, Status::BadRequest));
        // A serialization nobody speaks here (Dubbo's kryo, id 8): its own
        // status and a message.
        let hessian = Header {
            flag: FLAG_REQUEST | FLAG_TWO_WAY | 8,
            status: 0,
            id: 3,
            body_len: 1,
        };
        let mut buf = BytesMut::new();
        hessian.write(&mut buf);
        buf.extend_from_slice(b"x");
        client.send_bytes(&buf).await;
        let (header, body) = client.next().await;
        assert_eq!(
            (header.id, Status::from_code(header.status)),
            (3, Status::SerializationError)
        );
        assert!(String::from_utf8_lossy(&body).contains("unsupported serialization id 8"));
        let (status, body) = client.call(4, &meta(SERVICE, "echo"), args("still")).await;
        assert_eq!((status, body), (Status::Ok, args("still")));
    }

    #[tokio::test]
    async fn calls_beyond_the_servers_limit_are_refused_unrun() {
        let (server, service) = testing::shared(ServerConfig {
            max_in_flight: 1,
            ..ServerConfig::default()
        });
        let mut client = connect(&server);
        client
            .send(OutFrame::request(1, true, Serialization::Bincode, &meta(SERVICE, "wait"), args("")).unwrap())
            .await;
        let (status, body) = client.call(2, &meta(SERVICE, "echo"), args("x")).await;
        assert_eq!(status, Status::ServerOverloaded);
        let message = String::from_utf8_lossy(&body);
        assert!(
            message.contains("1 calls in flight") && message.contains("`echo` was not run"),
            "{message}"
        );
        service.release(1);
        let (header, _) = client.next().await;
        assert_eq!((header.id, Status::from_code(header.status)), (1, Status::Ok));
        let (status, _) = client.call(3, &meta(SERVICE, "echo"), args("x")).await;
        assert_eq!(status, Status::Ok);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_are_answered_sent_when_the_peer_is_silent_and_silence_closes() {
        let heartbeat = Duration::from_secs(1);
        let (server, _) = testing::shared(ServerConfig {
            heartbeat,
            ..ServerConfig::default()
        });
        let mut client = connect(&server);
        client.send(OutFrame::event(7, true, true, b"")).await;
        let (header, body) = client.next().await;
        assert!(header.is_event() && !header.is_request(), "{header:?}");
        assert_eq!((header.id, body.len()), (7, 0));
        // Silent from now on: the server asks, and then gives up.
        let silent_since = Instant::now();
        let (header, _) = client.next().await;
        assert!(
            header.is_event() && header.is_request() && header.is_two_way(),
            "{header:?}"
        );
        assert!(silent_since.elapsed() >= heartbeat);
        // Another heartbeat, unanswered, and then the close.
        assert_eq!(client.expect_closed(WAIT).await, 1);
        let silent = silent_since.elapsed();
        assert!(silent >= heartbeat * 3 && silent <= heartbeat * 4, "{silent:?}");
    }

    /// Reads the read-only event the server sends when it starts leaving.
    /// To a `dubbo` peer (Java), the server's own events are Dubbo's: id 2
    /// and Hessian bodies (`N` for a heartbeat, `"R"` for read-only), which
    /// Java decodes; our serialization ids it would refuse.
    #[tokio::test(start_paused = true)]
    async fn a_dubbo_peer_gets_heartbeats_and_the_readonly_event_in_dubbos_form() {
        let heartbeat = Duration::from_secs(1);
        let (server, _) = testing::shared(ServerConfig {
            heartbeat,
            ..ServerConfig::default()
        });
        let mut client = connect(&server);
        client.send(dubbo::event_frame(7, true, true, dubbo::NULL_BODY)).await;
        let (header, body) = client.next().await;
        assert_eq!((header.id, header.flag, &body[..]), (7, 0x22, &b"N"[..]));
        // Silent: the server's heartbeat, in Dubbo's form.
        let (header, body) = client.next().await;
        assert_eq!((header.flag, &body[..]), (0xe2, &b"N"[..]), "{header:?}");
        client
            .send(dubbo::event_frame(header.id, false, false, dubbo::NULL_BODY))
            .await;
        server.shutdown.start_leaving();
        let (header, body) = client.next().await;
        assert_eq!((header.flag, &body[..]), (0xe2, dubbo::READONLY_BODY), "{header:?}");
        let told: String = rpc_hessian::from_slice(&body).unwrap();
        assert_eq!(told, "R");
        // Java never answers it: closed once quiet.
        client.expect_closed(WAIT).await;
    }

    async fn expect_readonly_event(client: &mut Client) -> u64 {
        let (header, body) = client.next().await;
        assert!(
            header.is_event() && header.is_request() && header.is_two_way(),
            "{header:?}"
        );
        assert_eq!(&body[..], READONLY_EVENT);
        header.id
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_the_readonly_event_and_closes_once_the_peer_answered_and_nothing_runs() {
        let (server, service) = testing::shared(ServerConfig::default());
        let mut client = connect(&server);
        client
            .send(OutFrame::request(1, true, Serialization::Bincode, &meta(SERVICE, "wait"), args("")).unwrap())
            .await;
        // Answered after the wait started: the wait is in flight.
        assert_eq!(client.call(2, &meta(SERVICE, "echo"), args("a")).await.0, Status::Ok);
        server.shutdown.start_leaving();
        let event = expect_readonly_event(&mut client).await;
        // Sent before the consumer read the event: runs as usual.
        assert_eq!(client.call(3, &meta(SERVICE, "echo"), args("b")).await.0, Status::Ok);
        client.send(OutFrame::event(event, false, false, b"")).await;
        // The peer is done, but a call is in flight: the connection stays,
        // well past the quiet period.
        let quiet = ServerConfig::default().shutdown_quiet;
        assert!(
            tokio::time::timeout(quiet * 5, client.frames.next()).await.is_err(),
            "the connection must stay open while a call runs"
        );
        service.release(1);
        let (header, _) = client.next().await;
        assert_eq!((header.id, Status::from_code(header.status)), (1, Status::Ok));
        client.expect_closed(WAIT).await;
        assert_eq!(server.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_the_event_is_closed_after_the_quiet_period() {
        let quiet = Duration::from_secs(1);
        let (server, _) = testing::shared(ServerConfig {
            shutdown_quiet: quiet,
            ..ServerConfig::default()
        });
        let mut client = connect(&server);
        server.shutdown.start_leaving();
        expect_readonly_event(&mut client).await;
        let told = Instant::now();
        // A request restarts the quiet period.
        tokio::time::sleep(quiet / 2).await;
        assert_eq!(client.call(1, &meta(SERVICE, "echo"), args("a")).await.0, Status::Ok);
        client.expect_closed(WAIT).await;
        let waited = told.elapsed();
        assert!(waited >= quiet + quiet / 2 && waited < quiet * 2, "{waited:?}");
    }
}
