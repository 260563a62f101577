//! The consumer side of Triple: [`TriChannel`], one HTTP/2 connection per
//! provider address carrying many concurrent calls.
//!
//! The connection's life is the shared connection layer's
//! ([`connection`](crate::protocol::connection)), as for the native channel:
//! the first call that finds no connection starts one attempt (a task of its
//! own, bounded by the connect timeout); every call meanwhile waits for that
//! same attempt, each only until its own deadline, and no lock is held while
//! it runs. A failed attempt, or a connection that dies younger than a
//! minimum healthy lifetime (1 s), puts the channel in backoff (exponential
//! from [`TriChannelConfig::backoff_initial`] to `backoff_max`, jittered):
//! calls fail at once, not sent, until it is over. So a peer that accepts
//! connections and closes them at once is not hammered. After a connection
//! ends the channel reconnects in the background, with the same backoff; one
//! ended by the provider's GOAWAY makes the channel [`Health::Leaving`] until
//! a new connection is made.
//!
//! Outcomes: a call whose request was never handed to the connection is
//! not-sent, whatever ended it. `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and HTTP
//! 429/502/503/504 count as not-sent only when the answer carries our
//! provider's [`REFUSED`](super::headers::REFUSED) header: a proxy returns the
//! same statuses after forwarding a request, so without it the call may have
//! run (an unknown outcome).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, TE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, code};
use super::headers;
use super::wrapper;
use crate::error::{ErrorKind, Outcome, RpcError};
use crate::invocation::Invocation;
use crate::invoker::BoxFuture;
use crate::protocol::Health;
use crate::protocol::connection::in_flight::{InFlight, Registration};
use crate::protocol::connection::link::{Connection, Establish, Link, Reconnect, Watch};
use crate::protocol::connection::{Connector, Io, TcpConnector};
use crate::response::Response;
use crate::serialization::Serialization;

type Sender = http2::SendRequest<Full<Bytes>>;

/// Settings of a [`TriChannel`].
///
/// A native [`RpcChannelConfig`](crate::protocol::rpc::RpcChannelConfig) converts
/// into one (`TriChannelConfig::from`), field for field, which is how a
/// consumer's one channel setting applies to both protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriChannelConfig {
    /// Largest message sent or accepted, without its 5-byte gRPC prefix (default 8 MiB).
    pub max_payload: usize,
    /// HTTP/2 PING interval while calls are open; a provider that does not
    /// answer one within two intervals is disconnected (default 30 s).
    pub heartbeat: Duration,
    /// Longest a connection attempt (TCP and the HTTP/2 handshake) may take
    /// (default 3 s; a call's deadline may cut its wait shorter).
    pub connect_timeout: Duration,
    /// First delay before reconnecting after a failed attempt (default 100 ms); doubles per failure.
    pub backoff_initial: Duration,
    /// Longest delay between reconnection attempts (default 5 s).
    pub backoff_max: Duration,
}

impl Default for TriChannelConfig {
    fn default() -> Self {
        TriChannelConfig {
            max_payload: 8 * 1024 * 1024,
            heartbeat: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl TriChannelConfig {
    fn reconnect(&self) -> Reconnect {
        Reconnect {
            connect_timeout: self.connect_timeout,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }
}

/// A lazily connected HTTP/2 channel to one Triple provider. Cloning shares
/// the connection; a lost connection is re-established in the background and
/// on the next call, after a backoff when connecting failed or the
/// connection died young.
#[derive(Clone)]
pub struct TriChannel {
    link: Arc<Link<TriClientSide>>,
}

/// A [`TriChannel`] held without keeping it open.
#[derive(Clone, Debug)]
pub struct WeakTriChannel {
    link: Weak<Link<TriClientSide>>,
}

impl WeakTriChannel {
    /// The channel, if someone still holds it.
    pub fn upgrade(&self) -> Option<TriChannel> {
        self.link.upgrade().map(|link| TriChannel { link })
    }
}

impl fmt::Debug for TriChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriChannel")
            .field("address", &self.link.address())
            .finish()
    }
}

/// Triple's part of a channel: its settings, and numbers for the calls it
/// tracks in flight.
#[derive(Debug)]
struct TriClientSide {
    config: TriChannelConfig,
    authority: String,
    next_id: AtomicU64,
}

/// One HTTP/2 connection.
#[derive(Debug)]
struct TriConn {
    sender: Sender,
    /// Cancelled to close the connection (its driver task drops it).
    close: CancellationToken,
    /// The connection ended cleanly: hyper does so only after the provider's GOAWAY.
    went_away: AtomicBool,
    /// The calls waiting for their answers, which
    /// [`abandon_in_flight`](TriChannel::abandon_in_flight) can end.
    calls: InFlight<()>,
}

impl AsRef<InFlight<()>> for TriConn {
    fn as_ref(&self) -> &InFlight<()> {
        &self.calls
    }
}

impl Connection for Arc<TriConn> {
    fn is_closed(&self) -> bool {
        self.close.is_cancelled() || self.sender.is_closed()
    }

    fn is_leaving(&self) -> bool {
        // hyper reports a GOAWAY on a connection that still has streams open
        // only when that connection ends.
        self.went_away.load(Ordering::Relaxed)
    }

    fn close(&self, _reason: &str) {
        self.close.cancel();
    }
}

impl Establish for TriClientSide {
    type Conn = Arc<TriConn>;

    /// The HTTP/2 handshake over `io`, then a task that drives the connection
    /// until it ends or is closed, and reports how it ended.
    fn establish(
        &self,
        address: &str,
        io: Io,
        watch: Watch<Self>,
    ) -> impl Future<Output = Result<Arc<TriConn>, RpcError>> + Send {
        let heartbeat = self.config.heartbeat;
        let address = address.to_string();
        async move {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(heartbeat)
                .keep_alive_timeout(heartbeat.saturating_mul(2))
                .keep_alive_while_idle(false)
                .max_header_list_size(super::server::MAX_HEADER_LIST_SIZE)
                .handshake(TokioIo::new(io))
                .await
                .map_err(|e| RpcError::new(ErrorKind::Connect, format!("cannot connect to {address}: {e}")))?;
            let conn = Arc::new(TriConn {
                sender,
                close: CancellationToken::new(),
                went_away: AtomicBool::new(false),
                calls: InFlight::default(),
            });
            let driven = conn.clone();
            tokio::spawn(async move {
                let ended = tokio::select! {
                    ended = connection => Some(ended),
                    _ = driven.close.cancelled() => None,
                };
                let (went_away, why) = match ended {
                    Some(Ok(())) => (true, "the provider went away (GOAWAY)".to_string()),
                    Some(Err(e)) => (false, e.to_string()),
                    None => (false, "closed by the client".to_string()),
                };
                driven.went_away.store(went_away, Ordering::Relaxed);
                // The sender reports closed from now on, whatever ended the connection.
                driven.close.cancel();
                watch.ended(went_away, &why);
            });
            Ok(conn)
        }
    }
}

impl TriChannel {
    /// A channel to `address` (`host:port`) over TCP. Nothing is connected
    /// until the first call. `config` is a [`TriChannelConfig`], or a native
    /// [`RpcChannelConfig`](crate::protocol::rpc::RpcChannelConfig) whose settings carry over.
    pub fn new(address: impl Into<String>, config: impl Into<TriChannelConfig>) -> Self {
        TriChannel::with_connector(address, config, Arc::new(TcpConnector))
    }

    /// A channel to `address` whose connections `connector` opens (each
    /// attempt, HTTP/2 handshake included, bounded by
    /// [`TriChannelConfig::connect_timeout`]); `address` is also the
    /// requests' authority. Nothing is connected until the first call.
    pub fn with_connector(
        address: impl Into<String>,
        config: impl Into<TriChannelConfig>,
        connector: Arc<dyn Connector>,
    ) -> Self {
        let address = address.into();
        let config = config.into();
        let reconnect = config.reconnect();
        let triple = TriClientSide {
            config,
            authority: address.clone(),
            next_id: AtomicU64::new(1),
        };
        TriChannel {
            link: Arc::new(Link::new(address, reconnect, connector, triple)),
        }
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        self.link.address()
    }

    /// A handle that does not keep the channel open.
    pub fn downgrade(&self) -> WeakTriChannel {
        WeakTriChannel {
            link: Arc::downgrade(&self.link),
        }
    }

    /// Whether connecting failed recently and the channel waits before trying again.
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

    /// Whether new calls should come here, by the same rules as the native
    /// [`RpcChannel::health`](crate::protocol::rpc::RpcChannel::health):
    /// [`Health::Ready`] when connected or not yet tried (or a backoff is
    /// over); [`Health::Unavailable`] while connecting or backing off;
    /// [`Health::Leaving`] once a connection ended by the provider's GOAWAY,
    /// until a new one is made.
    ///
    /// hyper reports a GOAWAY on a connection that still has streams open
    /// only when that connection ends; an idle connection ends at once, so
    /// this turns to `Leaving` as soon as the provider shuts down.
    pub fn health(&self) -> Health {
        self.link.health()
    }

    /// Whether a call now would go out: [`health`](Self::health) is [`Health::Ready`].
    pub fn is_available(&self) -> bool {
        self.health() == Health::Ready
    }

    /// Calls waiting for their answers on the current connection.
    pub fn in_flight(&self) -> usize {
        self.link.connected().map_or(0, |conn| conn.calls.len())
    }

    /// Fails the calls waiting for answers on the current connection now, as
    /// timed out (outcome unknown) with `reason`, keeping the connection (their
    /// streams are reset); calls still waiting for a connection fail as not
    /// sent ([`ErrorKind::Connect`]). Returns how many calls were waiting for answers.
    pub fn abandon_in_flight(&self, reason: &str) -> usize {
        self.link.abandon_waiters();
        let Some(conn) = self.link.connected() else { return 0 };
        let error = RpcError::new(ErrorKind::Timeout, reason.to_string()).with_address(self.link.address());
        conn.calls.abandon(&error)
    }

    async fn invoke(self, invocation: Invocation) -> Result<Response, RpcError> {
        self.invoke_inner(&invocation).await.map_err(|e| {
            e.with_service(invocation.service())
                .with_method(invocation.method())
                .with_address(self.link.address())
        })
    }

    async fn invoke_inner(&self, invocation: &Invocation) -> Result<Response, RpcError> {
        let deadline = invocation.deadline();
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(RpcError::new(
                ErrorKind::Expired,
                "the call's deadline passed before its request was sent",
            ));
        }
        let triple = self.link.protocol();
        let args = invocation.args();
        if args.len() > triple.config.max_payload {
            return Err(RpcError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body of {} bytes exceeds the payload limit of {} bytes",
                    args.len(),
                    triple.config.max_payload
                ),
            ));
        }
        // Hessian2 travels in Java's wrapper form (see `wrapper`).
        let wrapped = invocation.serialization() == Serialization::Hessian2;
        let mut request = self.request(invocation, deadline)?;
        // A connection that turns out to be closing (the provider went away)
        // hands the request back unsent: it goes out once more, on a new one.
        let mut attempts_left = 2;
        loop {
            attempts_left -= 1;
            let conn = self.link.get(deadline).await?;
            let mut sender = conn.sender.clone();
            let ready = match deadline {
                Some(d) => match tokio::time::timeout_at(d, sender.ready()).await {
                    Ok(ready) => ready,
                    Err(_) => {
                        return Err(RpcError::new(
                            ErrorKind::LocalLimit,
                            "the deadline passed while waiting for a free stream on the connection",
                        ));
                    }
                },
                None => sender.ready().await,
            };
            if let Err(e) = ready {
                if attempts_left > 0 {
                    continue;
                }
                return Err(RpcError::new(
                    ErrorKind::Closed,
                    format!("the connection is not usable: {e}"),
                ));
            }
            // In flight from here: abandon_in_flight can end the call.
            let id = triple.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, mut abandoned) = oneshot::channel();
            conn.calls.register(
                id,
                tx,
                || Ok(()),
                |_| RpcError::new(ErrorKind::Closed, "the connection is closed"),
            )?;
            let _registration = Registration::<_, ()>::new(conn.clone(), id);
            let sent_at = Instant::now();
            let call = sender.try_send_request(request);
            let exchange = async {
                let response = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, call).await {
                        Ok(response) => response,
                        Err(_) => return Ok(Err(timeout(sent_at))),
                    },
                    None => call.await,
                };
                match response {
                    Ok(response) => Ok(self.read_response(response, deadline, sent_at, wrapped).await),
                    // The request never left: safe to send again.
                    Err(mut e) if e.message().is_some() => {
                        let reason = e.error().to_string();
                        match e.take_message() {
                            Some(unsent) if attempts_left > 0 && sender.is_closed() => Err(unsent),
                            _ => Ok(Err(RpcError::new(
                                ErrorKind::Closed,
                                format!("the request was not sent: {reason}"),
                            ))),
                        }
                    }
                    Err(e) => Ok(Err(RpcError::new(
                        ErrorKind::ConnectionLost,
                        format!("the stream failed after the request was sent: {}", e.error()),
                    ))),
                }
            };
            let outcome = tokio::select! {
                biased;
                Ok(Err(error)) = &mut abandoned => Ok(Err(error)),
                outcome = exchange => outcome,
            };
            match outcome {
                Ok(result) => return result,
                Err(unsent) => request = unsent,
            }
        }
    }

    /// The call's result from the provider's answer: its status, then its
    /// body (within the payload limit) and trailers, by `deadline`. A
    /// `wrapped` answer (Java's form) becomes the Hessian2 reply the stub
    /// reads: a Java exception (`tri-exception-code`) as Dubbo's exception reply.
    async fn read_response(
        &self,
        response: http::Response<hyper::body::Incoming>,
        deadline: Option<Instant>,
        sent_at: Instant,
        wrapped: bool,
    ) -> Result<Response, RpcError> {
        let max_payload = self.link.protocol().config.max_payload;
        let (parts, body) = response.into_parts();
        // Set by our provider on refusals made before the handler ran.
        let refused = parts.headers.contains_key(headers::REFUSED);
        if let Some(error) = status_error(&parts.headers) {
            return Err(trusted(error, refused));
        }
        if parts.status != StatusCode::OK {
            return Err(trusted(http_error(parts.status), refused));
        }
        let limit = max_payload.saturating_add(codec::PREFIX_LEN);
        let collect = Limited::new(body, limit).collect();
        let collected = match deadline {
            Some(d) => match tokio::time::timeout_at(d, collect).await {
                Ok(collected) => collected,
                Err(_) => return Err(timeout(sent_at)),
            },
            None => collect.await,
        };
        let collected = collected.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RpcError::new(
                    ErrorKind::Decode,
                    format!("the response exceeds the payload limit of {max_payload} bytes"),
                )
            } else {
                RpcError::new(ErrorKind::ConnectionLost, format!("the response body failed: {e}"))
            }
        })?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        if let Some(error) = status_error(&trailers) {
            return Err(trusted(error, refused));
        }
        if trailers.get(headers::GRPC_STATUS).is_none() {
            return Err(RpcError::new(
                ErrorKind::Decode,
                "the response has no grpc-status trailer",
            ));
        }
        let payload = codec::unframe(collected.to_bytes(), max_payload)
            .map_err(|e| RpcError::new(ErrorKind::Decode, format!("unreadable response: {e}")))?;
        if !wrapped {
            return Ok(Response::new(payload));
        }
        // Any code but 0 means "the message is an exception", as for Java's consumer.
        let exception = parts
            .headers
            .get(wrapper::EXCEPTION_CODE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|code| code.trim() != "0");
        wrapper::ResponseWrapper::decode(&payload)
            .map_err(|e| e.to_string())
            .and_then(|answer| wrapper::unwrap_reply(&answer, exception))
            .map(Response::new)
            .map_err(|e| RpcError::new(ErrorKind::Decode, format!("unreadable Triple wrapper response: {e}")))
    }

    fn request(&self, invocation: &Invocation, deadline: Option<Instant>) -> Result<Request<Full<Bytes>>, RpcError> {
        let key = invocation.service();
        let uri = format!(
            "http://{}/{}/{}",
            self.link.protocol().authority,
            key.interface(),
            invocation.method()
        );
        let (message, content_type) = match invocation.serialization() {
            Serialization::Bincode => (invocation.args().clone(), "application/grpc+bincode"),
            // Java's form: what a Java Dubbo provider of an interface reads.
            Serialization::Hessian2 => {
                let wrapped = wrapper::wrap_request(invocation.args(), invocation.java_types()).map_err(|e| {
                    RpcError::new(ErrorKind::Encode, format!("cannot wrap the arguments for Java: {e}"))
                })?;
                (wrapped.encode(), "application/grpc+proto")
            }
            _ => (invocation.args().clone(), "application/grpc+json"),
        };
        let mut request = Request::post(uri)
            .body(Full::new(codec::frame(&message)))
            .map_err(|e| RpcError::new(ErrorKind::Encode, format!("cannot build the request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("rpc-rust/", env!("CARGO_PKG_VERSION"))),
        );
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        if let Some(version) = key.version() {
            set(headers::SERVICE_VERSION, version);
        }
        if let Some(group) = key.group() {
            set(headers::SERVICE_GROUP, group);
        }
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            set(headers::GRPC_TIMEOUT, &codec::format_timeout(left));
        }
        for (name, value) in invocation.attachments() {
            let lower = name.to_ascii_lowercase();
            if headers::is_reserved(&lower) {
                continue;
            }
            match (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(value)) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => tracing::debug!(attachment = %name, "skipping an attachment that is not a valid header"),
            }
        }
        Ok(request)
    }
}

/// `error` as the caller should see it: statuses that mean "not run" are
/// trusted only with our provider's refusal header; from anything else (a
/// proxy answers them after forwarding) the call may have run.
fn trusted(error: RpcError, refused: bool) -> RpcError {
    if refused || error.outcome() != Outcome::NotSent {
        return error;
    }
    RpcError::new(
        ErrorKind::ConnectionLost,
        format!(
            "{} (answered without our provider's `{}` header, perhaps by a proxy after forwarding \
             the request: it may have run)",
            error.message(),
            headers::REFUSED
        ),
    )
}

fn timeout(sent_at: Instant) -> RpcError {
    RpcError::new(
        ErrorKind::Timeout,
        format!(
            "no response before the deadline ({} ms after sending)",
            sent_at.elapsed().as_millis()
        ),
    )
}

/// The error a `grpc-status` header or trailer reports, if it is not OK.
pub(crate) fn status_error(headers: &HeaderMap) -> Option<RpcError> {
    let status = headers
        .get(headers::GRPC_STATUS)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u32>()
        .ok()?;
    if status == code::OK {
        return None;
    }
    let message = headers
        .get(headers::GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(codec::decode_message)
        .unwrap_or_default();
    Some(codec::error_of(status, &message))
}

/// The error for a non-200 answer without a gRPC status (gRPC's HTTP mapping).
fn http_error(status: StatusCode) -> RpcError {
    let grpc = match status {
        StatusCode::BAD_REQUEST => code::INTERNAL,
        StatusCode::UNAUTHORIZED => code::UNAUTHENTICATED,
        StatusCode::FORBIDDEN => code::PERMISSION_DENIED,
        StatusCode::NOT_FOUND => code::UNIMPLEMENTED,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    };
    codec::error_of(grpc, &format!("HTTP status {status} without a grpc-status"))
}

impl tower::Service<Invocation> for TriChannel {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        Box::pin(self.clone().invoke(invocation))
    }
}

#[cfg(test)]
mod tests;
