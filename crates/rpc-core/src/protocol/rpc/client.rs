//! The client side: [`RpcChannel`], one multiplexed connection to one provider.
//!
//! The connection's life (connecting, backoff, probing, the provider leaving,
//! health) is the shared [`Link`]'s; the calls waiting for answers are an
//! [`InFlight`] map. What is native here: the frames, the reader and writer
//! tasks, and which outcome each call gets when its connection breaks.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rustc_hash::FxHashSet;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::conn::{ConnShared, QUEUE, run_writer};
use super::frame::{Decoded, FrameCodec, Header, OutFrame, RequestMeta};
use crate::error::{ErrorKind, RpcError, Status};
use crate::invocation::Invocation;
use crate::invoker::BoxFuture as ServiceFuture;
use crate::protocol::connection::in_flight::{Gate, InFlight, Registration};
use crate::protocol::connection::link::{Connection, Establish, Link, Reconnect, Watch};
use crate::protocol::connection::{Connector, Io, TcpConnector};
use crate::protocol::{DEFAULT_HEARTBEAT, DEFAULT_MAX_PAYLOAD, Health};
use crate::response::Response;

/// Settings of an [`RpcChannel`].
#[derive(Clone, Debug)]
pub struct RpcChannelConfig {
    /// Largest frame body sent or accepted (default 8 MiB).
    pub max_payload: usize,
    /// Heartbeat interval; a provider silent for three is disconnected (default 30 s).
    pub heartbeat: Duration,
    /// Longest a connection attempt may take (default 3 s; a call's deadline may cut it shorter).
    pub connect_timeout: Duration,
    /// First delay before reconnecting after a failed attempt (default 100 ms); doubles per failure.
    pub backoff_initial: Duration,
    /// Longest delay between reconnection attempts (default 5 s).
    pub backoff_max: Duration,
}

impl Default for RpcChannelConfig {
    fn default() -> Self {
        RpcChannelConfig {
            max_payload: DEFAULT_MAX_PAYLOAD,
            heartbeat: DEFAULT_HEARTBEAT,
            connect_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl RpcChannelConfig {
    fn reconnect(&self) -> Reconnect {
        Reconnect {
            connect_timeout: self.connect_timeout,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }
}

/// A reply frame, before it is turned into a [`Response`] or an [`RpcError`].
#[derive(Debug)]
struct Reply {
    status: u8,
    body: Bytes,
}

type ReplyTx = oneshot::Sender<Result<Reply, RpcError>>;
type ReplyRx = oneshot::Receiver<Result<Reply, RpcError>>;

/// A call registered on a connection: its entry goes when the caller stops
/// waiting (timeout, or the future was dropped, polled or not, e.g. by a
/// forking cluster), so no entry outlives its caller.
type PendingCall = Registration<Arc<RpcConn>, Reply>;

/// The native protocol's part of a channel: its settings and request ids.
#[derive(Debug)]
struct RpcClientSide {
    config: RpcChannelConfig,
    next_id: AtomicU64,
    /// Speaks `dubbo` (Hessian2 requests, Java Dubbo's bodies) instead of the
    /// native protocol on the same framing and connection machinery.
    dubbo: bool,
}

/// One live connection.
#[derive(Debug)]
struct RpcConn {
    shared: Arc<ConnShared>,
    tx: mpsc::Sender<OutFrame>,
    calls: InFlight<Reply>,
    /// The provider said it is shutting down: send it nothing new. Set under
    /// the in-flight lock, with the gate; unlike the gate it stays set once
    /// the connection is closed, so the link knows the provider left.
    readonly: AtomicBool,
    /// Tells the channel's link that the provider is leaving, or that the connection ended.
    watch: Watch<RpcClientSide>,
}

impl AsRef<InFlight<Reply>> for RpcConn {
    fn as_ref(&self) -> &InFlight<Reply> {
        &self.calls
    }
}

impl Connection for Arc<RpcConn> {
    fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn is_leaving(&self) -> bool {
        self.readonly.load(Ordering::Relaxed)
    }

    fn close(&self, reason: &str) {
        self.shared.close(reason);
    }
}

impl RpcConn {
    /// Registers call `id` and queues its request, in one step under the
    /// in-flight lock, which the reader also holds while it marks the
    /// connection read-only and queues its answer to that event: a request
    /// is either queued before that answer (the provider still runs it) or
    /// refused here as not sent, never queued behind it. Returns the frame
    /// back when the queue is full, for the caller to queue when room frees.
    fn send_call(&self, id: u64, tx: ReplyTx, frame: OutFrame) -> Result<Option<OutFrame>, RpcError> {
        self.calls.register(
            id,
            tx,
            || match self.tx.try_send(frame) {
                Ok(()) => Ok(None),
                Err(mpsc::error::TrySendError::Full(frame)) => Ok(Some(frame)),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(RpcError::new(ErrorKind::Closed, self.shared.reason()))
                }
            },
            |gate| match gate {
                Gate::Refusing => RpcError::remote(
                    Status::ChannelInactive,
                    "the provider is shutting down and accepts no new calls",
                ),
                Gate::Open | Gate::Closed => RpcError::new(ErrorKind::Closed, self.shared.reason()),
            },
        )
    }

    /// Marks the connection read-only (the provider is shutting down) and
    /// queues `answer` to the event, under the in-flight lock (see [`send_call`](Self::send_call)).
    fn mark_readonly(&self, answer: Option<OutFrame>) {
        self.calls.refuse_new(|| {
            self.readonly.store(true, Ordering::Relaxed);
            if let Some(answer) = answer {
                let _ = self.tx.try_send(answer);
            }
        });
    }

    /// The connection's tasks are done: the calls whose requests were still
    /// queued (`unsent`) were never written and fail as not sent
    /// ([`ErrorKind::Closed`]); the others may have reached the provider
    /// ([`ErrorKind::ConnectionLost`], outcome unknown).
    fn fail_all(&self, unsent: &FxHashSet<u64>) {
        let reason = self.shared.reason();
        self.calls.close(|id| {
            let kind = if unsent.contains(&id) {
                ErrorKind::Closed
            } else {
                ErrorKind::ConnectionLost
            };
            RpcError::new(kind, reason.clone())
        });
    }
}

impl Establish for RpcClientSide {
    type Conn = Arc<RpcConn>;

    /// Starts the connection's reader and writer tasks over `io`.
    fn establish(
        &self,
        address: &str,
        io: Io,
        watch: Watch<Self>,
    ) -> impl Future<Output = Result<Arc<RpcConn>, RpcError>> + Send {
        let (read, write) = io.split();
        let shared = Arc::new(ConnShared::new(address.to_string()));
        if self.dubbo {
            shared.set_dubbo();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Arc::new(RpcConn {
            shared,
            tx,
            calls: InFlight::default(),
            readonly: AtomicBool::new(false),
            watch,
        });
        let heartbeat = self.config.heartbeat;
        let writer_conn = conn.clone();
        tokio::spawn(async move {
            let mut rx = run_writer(write, rx, &writer_conn.shared, heartbeat).await;
            // Frames still queued were never written: those calls were not sent.
            let mut unsent = FxHashSet::default();
            while let Ok(frame) = rx.try_recv() {
                unsent.extend(frame.request_id);
            }
            writer_conn.fail_all(&unsent);
            writer_conn.watch.ended(false, &writer_conn.shared.reason());
        });
        let reader_conn = conn.clone();
        let max_payload = self.config.max_payload;
        tokio::spawn(async move {
            let mut frames = FramedRead::new(read, FrameCodec::new(max_payload));
            let shared = &reader_conn.shared;
            // Made once: a new one per frame would register with the token under a lock.
            let closed = shared.close.cancelled();
            tokio::pin!(closed);
            loop {
                let item = tokio::select! {
                    biased;
                    item = frames.next() => item,
                    _ = &mut closed => break,
                };
                match item {
                    Some(Ok(decoded)) => {
                        shared.touch();
                        on_frame(&reader_conn, decoded);
                    }
                    Some(Err(e)) => {
                        shared.close(format!("cannot read from provider {}: {e}", shared.peer));
                        break;
                    }
                    None => {
                        shared.close(format!("provider {} closed the connection", shared.peer));
                        break;
                    }
                }
            }
        });
        std::future::ready(Ok(conn))
    }
}

/// A client for one provider address over the native protocol; a tower
/// `Service<Invocation, Response = Response, Error = RpcError>`.
///
/// Clones share the connection. The connection is opened by
/// the first call, multiplexes every call, and is re-opened on demand after it
/// breaks, waiting an exponential backoff between failed attempts (calls made
/// during the backoff fail at once with a not-sent [`ErrorKind::Connect`]).
/// When the connection breaks, every call in flight fails at once: with
/// [`ErrorKind::ConnectionLost`] if its request was written, with
/// [`ErrorKind::Closed`] if not; and the channel starts probing the provider
/// in the background, so [`is_backing_off`](RpcChannel::is_backing_off) tells
/// callers to go elsewhere before any call is sent to a dead provider. The
/// connection closes when the last handle to the channel is dropped.
#[derive(Clone)]
pub struct RpcChannel {
    link: Arc<Link<RpcClientSide>>,
}

impl fmt::Debug for RpcChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcChannel")
            .field("address", &self.link.address())
            .finish_non_exhaustive()
    }
}

/// A handle to an [`RpcChannel`] that does not keep it alive.
#[derive(Clone, Debug, Default)]
pub struct WeakRpcChannel {
    link: Weak<Link<RpcClientSide>>,
}

impl WeakRpcChannel {
    /// The channel, if any handle to it is still alive.
    pub fn upgrade(&self) -> Option<RpcChannel> {
        self.link.upgrade().map(|link| RpcChannel { link })
    }
}

impl RpcChannel {
    /// A handle that does not keep the channel (and its connection) alive.
    pub fn downgrade(&self) -> WeakRpcChannel {
        WeakRpcChannel {
            link: Arc::downgrade(&self.link),
        }
    }

    /// A channel to `address` (`host:port`) over TCP. Nothing is connected until the first call.
    pub fn new(address: impl Into<String>, config: RpcChannelConfig) -> Self {
        RpcChannel::with_connector(address, config, Arc::new(TcpConnector))
    }

    /// A channel to `address` whose connections `connector` opens (each
    /// attempt bounded by [`RpcChannelConfig::connect_timeout`]): a custom
    /// transport, or an in-memory one in tests. Nothing is connected until
    /// the first call.
    pub fn with_connector(address: impl Into<String>, config: RpcChannelConfig, connector: Arc<dyn Connector>) -> Self {
        RpcChannel::make(address, config, connector, false)
    }

    /// A channel speaking `dubbo` (for [`DubboChannel`](crate::protocol::dubbo::client::DubboChannel)).
    pub(crate) fn make(
        address: impl Into<String>,
        config: RpcChannelConfig,
        connector: Arc<dyn Connector>,
        dubbo: bool,
    ) -> Self {
        let reconnect = config.reconnect();
        let native = RpcClientSide {
            config,
            next_id: AtomicU64::new(1),
            dubbo,
        };
        RpcChannel {
            link: Arc::new(Link::new(address.into(), reconnect, connector, native)),
        }
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        self.link.address()
    }

    /// Whether the channel is connected and the provider accepts new calls.
    pub fn is_connected(&self) -> bool {
        self.link.current().is_some()
    }

    /// Whether the last connection attempt failed and the channel is waiting to retry.
    pub fn is_backing_off(&self) -> bool {
        self.link.is_backing_off()
    }

    /// Connections made to the provider after the first one: each replaced
    /// one that ended (a provider restart, a broken network), whether a
    /// call or the background probe made it. Counts from the channel's
    /// creation; a metric, read now and then.
    pub fn reconnects(&self) -> u64 {
        self.link.reconnects()
    }

    /// Whether new calls should come here: [`Health::Ready`] when connected
    /// or not yet tried; [`Health::Unavailable`] while connecting or backing
    /// off after a failure (a dead or unreachable host is not waited on by
    /// every call); [`Health::Leaving`] once the provider said it is shutting
    /// down, until a new connection is made (after a restart).
    pub fn health(&self) -> Health {
        self.link.health()
    }

    /// Calls waiting for a response on the current connection.
    pub fn in_flight(&self) -> usize {
        self.link.connected().map_or(0, |conn| conn.calls.len())
    }

    /// Fails the calls waiting for answers on the current connection now, as
    /// timed out (outcome unknown) with `reason`, keeping the connection:
    /// what a consumer does with a provider it found stalled, so that the
    /// calls can move elsewhere before their deadlines. Calls still waiting
    /// for a connection fail too, as not sent ([`ErrorKind::Connect`]).
    /// Returns how many calls were waiting for answers.
    pub fn abandon_in_flight(&self, reason: &str) -> usize {
        // Calls still waiting for a connection (to a host that does not
        // answer its SYNs, say) give up too, not sent.
        self.link.abandon_waiters();
        let Some(conn) = self.link.connected() else { return 0 };
        let error = RpcError::new(ErrorKind::Timeout, reason.to_string()).with_address(self.link.address());
        conn.calls.abandon(&error)
    }

    /// Whether the provider answers a heartbeat within `timeout` on the
    /// current connection (false when not connected): proof it is alive
    /// that risks no call.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let Some(conn) = self.link.connected() else {
            return false;
        };
        let id = conn.shared.next_event_id();
        let (tx, rx) = oneshot::channel();
        // An event, not a call: a provider that is leaving still answers it.
        if !conn.calls.expect(id, tx) {
            return false;
        }
        let mut call = PendingCall::new(conn, id);
        let heartbeat = call.owner().shared.event_request_with(id, false);
        if call.owner().tx.try_send(heartbeat).is_err() {
            return false;
        }
        let answered = matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(Ok(_))));
        if answered {
            call.disarm();
        }
        answered
    }

    /// Closes the current connection, failing its in-flight calls. The next call reconnects.
    pub fn disconnect(&self) {
        self.link.disconnect("closed by the client");
    }

    /// The live connection, connecting if needed.
    async fn connection(&self, deadline: Option<Instant>) -> Result<Arc<RpcConn>, RpcError> {
        self.link.get(deadline).await
    }

    /// The current connection, when it is up and takes new calls.
    fn connected(&self) -> Option<Arc<RpcConn>> {
        self.link.current()
    }

    /// The call, when the connection is up: encoded, registered and queued
    /// right away, leaving a small future that only waits for the reply.
    /// `None` when it must take the slow path (connecting, backoff, a full
    /// send queue is handled there too).
    fn call_if_connected(&self, invocation: &Invocation) -> Option<ServiceFuture<Result<Response, RpcError>>> {
        let conn = self.connected()?;
        let deadline = invocation.deadline();
        let decorate = {
            let service = invocation.service().clone();
            let method = invocation.method_name().clone();
            move |e: RpcError, address: &str| {
                e.with_service(&service)
                    .with_method(method.as_str())
                    .with_address(address)
            }
        };
        let prepared = time_left(deadline).and_then(|timeout_ms| {
            let (id, frame, tx, rx) = self.prepare(invocation, timeout_ms)?;
            Ok((timeout_ms, id, frame, tx, rx))
        });
        let (timeout_ms, id, frame, tx, rx) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Some(Box::pin(std::future::ready(Err(decorate(e, self.link.address()))))),
        };
        // Encoded now; registered and queued on the first poll: nothing is
        // sent (and no entry is left) for a future dropped unpolled.
        Some(Box::pin(async move {
            let queued = match conn.send_call(id, tx, frame) {
                Ok(queued) => queued,
                Err(e) => return Err(decorate(e, &conn.shared.peer)),
            };
            let mut call = PendingCall::new(conn, id);
            let result = exchange(&mut call, queued, rx, deadline, timeout_ms).await;
            result.map_err(|e| decorate(e, &call.owner().shared.peer))
        }))
    }

    async fn invoke(self, invocation: Invocation) -> Result<Response, RpcError> {
        let result = self.invoke_inner(&invocation).await;
        result.map_err(|e| {
            e.with_service(invocation.service())
                .with_method(invocation.method())
                .with_address(self.link.address())
        })
    }

    async fn invoke_inner(&self, invocation: &Invocation) -> Result<Response, RpcError> {
        let deadline = invocation.deadline();
        let timeout_ms = time_left(deadline)?;
        let conn = self.connection(deadline).await?;
        let (id, frame, tx, rx) = self.prepare(invocation, timeout_ms)?;
        let frame = conn.send_call(id, tx, frame)?;
        let mut call = PendingCall::new(conn, id);
        exchange(&mut call, frame, rx, deadline, timeout_ms).await
    }

    /// Encodes the request, with a new id and the channel its reply will come by.
    fn prepare(
        &self,
        invocation: &Invocation,
        timeout_ms: Option<u64>,
    ) -> Result<(u64, OutFrame, ReplyTx, ReplyRx), RpcError> {
        let native = self.link.protocol();
        let id = native.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = if native.dubbo {
            crate::protocol::dubbo::client::request(id, invocation, timeout_ms)?
        } else {
            let meta = RequestMeta::of_call(invocation, timeout_ms);
            OutFrame::request(id, true, invocation.serialization(), &meta, invocation.args().clone())
                .map_err(|e| RpcError::new(ErrorKind::Encode, format!("cannot encode the request: {e}")))?
        };
        let body_len = frame.len() - super::frame::HEADER_LEN;
        if body_len > native.config.max_payload {
            return Err(RpcError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body of {body_len} bytes exceeds the payload limit of {} bytes",
                    native.config.max_payload
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        Ok((id, frame, tx, rx))
    }
}

/// Milliseconds left before `deadline`, for the provider (at least 1: 0
/// would mean none); an error when it has passed.
fn time_left(deadline: Option<Instant>) -> Result<Option<u64>, RpcError> {
    match deadline {
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left.as_millis().max(1) as u64)),
            _ => Err(RpcError::new(
                ErrorKind::Expired,
                "the deadline passed before the call was sent",
            )),
        },
        None => Ok(None),
    }
}

/// Queues `frame` (unless it is queued already) and waits for the reply to
/// the call, until `deadline`.
async fn exchange(
    call: &mut PendingCall,
    frame: Option<OutFrame>,
    rx: ReplyRx,
    deadline: Option<Instant>,
    timeout_ms: Option<u64>,
) -> Result<Response, RpcError> {
    let conn = &**call.owner();
    if let Some(frame) = frame {
        // The queue was full (rare): wait for room, boxed so that the common
        // path's future stays small.
        let queued = Box::pin(super::conn::enqueue(&conn.tx, frame));
        let queued = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, queued).await.map_err(|_| {
                RpcError::new(
                    ErrorKind::LocalLimit,
                    "the deadline passed while waiting for room in the connection's send queue",
                )
            })?,
            None => queued.await,
        };
        if queued.is_err() {
            return Err(RpcError::new(ErrorKind::Closed, conn.shared.reason()));
        }
    }
    let reply = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, rx).await.map_err(|_| {
            RpcError::new(
                ErrorKind::Timeout,
                format!(
                    "no response before the deadline ({} ms budget)",
                    timeout_ms.unwrap_or_default()
                ),
            )
        })?,
        None => rx.await,
    };
    // Answered: whoever ended the call already removed the entry.
    call.disarm();
    let reply = match reply {
        Ok(reply) => reply?,
        Err(_) => return Err(RpcError::new(ErrorKind::ConnectionLost, call.owner().shared.reason())),
    };
    if call.owner().shared.is_dubbo() {
        return crate::protocol::dubbo::client::reply_result(reply.status, reply.body);
    }
    reply_result(reply.status, reply.body)
}

/// What a reply frame means: its body is the encoded return value when the
/// status is OK, else the provider's explanation, read as UTF-8 (lossily: a
/// peer's bad bytes never hide the failure).
pub(crate) fn reply_result(status: u8, body: Bytes) -> Result<Response, RpcError> {
    match Status::from_code(status) {
        Status::Ok => Ok(Response::new(body)),
        status => Err(RpcError::remote(status, String::from_utf8_lossy(&body).into_owned())),
    }
}

fn on_frame(conn: &RpcConn, decoded: Decoded) {
    let (header, body) = match decoded {
        Decoded::Frame(header, body) => (header, body),
        Decoded::Oversized(header) => {
            if !header.is_request() {
                conn.calls.fail(
                    header.id,
                    RpcError::new(
                        ErrorKind::Decode,
                        format!("response of {} bytes exceeds the payload limit", header.body_len),
                    ),
                );
            }
            return;
        }
    };
    if header.is_event() {
        on_event(conn, &header, &body);
        return;
    }
    if header.is_request() {
        // Providers do not call consumers.
        tracing::debug!(peer = %conn.shared.peer, id = header.id, "ignoring a request from a provider");
        return;
    }
    // An answer nobody waits for (given up, abandoned, or never asked) is dropped.
    conn.calls.complete(
        header.id,
        Ok(Reply {
            status: header.status,
            body,
        }),
    );
}

fn on_event(conn: &RpcConn, header: &Header, body: &Bytes) {
    if !header.is_request() {
        // A heartbeat answer: touch() already recorded it; a ping waits for some.
        conn.calls.complete(
            header.id,
            Ok(Reply {
                status: header.status,
                body: body.clone(),
            }),
        );
        return;
    }
    let answer = header.is_two_way().then(|| conn.shared.event_answer(header.id));
    if !conn.shared.is_readonly_event(body) {
        if let Some(answer) = answer {
            let _ = conn.tx.try_send(answer);
        }
        return;
    }
    tracing::info!(peer = %conn.shared.peer, "provider is shutting down; no new calls go to it");
    // Requests queued before the answer reach the provider before it: it runs
    // them. None is queued after it.
    conn.mark_readonly(answer);
    conn.watch.leaving();
}

impl tower::Service<Invocation> for RpcChannel {
    type Response = Response;
    type Error = RpcError;
    type Future = ServiceFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        match self.call_if_connected(&invocation) {
            Some(future) => future,
            None => Box::pin(self.clone().invoke(invocation)),
        }
    }
}

#[cfg(test)]
mod tests;
