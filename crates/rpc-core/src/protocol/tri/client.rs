//! The consumer side of Triple: [`TriChannel`], one HTTP/2 connection per
//! provider address carrying many concurrent calls.
//!
//! Connecting: the first call that finds no connection starts one attempt (a
//! task of its own, bounded by the connect timeout); every call meanwhile
//! waits for that same attempt, each only until its own deadline, and no lock
//! is held while it runs. A failed attempt, or a connection that dies younger
//! than a minimum healthy lifetime (1 s), puts the channel in backoff
//! (exponential from `ChannelConfig::backoff_initial` to `backoff_max`,
//! jittered): calls fail at once, not sent, until it is over. So a peer that
//! accepts connections and closes them at once is not hammered.
//!
//! Outcomes: a call whose request was never handed to the connection is
//! not-sent, whatever ended it. `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and HTTP
//! 429/502/503/504 count as not-sent only when the answer carries our
//! provider's [`REFUSED`](super::headers::REFUSED) header: a proxy returns the
//! same statuses after forwarding a request, so without it the call may have
//! run (an unknown outcome).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture as SharedBoxFuture, Shared};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, TE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::codec::{self, code};
use super::headers;
use crate::error::{ErrorKind, Outcome, RpcError};
use crate::invocation::Invocation;
use crate::protocol::backoff::{self, MIN_HEALTHY_LIFETIME};
use crate::protocol::rpc::ChannelConfig;
use crate::serialization::Serialization;
use crate::service::{BoxFuture, Response};

type Sender = http2::SendRequest<Full<Bytes>>;
type Attempt = Shared<SharedBoxFuture<'static, Result<Sender, RpcError>>>;

/// A lazily connected HTTP/2 channel to one Triple provider. Cloning shares
/// the connection; a lost connection is re-established on the next call,
/// after a backoff when connecting failed or the connection died young.
#[derive(Clone)]
pub struct TriChannel {
    inner: Arc<Inner>,
}

/// A [`TriChannel`] held without keeping it open.
#[derive(Clone, Debug)]
pub struct WeakTriChannel {
    inner: Weak<Inner>,
}

impl WeakTriChannel {
    /// The channel, if someone still holds it.
    pub fn upgrade(&self) -> Option<TriChannel> {
        self.inner.upgrade().map(|inner| TriChannel { inner })
    }
}

struct Inner {
    address: String,
    authority: String,
    config: ChannelConfig,
    /// Never held across an await.
    state: Mutex<State>,
}

/// Where the channel's connection stands. `failures` counts failed attempts
/// and young deaths since the last healthy connection.
enum State {
    /// No connection; the next call connects.
    Idle {
        failures: u32,
        /// The last connection ended because the provider went away (GOAWAY).
        went_away: bool,
    },
    /// An attempt is under way; calls wait for it.
    Connecting { attempt: Attempt },
    /// Connected since `since`; `id` tells this connection from later ones.
    Connected {
        sender: Sender,
        since: Instant,
        id: u64,
        failures: u32,
    },
    /// Not connecting before `until`.
    Backoff {
        until: Instant,
        failures: u32,
        error: RpcError,
    },
}

impl fmt::Debug for TriChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriChannel")
            .field("address", &self.inner.address)
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every transition is one assignment: a panic elsewhere cannot leave it half-made.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state after a connection that lived since `since` ended: a young
    /// death is one more failure (and a backoff), a healthy life resets the count.
    fn after_connection(&self, since: Instant, failures: u32, went_away: bool, why: &str) -> State {
        let lived = since.elapsed();
        if lived >= MIN_HEALTHY_LIFETIME {
            return State::Idle { failures: 0, went_away };
        }
        let failures = failures.saturating_add(1);
        let wait = backoff::delay(self.config.backoff_initial, self.config.backoff_max, failures);
        tracing::debug!(address = %self.address, lived_ms = lived.as_millis() as u64, failures, wait_ms = wait.as_millis() as u64, "tri connection died young; backing off");
        State::Backoff {
            until: Instant::now() + wait,
            failures,
            error: RpcError::new(
                ErrorKind::Connect,
                format!(
                    "the connection to {} ended {} ms after it was made: {why}",
                    self.address,
                    lived.as_millis()
                ),
            ),
        }
    }
}

/// Tells apart the connections a channel makes.
static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TriChannel {
    /// A channel to `address` (`host:port`). Nothing is connected until the first call.
    pub fn new(address: impl Into<String>, config: ChannelConfig) -> Self {
        let address = address.into();
        TriChannel {
            inner: Arc::new(Inner {
                authority: address.clone(),
                address,
                config,
                state: Mutex::new(State::Idle {
                    failures: 0,
                    went_away: false,
                }),
            }),
        }
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// A handle that does not keep the channel open.
    pub fn downgrade(&self) -> WeakTriChannel {
        WeakTriChannel {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Whether connecting failed recently and the channel waits before trying again.
    pub fn is_backing_off(&self) -> bool {
        matches!(&*self.inner.lock(), State::Backoff { until, .. } if *until > Instant::now())
    }

    /// Whether a call now would go out on a working connection: true when
    /// connected, or idle without a failure since the last healthy connection;
    /// false while connecting, while backing off (or until an attempt succeeds
    /// after one), and once the provider said it is going away (GOAWAY).
    ///
    /// hyper reports a GOAWAY on a connection that still has streams open only
    /// when that connection is next used or when it ends; an idle connection
    /// ends at once, so this turns false as soon as the provider shuts down.
    pub fn is_available(&self) -> bool {
        match &*self.inner.lock() {
            State::Idle { failures, went_away } => *failures == 0 && !went_away,
            State::Connected { sender, .. } => !sender.is_closed(),
            State::Connecting { .. } | State::Backoff { .. } => false,
        }
    }

    /// The connection's sender, connecting (or joining the attempt under way)
    /// if needed, waiting no longer than `deadline`.
    async fn sender(&self, deadline: Option<Instant>) -> Result<Sender, RpcError> {
        let attempt = {
            let mut state = self.inner.lock();
            if let State::Connected {
                sender,
                since,
                failures,
                ..
            } = &*state
            {
                if !sender.is_closed() {
                    return Ok(sender.clone());
                }
                // Closed (the provider went away, or the connection broke) and
                // not yet seen by its watcher.
                *state = self
                    .inner
                    .after_connection(*since, *failures, true, "the connection closed");
            }
            match &*state {
                State::Backoff { until, failures, error } if *until > Instant::now() => {
                    return Err(RpcError::new(
                        ErrorKind::Connect,
                        format!(
                            "not reconnecting to {} for another {} ms after {failures} failed attempt(s); last: {}",
                            self.inner.address,
                            until.saturating_duration_since(Instant::now()).as_millis(),
                            error.message()
                        ),
                    ));
                }
                State::Connecting { attempt } if attempt.peek().is_none() => attempt.clone(),
                State::Idle { .. } | State::Backoff { .. } | State::Connecting { .. } => {
                    let failures = match &*state {
                        State::Idle { failures, .. } | State::Backoff { failures, .. } => *failures,
                        // An attempt that ended without recording its outcome (its task panicked).
                        _ => 1,
                    };
                    let task = tokio::spawn(connect(Arc::downgrade(&self.inner), failures));
                    let address = self.inner.address.clone();
                    let attempt = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(RpcError::new(
                                ErrorKind::Connect,
                                format!("the attempt to connect to {address} failed: {e}"),
                            ))
                        })
                    }
                    .boxed()
                    .shared();
                    *state = State::Connecting {
                        attempt: attempt.clone(),
                    };
                    attempt
                }
                State::Connected { sender, .. } => return Ok(sender.clone()),
            }
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, attempt).await.unwrap_or_else(|_| {
                Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("no connection to {} before the call's deadline", self.inner.address),
                ))
            }),
            None => attempt.await,
        }
    }

    async fn invoke(self, invocation: Invocation) -> Result<Response, RpcError> {
        let address = self.inner.address.clone();
        self.invoke_inner(&invocation).await.map_err(|e| {
            e.with_service(invocation.service())
                .with_method(invocation.method())
                .with_address(address)
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
        let args = invocation.args();
        if args.len() > self.inner.config.max_payload {
            return Err(RpcError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body of {} bytes exceeds the payload limit of {} bytes",
                    args.len(),
                    self.inner.config.max_payload
                ),
            ));
        }
        let mut request = self.request(invocation, deadline)?;
        // A connection that turns out to be closing (the provider went away)
        // hands the request back unsent: it goes out once more, on a new one.
        let mut attempts_left = 2;
        let (sent_at, response) = loop {
            attempts_left -= 1;
            let mut sender = self.sender(deadline).await?;
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
            let sent_at = Instant::now();
            let call = sender.try_send_request(request);
            let response = match deadline {
                Some(d) => match tokio::time::timeout_at(d, call).await {
                    Ok(response) => response,
                    Err(_) => return Err(timeout(sent_at)),
                },
                None => call.await,
            };
            match response {
                Ok(response) => break (sent_at, response),
                // The request never left: safe to send again.
                Err(mut e) if e.message().is_some() => {
                    let reason = e.error().to_string();
                    match e.take_message() {
                        Some(unsent) if attempts_left > 0 && sender.is_closed() => request = unsent,
                        _ => {
                            return Err(RpcError::new(
                                ErrorKind::Closed,
                                format!("the request was not sent: {reason}"),
                            ));
                        }
                    }
                }
                Err(e) => {
                    return Err(RpcError::new(
                        ErrorKind::ConnectionLost,
                        format!("the stream failed after the request was sent: {}", e.error()),
                    ));
                }
            }
        };
        let (parts, body) = response.into_parts();
        // Set by our provider on refusals made before the handler ran.
        let refused = parts.headers.contains_key(headers::REFUSED);
        if let Some(error) = status_error(&parts.headers) {
            return Err(trusted(error, refused));
        }
        if parts.status != StatusCode::OK {
            return Err(trusted(http_error(parts.status), refused));
        }
        let limit = self.inner.config.max_payload.saturating_add(codec::PREFIX_LEN);
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
                    format!(
                        "the response exceeds the payload limit of {} bytes",
                        self.inner.config.max_payload
                    ),
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
        let payload = codec::unframe(collected.to_bytes(), self.inner.config.max_payload)
            .map_err(|e| RpcError::new(ErrorKind::Decode, format!("unreadable response: {e}")))?;
        Ok(Response::new(payload))
    }

    fn request(&self, invocation: &Invocation, deadline: Option<Instant>) -> Result<Request<Full<Bytes>>, RpcError> {
        let key = invocation.service();
        let uri = format!(
            "http://{}/{}/{}",
            self.inner.authority,
            key.interface(),
            invocation.method()
        );
        let mut request = Request::post(uri)
            .body(Full::new(codec::frame(invocation.args())))
            .map_err(|e| RpcError::new(ErrorKind::Encode, format!("cannot build the request: {e}")))?;
        let headers = request.headers_mut();
        let content_type = match invocation.serialization() {
            Serialization::Bincode => "application/grpc+bincode",
            _ => "application/grpc+json",
        };
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

/// One connection attempt, run as a task of its own so that it completes
/// (and records its outcome in the channel's state: connected, or backing
/// off) whether or not any call still waits for it. Holds the channel weakly.
async fn connect(channel: Weak<Inner>, failures: u32) -> Result<Sender, RpcError> {
    let dropped = || RpcError::new(ErrorKind::Closed, "the channel was dropped");
    let Some((address, config)) = channel
        .upgrade()
        .map(|inner| (inner.address.clone(), inner.config.clone()))
    else {
        return Err(dropped());
    };
    let attempt = tokio::time::timeout(config.connect_timeout, handshake(&address, &config)).await;
    let result = attempt.unwrap_or_else(|_| {
        Err(RpcError::new(
            ErrorKind::Connect,
            format!(
                "no connection to {address} within the connect timeout of {} ms",
                config.connect_timeout.as_millis()
            ),
        ))
    });
    // Dropped meanwhile: the sender goes with this task, closing the connection.
    let Some(inner) = channel.upgrade() else {
        return Err(dropped());
    };
    match result {
        Ok((sender, connection)) => {
            let id = NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let since = Instant::now();
            *inner.lock() = State::Connected {
                sender: sender.clone(),
                since,
                id,
                failures,
            };
            tracing::debug!(%address, "tri connected");
            tokio::spawn(async move {
                let ended = connection.await;
                let Some(inner) = channel.upgrade() else { return };
                let mut state = inner.lock();
                if let State::Connected {
                    id: current,
                    since,
                    failures,
                    ..
                } = &*state
                    && *current == id
                {
                    // hyper ends a connection cleanly only after the provider's GOAWAY.
                    let (went_away, why) = match &ended {
                        Ok(()) => (true, "the provider went away (GOAWAY)".to_string()),
                        Err(e) => (false, e.to_string()),
                    };
                    tracing::debug!(%address, %why, "tri connection ended");
                    *state = inner.after_connection(*since, *failures, went_away, &why);
                }
            });
            Ok(sender)
        }
        Err(error) => {
            let failures = failures.saturating_add(1);
            let wait = backoff::delay(config.backoff_initial, config.backoff_max, failures);
            tracing::debug!(%address, failures, wait_ms = wait.as_millis() as u64, %error, "tri connect failed");
            *inner.lock() = State::Backoff {
                until: Instant::now() + wait,
                failures,
                error: error.clone(),
            };
            Err(error)
        }
    }
}

/// Opens the TCP connection and the HTTP/2 session on it.
async fn handshake(
    address: &str,
    config: &ChannelConfig,
) -> Result<
    (
        Sender,
        http2::Connection<TokioIo<TcpStream>, Full<Bytes>, TokioExecutor>,
    ),
    RpcError,
> {
    let connect_error =
        |e: &dyn fmt::Display| RpcError::new(ErrorKind::Connect, format!("cannot connect to {address}: {e}"));
    let stream = TcpStream::connect(address).await.map_err(|e| connect_error(&e))?;
    let _ = stream.set_nodelay(true);
    let heartbeat = config.heartbeat;
    http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(heartbeat)
        .keep_alive_timeout(heartbeat.saturating_mul(2))
        .keep_alive_while_idle(false)
        .max_header_list_size(super::server::MAX_HEADER_LIST_SIZE)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_error(&e))
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
