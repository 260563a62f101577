//! The consumer side of Triple: [`TriChannel`], one HTTP/2 connection per
//! provider address carrying many concurrent calls.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, TE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::codec::{self, code};
use super::headers;
use crate::error::{ErrorKind, RpcError};
use crate::invocation::Invocation;
use crate::protocol::rpc::ChannelConfig;
use crate::serialization::Serialization;
use crate::service::{BoxFuture, Response};

/// A lazily connected HTTP/2 channel to one Triple provider. Cloning shares
/// the connection; a lost connection is re-established on the next call,
/// after a backoff when connecting fails.
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
    state: Mutex<State>,
    /// Until when connecting is paused after failures (read without the lock).
    backoff_until: std::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct State {
    sender: Option<http2::SendRequest<Full<Bytes>>>,
    failures: u32,
}

impl fmt::Debug for TriChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriChannel")
            .field("address", &self.inner.address)
            .finish()
    }
}

impl TriChannel {
    /// A channel to `address` (`host:port`). Nothing is connected until the first call.
    pub fn new(address: impl Into<String>, config: ChannelConfig) -> Self {
        let address = address.into();
        TriChannel {
            inner: Arc::new(Inner {
                authority: address.clone(),
                address,
                config,
                state: Mutex::new(State::default()),
                backoff_until: std::sync::Mutex::new(None),
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
        self.inner
            .backoff_until
            .lock()
            .map(|until| until.is_some_and(|t| t > Instant::now()))
            .unwrap_or(false)
    }

    async fn sender(&self, deadline: Option<Instant>) -> Result<http2::SendRequest<Full<Bytes>>, RpcError> {
        let mut state = self.inner.state.lock().await;
        if let Some(sender) = &state.sender
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        state.sender = None;
        if let Ok(until) = self.inner.backoff_until.lock()
            && let Some(until) = *until
            && until > Instant::now()
        {
            return Err(RpcError::new(
                ErrorKind::Connect,
                format!(
                    "not reconnecting for another {} ms after {} failed attempt(s)",
                    (until - Instant::now()).as_millis(),
                    state.failures
                ),
            ));
        }
        let limit = Instant::now() + self.inner.config.connect_timeout;
        let until = deadline.map_or(limit, |d| d.min(limit));
        match tokio::time::timeout_at(until, self.connect()).await {
            Ok(Ok(sender)) => {
                state.failures = 0;
                if let Ok(mut backoff) = self.inner.backoff_until.lock() {
                    *backoff = None;
                }
                state.sender = Some(sender.clone());
                Ok(sender)
            }
            outcome => {
                state.failures = state.failures.saturating_add(1);
                let shift = state.failures.min(16) - 1;
                let backoff = self
                    .inner
                    .config
                    .backoff_initial
                    .saturating_mul(1 << shift)
                    .min(self.inner.config.backoff_max);
                if let Ok(mut until) = self.inner.backoff_until.lock() {
                    *until = Some(Instant::now() + backoff);
                }
                Err(match outcome {
                    Ok(Err(e)) => e,
                    _ => RpcError::new(ErrorKind::Connect, "connecting timed out"),
                })
            }
        }
    }

    async fn connect(&self) -> Result<http2::SendRequest<Full<Bytes>>, RpcError> {
        let connect_error = |e: &dyn fmt::Display| RpcError::new(ErrorKind::Connect, e.to_string());
        let stream = TcpStream::connect(&self.inner.address)
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = stream.set_nodelay(true);
        let heartbeat = self.inner.config.heartbeat;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(heartbeat)
            .keep_alive_timeout(heartbeat.saturating_mul(2))
            .keep_alive_while_idle(false)
            .max_header_list_size(super::server::MAX_HEADER_LIST_SIZE)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_error(&e))?;
        let address = self.inner.address.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%address, error = %e, "tri connection ended");
            }
        });
        Ok(sender)
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
                ErrorKind::Timeout,
                "the deadline passed before the call was sent",
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
        let request = self.request(invocation, deadline)?;
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
        let response = match response {
            Ok(response) => response,
            // The request never left: safe to retry.
            Err(e) if e.message().is_some() => {
                return Err(RpcError::new(
                    ErrorKind::Closed,
                    format!("the request was not sent: {}", e.error()),
                ));
            }
            Err(e) => {
                return Err(RpcError::new(
                    ErrorKind::ConnectionLost,
                    format!("the stream failed after the request was sent: {}", e.error()),
                ));
            }
        };
        let (parts, body) = response.into_parts();
        if let Some(error) = status_error(&parts.headers) {
            return Err(error);
        }
        if parts.status != StatusCode::OK {
            return Err(http_error(parts.status));
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
            return Err(error);
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
