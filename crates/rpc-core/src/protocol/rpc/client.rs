//! The client side: [`Channel`], one multiplexed connection to one provider.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use rustc_hash::FxHashMap;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::DEFAULT_HEARTBEAT;
use super::conn::{ConnShared, QUEUE, run_writer};
use super::frame::{DEFAULT_MAX_PAYLOAD, Decoded, FrameCodec, Header, OutFrame, READONLY_EVENT, RequestMetaRef};
use crate::error::{ErrorKind, RpcError, Status};
use crate::invocation::Invocation;
use crate::protocol::Health;
use crate::protocol::backoff::{self, MIN_HEALTHY_LIFETIME};
use crate::service::{BoxFuture as ServiceFuture, Response};

/// Settings of a [`Channel`].
#[derive(Clone, Debug)]
pub struct ChannelConfig {
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

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            max_payload: DEFAULT_MAX_PAYLOAD,
            heartbeat: DEFAULT_HEARTBEAT,
            connect_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
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

#[derive(Debug, Default)]
struct Pending {
    /// By request id: sequential numbers, for which SipHash is wasted work.
    calls: FxHashMap<u64, ReplyTx>,
    closed: bool,
}

/// One live connection.
#[derive(Debug)]
struct Conn {
    shared: Arc<ConnShared>,
    tx: mpsc::Sender<OutFrame>,
    pending: Mutex<Pending>,
    /// The provider said it is shutting down: send it nothing new.
    readonly: AtomicBool,
    /// The channel this connection belongs to, told when the provider goes read-only.
    channel: Weak<Inner>,
    /// When it was established, and after how many failed attempts: a
    /// connection that dies young counts as one more (see [`backoff`]).
    connected_at: Instant,
    failures_before: u32,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.shared.is_closed() && !self.readonly.load(Ordering::Relaxed)
    }

    /// Registers call `id` and queues its request, in one step under the
    /// pending lock, which the reader also holds while it marks the
    /// connection read-only and queues its answer to that event: a request
    /// is either queued before that answer (the provider still runs it) or
    /// refused here as not sent, never queued behind it. Returns the frame
    /// back when the queue is full, for the caller to queue when room frees.
    fn send_call(&self, id: u64, tx: ReplyTx, frame: OutFrame) -> Result<Option<OutFrame>, RpcError> {
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| RpcError::new(ErrorKind::Closed, "connection state lost"))?;
        if pending.closed {
            return Err(RpcError::new(ErrorKind::Closed, self.shared.reason()));
        }
        if self.readonly.load(Ordering::Relaxed) {
            return Err(RpcError::remote(
                Status::ChannelInactive,
                "the provider is shutting down and accepts no new calls",
            ));
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                pending.calls.insert(id, tx);
                Ok(None)
            }
            Err(mpsc::error::TrySendError::Full(frame)) => {
                pending.calls.insert(id, tx);
                Ok(Some(frame))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RpcError::new(ErrorKind::Closed, self.shared.reason())),
        }
    }

    /// Marks the connection read-only (the provider is shutting down) and
    /// queues `answer` to the event, under the pending lock (see [`send_call`](Self::send_call)).
    fn mark_readonly(&self, answer: Option<OutFrame>) {
        let _pending = self.pending.lock();
        self.readonly.store(true, Ordering::Relaxed);
        if let Some(answer) = answer {
            let _ = self.tx.try_send(answer);
        }
    }

    fn insert(&self, id: u64, tx: ReplyTx) -> bool {
        match self.pending.lock() {
            Ok(mut p) if !p.closed => {
                p.calls.insert(id, tx);
                true
            }
            _ => false,
        }
    }

    fn take(&self, id: u64) -> Option<ReplyTx> {
        self.pending.lock().ok().and_then(|mut p| p.calls.remove(&id))
    }

    fn fail_all(&self, error: RpcError) {
        let calls = match self.pending.lock() {
            Ok(mut p) => {
                p.closed = true;
                std::mem::take(&mut p.calls)
            }
            Err(_) => return,
        };
        for (_, tx) in calls {
            let _ = tx.send(Err(error.clone()));
        }
    }

    /// Fails every call waiting on this connection with `error`, leaving the
    /// connection open: answers arriving later are dropped.
    fn abandon_all(&self, error: &RpcError) -> usize {
        let calls = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut p.calls),
            Err(_) => return 0,
        };
        let count = calls.len();
        for (_, tx) in calls {
            let _ = tx.send(Err(error.clone()));
        }
        count
    }

    fn in_flight(&self) -> usize {
        self.pending.lock().map(|p| p.calls.len()).unwrap_or(0)
    }
}

/// A call registered as pending on a connection: removes the entry when the
/// caller stops waiting (timeout, or the future was dropped, polled or not,
/// e.g. by a forking cluster), so no entry outlives its caller.
struct PendingCall {
    conn: Arc<Conn>,
    id: u64,
    /// Cleared once the reader has taken the entry.
    armed: bool,
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.armed {
            self.conn.take(self.id);
        }
    }
}

type ConnectFuture = Shared<BoxFuture<'static, Result<Arc<Conn>, RpcError>>>;

enum State {
    Idle,
    Connecting(ConnectFuture),
    Connected(Arc<Conn>),
    Backoff {
        until: Instant,
        failures: u32,
        error: RpcError,
    },
}

/// [`State`] as a number, readable without the lock.
struct Phase;

impl Phase {
    const IDLE: u8 = 0;
    const CONNECTING: u8 = 1;
    const CONNECTED: u8 = 2;
    const BACKOFF: u8 = 3;
    /// Connected, and the provider said it is shutting down.
    const LEAVING: u8 = 4;
}

struct Inner {
    address: String,
    config: ChannelConfig,
    state: Mutex<State>,
    /// What `state` is, for health checks that take no lock (see [`Phase`]).
    phase: AtomicU8,
    /// The last connection closed after the provider said it was shutting
    /// down, and no new one has been made since: it is leaving, not failing.
    left: AtomicBool,
    /// Woken by [`Channel::abandon_in_flight`]: calls waiting for a connection give up.
    abandoned: tokio::sync::Notify,
    next_id: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The connection's tasks hold the connection, not the channel: close it
        // when the last handle to the channel goes, or it would live on.
        if let Ok(State::Connected(conn)) = self.state.get_mut().map(|s| &*s) {
            conn.shared.close("channel dropped");
        }
    }
}

/// A client for one provider address over the native protocol; a tower
/// `Service<Invocation, Response = Response, Error = RpcError>`.
///
/// Cheap to clone: clones share the connection. The connection is opened by
/// the first call, multiplexes every call, and is re-opened on demand after it
/// breaks, waiting an exponential backoff between failed attempts (calls made
/// during the backoff fail at once with a not-sent [`ErrorKind::Connect`]).
/// When the connection breaks, every call in flight fails at once: with
/// [`ErrorKind::ConnectionLost`] if its request was written, with
/// [`ErrorKind::Closed`] if not; and the channel starts probing the provider
/// in the background, so [`is_backing_off`](Channel::is_backing_off) tells
/// callers to go elsewhere before any call is sent to a dead provider. The
/// connection closes when the last handle to the channel is dropped.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

/// A handle to a [`Channel`] that does not keep it alive.
#[derive(Clone, Debug, Default)]
pub struct WeakChannel {
    inner: Weak<Inner>,
}

impl WeakChannel {
    /// The channel, if any handle to it is still alive.
    pub fn upgrade(&self) -> Option<Channel> {
        self.inner.upgrade().map(|inner| Channel { inner })
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A handle that does not keep the channel (and its connection) alive.
    pub fn downgrade(&self) -> WeakChannel {
        WeakChannel {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// A channel to `address` (`host:port`). Nothing is connected until the first call.
    pub fn new(address: impl Into<String>, config: ChannelConfig) -> Self {
        Channel {
            inner: Arc::new(Inner {
                address: address.into(),
                config,
                state: Mutex::new(State::Idle),
                phase: AtomicU8::new(Phase::IDLE),
                left: AtomicBool::new(false),
                abandoned: tokio::sync::Notify::new(),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Whether the channel is connected and the provider accepts new calls.
    pub fn is_connected(&self) -> bool {
        matches!(&*self.lock_state(), State::Connected(c) if c.usable())
    }

    /// Whether the last connection attempt failed and the channel is waiting to retry.
    pub fn is_backing_off(&self) -> bool {
        // Connected (the common case): no lock, no clock.
        if self.inner.phase.load(Ordering::Acquire) != Phase::BACKOFF {
            return false;
        }
        matches!(&*self.lock_state(), State::Backoff { until, .. } if *until > Instant::now())
    }

    /// Whether new calls should come here: [`Health::Ready`] when connected
    /// or not yet tried; [`Health::Unavailable`] while connecting or backing
    /// off after a failure (a dead or unreachable host is not waited on by
    /// every call); [`Health::Leaving`] once the provider said it is shutting
    /// down, until a new connection is made (after a restart). Takes no lock
    /// when connected.
    pub fn health(&self) -> Health {
        match self.inner.phase.load(Ordering::Acquire) {
            Phase::CONNECTED => Health::Ready,
            _ if self.inner.left.load(Ordering::Relaxed) => Health::Leaving,
            Phase::IDLE => Health::Ready,
            Phase::LEAVING => Health::Leaving,
            Phase::BACKOFF if !self.is_backing_off() => Health::Ready,
            _ => Health::Unavailable,
        }
    }

    /// Calls waiting for a response on the current connection.
    pub fn in_flight(&self) -> usize {
        match &*self.lock_state() {
            State::Connected(c) => c.in_flight(),
            _ => 0,
        }
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
        self.inner.abandoned.notify_waiters();
        let conn = match &*self.lock_state() {
            State::Connected(conn) => conn.clone(),
            _ => return 0,
        };
        let error = RpcError::new(ErrorKind::Timeout, reason.to_string()).with_address(&self.inner.address);
        conn.abandon_all(&error)
    }

    /// Whether the provider answers a heartbeat within `timeout` on the
    /// current connection (false when not connected): proof it is alive
    /// that risks no call.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let conn = match &*self.lock_state() {
            State::Connected(conn) => conn.clone(),
            _ => return false,
        };
        let id = conn.shared.next_event_id();
        let (tx, rx) = oneshot::channel();
        if !conn.insert(id, tx) {
            return false;
        }
        let mut call = PendingCall { conn, id, armed: true };
        if call.conn.tx.try_send(OutFrame::event(id, true, true, b"")).is_err() {
            return false;
        }
        let answered = matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(Ok(_))));
        call.armed = !answered;
        answered
    }

    /// Closes the current connection, failing its in-flight calls. The next call reconnects.
    pub fn disconnect(&self) {
        let old = {
            let mut state = self.lock_state();
            self.inner.phase.store(Phase::IDLE, Ordering::Release);
            std::mem::replace(&mut *state, State::Idle)
        };
        if let State::Connected(conn) = old {
            conn.shared.close("closed by the client");
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock_state()
    }

    /// The live connection, connecting if needed.
    async fn connection(&self, deadline: Option<Instant>) -> Result<Arc<Conn>, RpcError> {
        let connecting = {
            let mut state = self.lock_state();
            match &*state {
                State::Connected(conn) if conn.usable() => return Ok(conn.clone()),
                State::Connected(conn) if conn.readonly.load(Ordering::Relaxed) && !conn.shared.is_closed() => {
                    return Err(RpcError::remote(
                        Status::ChannelInactive,
                        "the provider is shutting down and accepts no new calls",
                    ));
                }
                State::Backoff { until, error, failures } if *until > Instant::now() => {
                    return Err(RpcError::new(
                        ErrorKind::Connect,
                        format!(
                            "not reconnecting for another {} ms after {failures} failed attempt(s); last: {}",
                            until.saturating_duration_since(Instant::now()).as_millis(),
                            error.message()
                        ),
                    ));
                }
                State::Connecting(fut) => fut.clone(),
                _ => {
                    let failures = match &*state {
                        State::Backoff { failures, .. } => *failures,
                        _ => 0,
                    };
                    let fut = connect(Arc::downgrade(&self.inner), failures).boxed().shared();
                    *state = State::Connecting(fut.clone());
                    self.inner.phase.store(Phase::CONNECTING, Ordering::Release);
                    fut
                }
            }
        };
        // Calls waiting for the connection give up when the channel's calls
        // are abandoned (the provider is stalled): they were never sent.
        let abandoned = self.inner.abandoned.notified();
        let waited = async {
            tokio::select! {
                connected = connecting => connected,
                _ = abandoned => Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("gave up connecting to {}: the provider does not answer", self.inner.address),
                )),
            }
        };
        match deadline {
            // Still connecting at the deadline: the request was never written.
            Some(deadline) => tokio::time::timeout_at(deadline, waited).await.unwrap_or_else(|_| {
                Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("no connection to {} before the call's deadline", self.inner.address),
                ))
            }),
            None => waited.await,
        }
    }

    /// The current connection, when it is up and takes new calls.
    fn connected(&self) -> Option<Arc<Conn>> {
        match &*self.lock_state() {
            State::Connected(conn) if conn.usable() => Some(conn.clone()),
            _ => None,
        }
    }

    /// The call, when the connection is up: encoded, registered and queued
    /// right away, leaving a small future that only waits for the reply.
    /// `None` when it must take the slow path (connecting, backoff, a full
    /// send queue is handled there too).
    fn call_now(&self, invocation: &Invocation) -> Option<ServiceFuture<Result<Response, RpcError>>> {
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
            Err(e) => return Some(Box::pin(std::future::ready(Err(decorate(e, &self.inner.address))))),
        };
        // Encoded now; registered and queued on the first poll: nothing is
        // sent (and no entry is left) for a future dropped unpolled.
        Some(Box::pin(async move {
            let queued = match conn.send_call(id, tx, frame) {
                Ok(queued) => queued,
                Err(e) => return Err(decorate(e, &conn.shared.peer)),
            };
            let mut call = PendingCall { conn, id, armed: true };
            let result = exchange(&mut call, queued, rx, deadline, timeout_ms).await;
            result.map_err(|e| decorate(e, &call.conn.shared.peer))
        }))
    }

    async fn invoke(self, invocation: Invocation) -> Result<Response, RpcError> {
        let result = self.invoke_inner(&invocation).await;
        result.map_err(|e| {
            e.with_service(invocation.service())
                .with_method(invocation.method())
                .with_address(self.inner.address.clone())
        })
    }

    async fn invoke_inner(&self, invocation: &Invocation) -> Result<Response, RpcError> {
        let deadline = invocation.deadline();
        let timeout_ms = time_left(deadline)?;
        let conn = self.connection(deadline).await?;
        let (id, frame, tx, rx) = self.prepare(invocation, timeout_ms)?;
        let frame = conn.send_call(id, tx, frame)?;
        let mut call = PendingCall { conn, id, armed: true };
        exchange(&mut call, frame, rx, deadline, timeout_ms).await
    }

    /// Encodes the request, with a new id and the channel its reply will come by.
    fn prepare(
        &self,
        invocation: &Invocation,
        timeout_ms: Option<u64>,
    ) -> Result<(u64, OutFrame, ReplyTx, ReplyRx), RpcError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let key = invocation.service();
        let meta = RequestMetaRef {
            service: key.interface(),
            version: key.version(),
            group: key.group(),
            method: invocation.method(),
            timeout_ms,
            attachments: invocation.attachments(),
        };
        let frame = OutFrame::request(id, true, invocation.serialization(), &meta, invocation.args().clone())
            .map_err(|e| RpcError::new(ErrorKind::Encode, format!("cannot encode the request: {e}")))?;
        let body_len = frame.len() - super::frame::HEADER_LEN;
        if body_len > self.inner.config.max_payload {
            return Err(RpcError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body of {body_len} bytes exceeds the payload limit of {} bytes",
                    self.inner.config.max_payload
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        Ok((id, frame, tx, rx))
    }
}

type ReplyRx = oneshot::Receiver<Result<Reply, RpcError>>;

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
/// call `id`, until `deadline`.
async fn exchange(
    call: &mut PendingCall,
    frame: Option<OutFrame>,
    rx: ReplyRx,
    deadline: Option<Instant>,
    timeout_ms: Option<u64>,
) -> Result<Response, RpcError> {
    let conn = &*call.conn;
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
    // Answered: the reader already removed the entry.
    call.armed = false;
    let reply = match reply {
        Ok(reply) => reply?,
        Err(_) => return Err(RpcError::new(ErrorKind::ConnectionLost, conn.shared.reason())),
    };
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

/// Opens a connection and starts its reader and writer. Holds the channel
/// weakly: an abandoned attempt must not keep a dropped channel alive.
async fn connect(channel: Weak<Inner>, failures: u32) -> Result<Arc<Conn>, RpcError> {
    let dropped = || RpcError::new(ErrorKind::Closed, "the channel was dropped");
    let (address, config) = match channel.upgrade() {
        Some(inner) => (inner.address.clone(), inner.config.clone()),
        None => return Err(dropped()),
    };
    let attempt = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&address)).await;
    let stream = match attempt {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let error = RpcError::new(ErrorKind::Connect, e.to_string());
            return Err(channel
                .upgrade()
                .map_or_else(dropped, |inner| inner.connect_failed(failures, error)));
        }
        Err(_) => {
            let error = RpcError::new(
                ErrorKind::Connect,
                format!("no connection within {} ms", config.connect_timeout.as_millis()),
            );
            return Err(channel
                .upgrade()
                .map_or_else(dropped, |inner| inner.connect_failed(failures, error)));
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let shared = Arc::new(ConnShared::new(address.clone()));
    let (tx, rx) = mpsc::channel(QUEUE);
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        tx,
        pending: Mutex::default(),
        readonly: AtomicBool::new(false),
        channel: channel.clone(),
        connected_at: Instant::now(),
        failures_before: failures,
    });
    let heartbeat = config.heartbeat;
    let writer_conn = conn.clone();
    let writer_channel = channel.clone();
    tokio::spawn(async move {
        let mut rx = run_writer(write, rx, &writer_conn.shared, heartbeat).await;
        // Frames still queued were never written: those calls were not sent.
        while let Ok(frame) = rx.try_recv() {
            if let Some(tx) = frame.request_id.and_then(|id| writer_conn.take(id)) {
                let _ = tx.send(Err(RpcError::new(ErrorKind::Closed, writer_conn.shared.reason())));
            }
        }
        writer_conn.fail_all(RpcError::new(ErrorKind::ConnectionLost, writer_conn.shared.reason()));
        on_connection_lost(&writer_channel, &writer_conn);
    });
    let reader_conn = conn.clone();
    let max_payload = config.max_payload;
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
    tracing::debug!(%address, "connected");
    match channel.upgrade() {
        Some(inner) => {
            let mut state = inner.lock_state();
            *state = State::Connected(conn.clone());
            inner.phase.store(Phase::CONNECTED, Ordering::Release);
            inner.left.store(false, Ordering::Relaxed);
        }
        None => conn.shared.close("the channel was dropped"),
    }
    Ok(conn)
}

impl Inner {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent: every
        // transition is a single assignment.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connect_failed(&self, failures: u32, error: RpcError) -> RpcError {
        let config = &self.config;
        let failures = failures.saturating_add(1);
        let backoff = backoff::delay(config.backoff_initial, config.backoff_max, failures);
        tracing::debug!(address = %self.address, failures, backoff_ms = backoff.as_millis() as u64, %error, "connect failed");
        let mut state = self.lock_state();
        *state = State::Backoff {
            until: Instant::now() + backoff,
            failures,
            error: error.clone(),
        };
        self.phase.store(Phase::BACKOFF, Ordering::Release);
        drop(state);
        error
    }
}

/// After a connection breaks, probe the provider in the background (with the
/// channel's backoff) until it answers or the channel is dropped, so that a
/// dead provider is known to be down before any call is sent to it, and a
/// returning one is found again.
fn on_connection_lost(channel: &Weak<Inner>, conn: &Arc<Conn>) {
    let Some(inner) = channel.upgrade() else { return };
    {
        let mut state = inner.lock_state();
        // Only when this connection was the channel's current one (not after disconnect()).
        if !matches!(&*state, State::Connected(current) if Arc::ptr_eq(current, conn)) {
            return;
        }
        if conn.readonly.load(Ordering::Relaxed) {
            inner.left.store(true, Ordering::Relaxed);
        }
        let lived = conn.connected_at.elapsed();
        if lived < MIN_HEALTHY_LIFETIME && !conn.readonly.load(Ordering::Relaxed) {
            // A peer that accepts and closes at once (at its connection
            // limit, a proxy without a backend): a failed attempt, backed off.
            let failures = conn.failures_before.saturating_add(1);
            let wait = backoff::delay(inner.config.backoff_initial, inner.config.backoff_max, failures);
            *state = State::Backoff {
                until: Instant::now() + wait,
                failures,
                error: RpcError::new(
                    ErrorKind::Connect,
                    format!(
                        "the connection closed {} ms after it was made: {}",
                        lived.as_millis(),
                        conn.shared.reason()
                    ),
                ),
            };
            inner.phase.store(Phase::BACKOFF, Ordering::Release);
        } else {
            *state = State::Idle;
            inner.phase.store(Phase::IDLE, Ordering::Release);
        }
    }
    tracing::debug!(address = %inner.address, reason = %conn.shared.reason(), "connection lost; probing the provider");
    let channel = channel.clone();
    tokio::spawn(async move {
        loop {
            let Some(inner) = channel.upgrade() else { return };
            let handle = Channel { inner };
            if handle.connection(None).await.is_ok() {
                return;
            }
            let wait = match &*handle.lock_state() {
                State::Backoff { until, .. } => until.saturating_duration_since(Instant::now()),
                State::Connected(_) => return,
                _ => handle.inner.config.backoff_initial,
            };
            // Hold the channel only weakly while waiting.
            drop(handle);
            tokio::time::sleep(wait).await;
        }
    });
}

fn on_frame(conn: &Conn, decoded: Decoded) {
    let (header, body) = match decoded {
        Decoded::Frame(header, body) => (header, body),
        Decoded::Oversized(header) => {
            if !header.is_request()
                && let Some(tx) = conn.take(header.id)
            {
                let _ = tx.send(Err(RpcError::new(
                    ErrorKind::Decode,
                    format!("response of {} bytes exceeds the payload limit", header.body_len),
                )));
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
    if let Some(tx) = conn.take(header.id) {
        let _ = tx.send(Ok(Reply {
            status: header.status,
            body,
        }));
    }
}

fn on_event(conn: &Conn, header: &Header, body: &Bytes) {
    if !header.is_request() {
        // A heartbeat answer: touch() already recorded it; a ping waits for some.
        if let Some(tx) = conn.take(header.id) {
            let _ = tx.send(Ok(Reply {
                status: header.status,
                body: body.clone(),
            }));
        }
        return;
    }
    let answer = header
        .is_two_way()
        .then(|| OutFrame::event(header.id, false, false, b""));
    if &body[..] != READONLY_EVENT {
        if let Some(answer) = answer {
            let _ = conn.tx.try_send(answer);
        }
        return;
    }
    tracing::info!(peer = %conn.shared.peer, "provider is shutting down; no new calls go to it");
    if let Some(inner) = conn.channel.upgrade() {
        let state = inner.lock_state();
        if matches!(&*state, State::Connected(current) if std::ptr::eq(&**current, conn)) {
            inner.phase.store(Phase::LEAVING, Ordering::Release);
        }
    }
    // Requests queued before the answer reach the provider before it: it runs
    // them. None is queued after it.
    conn.mark_readonly(answer);
}

impl tower::Service<Invocation> for Channel {
    type Response = Response;
    type Error = RpcError;
    type Future = ServiceFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        match self.call_now(&invocation) {
            Some(future) => future,
            None => Box::pin(self.clone().invoke(invocation)),
        }
    }
}
