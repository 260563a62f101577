//! The provider side: [`Server`] accepts connections and dispatches requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

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

    fn get(&self) -> usize {
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
    /// Tell clients we are read-only and refuse new requests.
    pub(crate) readonly: AtomicBool,
    pub(crate) readonly_changed: Notify,
    /// Flush and close every connection.
    pub(crate) drain: CancellationToken,
    /// Close every connection now.
    pub(crate) close: CancellationToken,
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

/// Serves one connection: the native protocol when it starts with Dubbo's
/// magic, Triple (HTTP/2 or HTTP/1.1) otherwise, so every port speaks both.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, server: Arc<ServerShared>, count: GaugeGuard) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let idle = server.config.heartbeat.saturating_mul(3);
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(idle, stream.peek(&mut first)) => peeked,
        _ = server.close.cancelled() => return,
        _ = server.drain.cancelled() => return,
    };
    match peeked {
        Ok(Ok(1..)) if first[0] == NATIVE_MAGIC_HIGH => serve_native(stream, peer, server, count).await,
        Ok(Ok(1..)) => crate::protocol::tri::server::serve_connection(stream, peer, server, count).await,
        Ok(Ok(_)) => tracing::debug!(%peer, "connection closed before sending anything"),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed before sending anything"),
        Err(_) => tracing::debug!(%peer, "closing a connection silent for three heartbeats"),
    }
}

async fn serve_native(stream: TcpStream, peer: SocketAddr, server: Arc<ServerShared>, _count: GaugeGuard) {
    let (read, write) = stream.into_split();
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
    let mut told_readonly = false;
    // The signals are waited on by futures made once, not once per frame: each
    // new one would register with (and leave) its notifier under a lock.
    let closed = conn.close.cancelled();
    let server_closed = server.close.cancelled();
    let draining = server.drain.cancelled();
    let readonly = server.readonly_changed.notified();
    tokio::pin!(closed, server_closed, draining, readonly);
    // Registered before the flag is read below, so no change is missed.
    readonly.as_mut().enable();
    loop {
        if server.readonly.load(Ordering::Acquire) && !told_readonly {
            told_readonly = true;
            let _ = tx.try_send(OutFrame::event(conn.next_event_id(), true, false, READONLY_EVENT));
        }
        // Frames first: under load the signals are polled only when the socket
        // has nothing more (the socket's cooperative budget bounds the wait).
        let item = tokio::select! {
            biased;
            item = frames.next() => item,
            _ = &mut closed => break,
            _ = &mut server_closed => { conn.close("server closed"); break }
            _ = &mut draining => { conn.drain.cancel(); break }
            _ = &mut readonly, if !told_readonly => continue,
        };
        match item {
            Some(Ok(decoded)) => {
                conn.touch();
                on_frame(&server, &conn, &tx, decoded);
            }
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection: unreadable stream");
                conn.close(e.to_string());
                break;
            }
            None => {
                conn.close("client closed the connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    tracing::debug!(%peer, reason = %conn.reason(), "connection closed");
}

fn on_frame(server: &Arc<ServerShared>, conn: &ConnShared, tx: &mpsc::Sender<OutFrame>, decoded: Decoded) {
    let (header, body) = match decoded {
        Decoded::Frame(header, body) => (header, body),
        Decoded::Oversized(header) => {
            tracing::warn!(peer = %conn.peer, id = header.id, len = header.body_len, "refusing an oversized frame");
            if header.is_request() && header.is_two_way() && !header.is_event() {
                let message = format!(
                    "request body of {} bytes exceeds the payload limit of {} bytes",
                    header.body_len, server.config.max_payload
                );
                respond_error(tx, &header, Status::BadRequest, &message);
            }
            return;
        }
    };
    if header.is_event() {
        if header.is_request() && header.is_two_way() {
            let _ = tx.try_send(OutFrame::event(header.id, false, false, b""));
        }
        return;
    }
    if !header.is_request() {
        return; // answers to our heartbeats
    }
    let Some(serialization) = Serialization::from_id(header.serialization_id()) else {
        let message = format!(
            "unsupported serialization id {} (this provider speaks {})",
            header.serialization_id(),
            Serialization::ALL
                .map(|s| format!("{} = {}", s.name(), s.id()))
                .join(", ")
        );
        tracing::warn!(peer = %conn.peer, "{message}");
        respond_error(tx, &header, Status::SerializationError, &message);
        return;
    };
    let (meta, args) = match split_request_view(serialization, &body) {
        Ok(parts) => parts,
        Err(message) => {
            tracing::warn!(peer = %conn.peer, id = header.id, "bad request: {message}");
            respond_error(tx, &header, Status::BadRequest, &message);
            return;
        }
    };
    let (version, group) = (meta.version.as_deref(), meta.group.as_deref());
    let exported = server.dispatcher.exported(&meta.service, version, group);
    let key = match exported {
        Some((key, _)) => key.clone(),
        None => ServiceKey::new(&meta.service, version, group),
    };
    if server.readonly.load(Ordering::Acquire) {
        let message = format!("provider is shutting down; `{key}` accepts no new calls");
        respond_error(tx, &header, Status::ChannelInactive, &message);
        return;
    }
    // The generated descriptor's name when the method exists: no copy per call.
    let method: MethodName = exported
        .and_then(|(_, handler)| handler.descriptor().methods.iter().find(|m| m.name == meta.method))
        .map_or_else(|| MethodName::from(meta.method.clone().into_owned()), |m| m.name.into());
    let mut invocation = Invocation::new(key, method, args, serialization);
    if let Some(ms) = meta.timeout_ms {
        invocation.set_deadline(Some(Instant::now() + Duration::from_millis(ms)));
    }
    invocation.set_attachments(meta.attachments);
    let guard = server.in_flight.enter();
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
            match tx.try_send(frame) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(frame).await;
                        drop(guard);
                    });
                }
            }
        }
        return;
    }
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = running.finish().await;
        if let Some(frame) = response_frame(&header, result) {
            let _ = enqueue(&tx, frame).await;
        }
        drop(guard);
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

fn respond_error(tx: &mpsc::Sender<OutFrame>, header: &Header, status: Status, message: &str) {
    if !header.is_two_way() {
        return;
    }
    // A Dubbo peer decodes the message with the serialization it asked for;
    // answer hessian2 (id 2) in kind, everything else as UTF-8.
    let body = if header.serialization_id() == 2 {
        hessian2_string(message)
    } else {
        Bytes::from(message.to_string())
    };
    let _ = tx.try_send(OutFrame::response(header.id, status, header.serialization_id(), body));
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

    /// Graceful shutdown: stop accepting, tell connected clients the server is
    /// read-only (they send nothing new), refuse new requests with
    /// [`Status::ChannelInactive`], wait for in-flight calls up to `grace`, flush
    /// their responses, then close every connection.
    ///
    /// Returns the number of calls still running when `grace` ran out.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let shared = &self.shared;
        shared.stop_accepting.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.accept_done.wait_zero()).await;
        shared.readonly.store(true, Ordering::Release);
        shared.readonly_changed.notify_waiters();
        let deadline = Instant::now() + grace;
        let abandoned = match tokio::time::timeout_at(deadline, shared.in_flight.wait_zero()).await {
            Ok(()) => 0,
            Err(_) => shared.in_flight.get(),
        };
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
