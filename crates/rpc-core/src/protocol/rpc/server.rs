//! The provider side: [`Server`] accepts connections and dispatches requests.
//!
//! What a server guarantees, whatever its clients do:
//!
//! * **Bounded work.** A native connection has at most
//!   [`ServerConfig::max_in_flight_per_connection`] requests in flight; while
//!   it has that many, or while its send queue is full (a client that does not
//!   read its replies), the server reads nothing more from it, so the client
//!   meets TCP back-pressure instead of the server buffering without bound.
//!   Over all connections and both protocols at most
//!   [`ServerConfig::max_in_flight`] requests run; more are refused at once
//!   with [`Status::ServerOverloaded`], their handlers not run. Every answer
//!   the reader sends (refusals, event answers) has its room in the send queue
//!   reserved before the request is read, so none is ever dropped.
//! * **Graceful shutdown loses nothing** ([`ServerHandle::shutdown`]): the
//!   listener closes first, every native connection gets the read-only event,
//!   and requests that still arrive on existing connections run. A connection
//!   closes once nothing is in flight on it and nothing more can come: its peer
//!   answered the (two-way) read-only event, which it sends after everything it
//!   sent before, or, for peers that never answer it, it stayed silent for
//!   [`ServerConfig::shutdown_quiet`]. The grace period bounds it all.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, Permit};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::FramedRead;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::DEFAULT_HEARTBEAT;
use super::conn::{ConnShared, QUEUE, enqueue, run_writer};
use super::frame::{
    DEFAULT_MAX_PAYLOAD, Decoded, FrameCodec, Header, OutFrame, READONLY_EVENT, hessian2_string, split_request_view,
};
use crate::dispatch::Dispatcher;
use crate::error::{RpcError, Status};
use crate::invocation::{Invocation, MethodName, ServiceKey};
use crate::serialization::Serialization;

/// Settings of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted (default 8 MiB); larger ones get
    /// [`Status::BadRequest`] and the connection stays open.
    pub max_payload: usize,
    /// Heartbeat interval; a client silent for three is disconnected (default 30 s).
    pub heartbeat: Duration,
    /// Most connections served at once; further ones are closed at accept (default 10,000).
    pub max_connections: usize,
    /// Where requests run (default [`Dispatch::Auto`]).
    pub dispatch: Dispatch,
    /// Most requests in flight on one native connection (default 1,024, the
    /// number of concurrent streams a `tri` connection allows). While a
    /// connection has this many, the server reads nothing more from it: the
    /// client meets TCP back-pressure, and nothing is refused.
    pub max_in_flight_per_connection: usize,
    /// Most requests in flight in the whole server, over every connection and
    /// both protocols (default 10,000). Beyond it a request is refused at once
    /// without running its handler: status 100 ([`Status::ServerOverloaded`])
    /// on the native protocol, `RESOURCE_EXHAUSTED` on `tri`. Callers see a
    /// not-sent outcome and may try another provider.
    pub max_in_flight: usize,
    /// Once a connection's first byte has arrived, how long the rest of its
    /// first native frame header, HTTP/2 preface or HTTP/1 request head may
    /// take (default 5 s); a client that stalls in the middle is disconnected.
    /// A connection that has sent nothing is not cut by this: consumers connect
    /// when a reference is built and may stay silent until their first call;
    /// idle connections are governed by heartbeats.
    pub handshake_timeout: Duration,
    /// Graceful shutdown: how long a connection whose peer does not answer the
    /// read-only event (Java Dubbo, older clients) must go without sending a
    /// request, with nothing in flight, before it counts as drained and closes
    /// (default 1 s: requests already on the wire when such a peer read the
    /// event arrive within a round trip). Peers that answer the event, as
    /// this crate's consumers do, are closed as soon as their calls are done.
    /// [`ServerHandle::shutdown`]'s grace period bounds both.
    pub shutdown_quiet: Duration,
}

/// Where a server runs the requests it reads: Dubbo's `dispatcher` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// [`Inline`](Dispatch::Inline) on a runtime with one worker thread,
    /// where a task per request buys no parallelism;
    /// [`Spawn`](Dispatch::Spawn) otherwise.
    #[default]
    Auto,
    /// Run each request on its connection's task until the handler first
    /// waits, and give it a task of its own only then (Dubbo's `direct`).
    /// Handlers that answer without waiting cost no task at all, which makes
    /// this the fastest; but one that computes for long before it first
    /// waits holds up the requests behind it on the same connection.
    Inline,
    /// Give every request a task of its own (Dubbo's default, `all`), so the
    /// requests of one connection spread over every worker thread.
    Spawn,
}

impl Dispatch {
    /// `Auto` resolved for the current runtime.
    fn resolve(self) -> Dispatch {
        match self {
            Dispatch::Auto => match tokio::runtime::Handle::try_current() {
                Ok(handle) if handle.metrics().num_workers() <= 1 => Dispatch::Inline,
                _ => Dispatch::Spawn,
            },
            other => other,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_payload: DEFAULT_MAX_PAYLOAD,
            heartbeat: DEFAULT_HEARTBEAT,
            max_connections: 10_000,
            dispatch: Dispatch::Auto,
            max_in_flight_per_connection: 1024,
            max_in_flight: 10_000,
            handshake_timeout: Duration::from_secs(5),
            shutdown_quiet: Duration::from_secs(1),
        }
    }
}

/// A native-protocol server for the services of a [`Dispatcher`].
#[derive(Debug)]
pub struct Server {
    dispatcher: Dispatcher,
    config: ServerConfig,
}

/// Counts things and wakes waiters when the count reaches zero.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    count: AtomicUsize,
    zero: Notify,
}

impl Gauge {
    pub(crate) fn enter(self: &Arc<Self>) -> GaugeGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        GaugeGuard(self.clone())
    }

    /// Enters unless `limit` things are counted already.
    pub(crate) fn try_enter(self: &Arc<Self>, limit: usize) -> Option<GaugeGuard> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| GaugeGuard(self.clone()))
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
pub(crate) struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// State shared by a server's connections, whichever protocol they speak.
#[derive(Debug)]
pub(crate) struct ServerShared {
    pub(crate) dispatcher: Dispatcher,
    pub(crate) config: ServerConfig,
    connections: Arc<Gauge>,
    pub(crate) in_flight: Arc<Gauge>,
    /// Stop accepting.
    stop_accepting: CancellationToken,
    /// Shutting down: tell clients we are read-only and drain each connection.
    pub(crate) readonly: AtomicBool,
    pub(crate) readonly_changed: Notify,
    /// The grace period is over: flush and close every connection.
    pub(crate) drain: CancellationToken,
    /// Close every connection now.
    pub(crate) close: CancellationToken,
}

impl ServerShared {
    /// The refusal of a request when `max_in_flight` calls run already.
    pub(crate) fn overloaded(&self, key: &ServiceKey, method: &str) -> RpcError {
        RpcError::remote(
            Status::ServerOverloaded,
            format!(
                "provider at capacity: {} calls in flight (ServerConfig::max_in_flight); \
                 `{key}` method `{method}` was not run",
                self.config.max_in_flight
            ),
        )
        .with_service(key)
        .with_method(method)
    }
}

/// A running server: its address, its counters, and its shutdown.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<ServerShared>,
    accept_done: Arc<Gauge>,
}

impl Server {
    /// A server for `dispatcher`'s services.
    pub fn new(dispatcher: Dispatcher, config: ServerConfig) -> Self {
        Server { dispatcher, config }
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.serve(listener))
    }

    /// Serves on an already bound listener (within a tokio runtime, which
    /// resolves [`Dispatch::Auto`]).
    pub fn serve(self, listener: TcpListener) -> ServerHandle {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut config = self.config;
        config.dispatch = config.dispatch.resolve();
        let shared = Arc::new(ServerShared {
            dispatcher: self.dispatcher,
            config,
            connections: Arc::default(),
            in_flight: Arc::default(),
            stop_accepting: CancellationToken::new(),
            readonly: AtomicBool::new(false),
            readonly_changed: Notify::new(),
            drain: CancellationToken::new(),
            close: CancellationToken::new(),
        });
        let accept_done = Arc::new(Gauge::default());
        let guard = accept_done.enter();
        tokio::spawn(accept_loop(listener, shared.clone(), guard));
        ServerHandle {
            local_addr,
            shared,
            accept_done,
        }
    }
}

/// Accepts until told to stop; the listener closes when this returns.
async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>, _running: GaugeGuard) {
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            _ = shared.stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures = 0;
                if shared.connections.get() >= shared.config.max_connections {
                    tracing::warn!(%peer, limit = shared.config.max_connections, "connection limit reached; refusing");
                    drop(stream);
                    continue;
                }
                let guard = shared.connections.enter();
                tokio::spawn(serve_connection(stream, peer, shared.clone(), guard));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                failures += 1;
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10 * u64::from(failures.min(100)))).await;
            }
        }
    }
    tracing::debug!("stopped accepting");
}

/// First byte of a native frame (the magic `0xdabb`).
const NATIVE_MAGIC_HIGH: u8 = 0xda;

/// Resolves once the server is shutting down (at once if it is already).
async fn shutting_down(server: &ServerShared) {
    let notified = server.readonly_changed.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if !server.readonly.load(Ordering::Acquire) {
        notified.await;
    }
}

/// Serves one connection: the native protocol when it starts with Dubbo's
/// magic, Triple (HTTP/2 or HTTP/1.1) otherwise, so every port speaks both.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, server: Arc<ServerShared>, count: GaugeGuard) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let idle = server.config.heartbeat.saturating_mul(3);
    // A connection that has sent nothing yet when the server shuts down gets
    // the quiet period to start (its client may be about to send its first call).
    let quiet_after_shutdown = async {
        shutting_down(&server).await;
        tokio::time::sleep(server.config.shutdown_quiet).await;
    };
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(idle, stream.peek(&mut first)) => peeked,
        _ = server.close.cancelled() => return,
        _ = server.drain.cancelled() => return,
        _ = quiet_after_shutdown => {
            tracing::debug!(%peer, "closing a connection that sent nothing before the shutdown");
            return;
        }
    };
    let handshake = server.config.handshake_timeout;
    match peeked {
        Ok(Ok(1..)) if first[0] == NATIVE_MAGIC_HIGH => serve_native(stream, peer, server, count).await,
        Ok(Ok(1..)) => {
            let stream = Handshake::new(stream, first[0], handshake);
            crate::protocol::tri::server::serve_connection(stream, peer, server, count).await
        }
        Ok(Ok(_)) => tracing::debug!(%peer, "connection closed before sending anything"),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed before sending anything"),
        Err(_) => tracing::debug!(%peer, "closing a connection silent for three heartbeats"),
    }
}

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What completes a connection's handshake.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A native frame header: this many bytes.
    Native,
    /// The HTTP/2 preface, or an HTTP/1 request head (up to its blank line).
    Http {
        /// Bytes so far that match the HTTP/2 preface, while they all do.
        preface: usize,
        /// Bytes of `\r\n\r\n` matched at the end of what was read so far.
        blank_line: usize,
    },
}

/// A connection's reads, failed with [`std::io::ErrorKind::TimedOut`] when its
/// handshake (the first native frame header, the HTTP/2 preface or the first
/// HTTP/1 request head) has not fully arrived by a deadline set when its first
/// byte arrived. Once the handshake is complete it only passes reads (and
/// writes) through.
#[derive(Debug)]
pub(crate) struct Handshake<S> {
    io: S,
    expect: Expect,
    /// Bytes read so far, while the handshake is not complete.
    seen: usize,
    /// `None` once the handshake is complete.
    deadline: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl<S> Handshake<S> {
    fn new(io: S, first_byte: u8, limit: Duration) -> Self {
        let expect = if first_byte == NATIVE_MAGIC_HIGH {
            Expect::Native
        } else {
            Expect::Http {
                preface: 0,
                blank_line: 0,
            }
        };
        Handshake {
            io,
            expect,
            seen: 0,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            limit,
        }
    }

    /// Takes note of `bytes` read; true once the handshake is complete.
    fn complete_after(&mut self, bytes: &[u8]) -> bool {
        match &mut self.expect {
            Expect::Native => {
                self.seen += bytes.len();
                self.seen >= super::frame::HEADER_LEN
            }
            Expect::Http { preface, blank_line } => {
                for &byte in bytes {
                    if *preface == self.seen && H2_PREFACE.get(*preface) == Some(&byte) {
                        *preface += 1;
                        if *preface == H2_PREFACE.len() {
                            return true;
                        }
                    }
                    self.seen += 1;
                    *blank_line = match (byte, *blank_line) {
                        (b'\r', 0 | 2) => *blank_line + 1,
                        (b'\n', 1 | 3) => *blank_line + 1,
                        (b'\r', _) => 1,
                        _ => 0,
                    };
                    // The preface has a blank line of its own: only a head that
                    // is not the preface ends at one.
                    if *blank_line == 4 && *preface < self.seen {
                        return true;
                    }
                }
                false
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Handshake<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.deadline.is_none() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.complete_after(&buf.filled()[before..]) {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the connection's first {} did not arrive within {} ms of its first byte",
                        match this.expect {
                            Expect::Native => "frame header",
                            Expect::Http { .. } => "HTTP/2 preface or HTTP/1 request head",
                        },
                        this.limit.as_millis()
                    ),
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Handshake<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
struct Watch<'p, 'f> {
    closed: Pin<&'p mut WaitForCancellationFuture<'f>>,
    server_closed: Pin<&'p mut WaitForCancellationFuture<'f>>,
    draining: Pin<&'p mut WaitForCancellationFuture<'f>>,
    readonly: Pin<&'p mut tokio::sync::futures::Notified<'f>>,
    quiet: Option<Pin<Box<Sleep>>>,
}

impl Watch<'_, '_> {
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

async fn serve_native(stream: TcpStream, peer: SocketAddr, server: Arc<ServerShared>, _count: GaugeGuard) {
    let (read, write) = stream.into_split();
    let read = Handshake::new(read, NATIVE_MAGIC_HIGH, server.config.handshake_timeout);
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
    let server_closed = server.close.cancelled();
    let draining = server.drain.cancelled();
    let readonly = server.readonly_changed.notified();
    tokio::pin!(closed, server_closed, draining, readonly);
    // Registered before the flag is read below, so no change is missed.
    readonly.as_mut().enable();
    let mut watch = Watch {
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
        if drain == Drain::Serving && server.readonly.load(Ordering::Acquire) {
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
            let id = conn.next_event_id();
            room.send(OutFrame::event(id, true, true, READONLY_EVENT));
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
            Err(_) => loop {
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
            },
        };
        start_request(&server, &tx, room, slot, header, body);
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
    if header.is_event() {
        return match (header.is_request(), header.is_two_way()) {
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
    let Some(serialization) = Serialization::from_id(header.serialization_id()) else {
        let message = format!(
            "unsupported serialization id {} (this provider speaks {})",
            header.serialization_id(),
            Serialization::ALL
                .map(|s| format!("{} = {}", s.name(), s.id()))
                .join(", ")
        );
        tracing::debug!(id = header.id, "{message}");
        return answer(room, refusal(&header, Status::SerializationError, &message));
    };
    let (meta, args) = match split_request_view(serialization, &body) {
        Ok(parts) => parts,
        Err(message) => {
            tracing::debug!(id = header.id, "bad request: {message}");
            return answer(room, refusal(&header, Status::BadRequest, &message));
        }
    };
    let (version, group) = (meta.version.as_deref(), meta.group.as_deref());
    let exported = server.dispatcher.exported(&meta.service, version, group);
    let key = match exported {
        Some((key, _)) => key.clone(),
        None => ServiceKey::new(&meta.service, version, group),
    };
    let Some(guard) = server.in_flight.try_enter(server.config.max_in_flight) else {
        let error = server.overloaded(&key, &meta.method);
        return answer(room, refusal(&header, Status::ServerOverloaded, error.message()));
    };
    // The generated descriptor's name when the method exists: no copy per call.
    let method: MethodName = exported
        .and_then(|(_, handler)| handler.descriptor().methods.iter().find(|m| m.name == meta.method))
        .map_or_else(|| MethodName::from(meta.method.clone().into_owned()), |m| m.name.into());
    let mut invocation = Invocation::new(key, method, args, serialization);
    if let Some(ms) = meta.timeout_ms {
        invocation.set_deadline(Some(Instant::now() + Duration::from_millis(ms)));
    }
    invocation.set_attachments(meta.attachments);
    let mut running = match exported {
        Some((_, handler)) => Dispatcher::start_on(handler, invocation),
        // Not exported as asked: the dispatcher matches wildcards, or explains.
        None => server.dispatcher.start(invocation),
    };
    if server.config.dispatch == Dispatch::Inline
        && let Some(result) = running.poll_once()
    {
        // Answered without waiting: no task, no timer.
        if let Some(frame) = response_frame(&header, result) {
            room.send(frame);
        }
        return;
    }
    drop(room);
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = running.finish().await;
        if let Some(frame) = response_frame(&header, result) {
            let _ = enqueue(&tx, frame).await;
        }
        // Released once the answer is queued: a drained connection has every answer queued.
        drop((guard, slot));
    });
}

/// The answer to send for `result`, if the request wants one.
fn response_frame(header: &Header, result: Result<crate::service::Response, RpcError>) -> Option<OutFrame> {
    if !header.is_two_way() {
        return None;
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

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where this server runs requests ([`Dispatch::Auto`] resolved when it started).
    pub fn dispatch(&self) -> Dispatch {
        self.shared.config.dispatch
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.shared.connections.get()
    }

    /// Requests being handled.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.get()
    }

    /// The exported services.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }

    /// Graceful shutdown, losing no call that reached the server:
    ///
    /// 1. stop accepting and close the listener, so new connections are refused;
    /// 2. send every native connection the read-only event (two-way), and send
    ///    `tri` connections HTTP/2 GOAWAY (streams already opened finish);
    /// 3. keep running every request that still arrives on an existing
    ///    connection, until that connection is drained: nothing is in flight on
    ///    it and its peer answered the read-only event (so it sends nothing
    ///    more) or, for peers that never answer it, sent no request for
    ///    [`ServerConfig::shutdown_quiet`]; a drained connection's answers are
    ///    flushed, then it closes;
    /// 4. when `grace` runs out, flush and close whatever is left.
    ///
    /// Returns the number of calls still running when `grace` ran out.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let shared = &self.shared;
        let deadline = Instant::now() + grace;
        shared.stop_accepting.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.accept_done.wait_zero()).await;
        shared.readonly.store(true, Ordering::Release);
        shared.readonly_changed.notify_waiters();
        let drained = async {
            shared.connections.wait_zero().await;
            shared.in_flight.wait_zero().await;
        };
        if tokio::time::timeout_at(deadline, drained).await.is_ok() {
            return 0;
        }
        let abandoned = shared.in_flight.get();
        if abandoned > 0 {
            tracing::warn!(abandoned, "shutdown grace period over with calls still running");
        }
        shared.drain.cancel();
        // Give writers a moment to flush, then force-close what is left.
        let flush = Duration::from_millis(500).min(grace.max(Duration::from_millis(50)));
        if tokio::time::timeout(flush, shared.connections.wait_zero())
            .await
            .is_err()
        {
            shared.close.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.connections.wait_zero()).await;
        }
        abandoned
    }

    /// Closes every connection at once, failing in-flight calls on the clients.
    ///
    /// The listener is closed first, so a client reconnecting the moment its
    /// connection drops finds nothing listening instead of a connection that is
    /// accepted by the kernel and then reset.
    pub async fn abort(&self) {
        self.shared.stop_accepting.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.accept_done.wait_zero()).await;
        self.shared.close.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.connections.wait_zero()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// After which of `chunks` the handshake of a connection starting with `first` is complete.
    fn completed_after(first: u8, chunks: &[&[u8]]) -> Option<usize> {
        let (io, _) = tokio::io::duplex(1);
        let mut handshake = Handshake::new(io, first, Duration::from_secs(1));
        chunks.iter().position(|chunk| handshake.complete_after(chunk))
    }

    #[tokio::test]
    async fn handshakes_end_at_the_frame_header_the_preface_or_the_blank_line() {
        let header = [0xda_u8; 16];
        assert_eq!(
            completed_after(0xda, &[&header[..5], &header[5..15], &header[15..]]),
            Some(2)
        );
        assert_eq!(completed_after(0xda, &[&header[..15]]), None);
        // The preface's own blank line (at byte 18) does not end it; its 24th byte does.
        let preface = &H2_PREFACE[..];
        assert_eq!(completed_after(b'P', &[&preface[..18], &preface[18..23]]), None);
        assert_eq!(completed_after(b'P', &[&preface[..18], &preface[18..]]), Some(1));
        let head = b"POST /a/b HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(completed_after(b'P', &[&head[..28], &head[28..30]]), None);
        assert_eq!(completed_after(b'P', &[&head[..28], &head[28..31]]), Some(1));
        assert_eq!(completed_after(b'G', &[b"GET / HTTP/1.1\r", b"\n\r\r\n\r\n"]), Some(1));
        // A request line that starts like the preface, then differs, is a head.
        assert_eq!(completed_after(b'P', &[b"PRI /x HTTP/1.1\r\n\r\n"]), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_handshake_times_out_and_a_complete_one_never_does() {
        let limit = Duration::from_secs(5);
        let mut buf = [0u8; 64];
        let (mut client, io) = tokio::io::duplex(1024);
        let mut stalled = Handshake::new(io, b'P', limit);
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert_eq!(stalled.read(&mut buf).await.unwrap(), 16);
        let started = Instant::now();
        let error = stalled.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("HTTP/2 preface"), "{error}");
        assert_eq!(started.elapsed(), limit);

        let (mut client, io) = tokio::io::duplex(1024);
        let mut complete = Handshake::new(io, 0xda, limit);
        client.write_all(&[0xda; 16]).await.unwrap();
        assert_eq!(complete.read(&mut buf).await.unwrap(), 16);
        // Silent for far longer than the limit: the handshake is done, no timeout.
        let read = tokio::spawn(async move { complete.read(&mut buf).await });
        tokio::time::sleep(limit * 10).await;
        client.write_all(b"later").await.unwrap();
        assert_eq!(read.await.unwrap().unwrap(), 5);
    }
}
